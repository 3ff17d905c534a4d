"""The package's structure, read from its own source (nothing of it is imported or run here):

* the import graph has no cycle, and no import runs up the layer order that the README's Development section
  documents (the README line is the one source of that order);
* function-level imports are only for optional or heavy third-party packages, never for the package itself;
* no task-name branch (``task == "depth"``, ``in ("depth", ...)``) outside ``tasks/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import marigold_toolkit

SRC = Path(marigold_toolkit.__file__).resolve().parent
ROOT = SRC.parent.parent
PACKAGE = "marigold_toolkit"

#: third-party packages that may be imported inside functions: optional extras, or heavy ones whose import
#: would slow down every command (``marigold --help``) although only some commands need them
LAZY_OK = ("diffusers", "transformers", "accelerate", "huggingface_hub", "scipy", "matplotlib", "onnx",
           "onnxruntime", "mitsuba", "OpenEXR", "cv2", "lpips", "tensorboardX", "trimesh", "torch._dynamo",
           "torch.utils.tensorboard", "torch.utils.flop_counter", "ray", "pyarrow", "fsspec", "fastapi", "uvicorn",
           "starlette", "gradio", "gradio_client", "httpx", "python_multipart", "prometheus_client", "playwright", "av")

TASK_BRANCH = re.compile(r'(==|!=) *"(depth|normals|intrinsics)"|"(depth|normals|intrinsics)" *(==|!=)'
                         r'|in [([{] *"(depth|normals|intrinsics)"')


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The package modules an import statement of ``module`` names (third-party imports give none)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != PACKAGE:
        return []
    names = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
    return names or [target]


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at module level)`` for every import of the package's own modules, plus
    ``("<third-party name>", line, False)`` for function-level third-party imports."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        at_top = id(node) in top
        own = _resolve(module, path.name == "__init__.py", node)
        out += [(m, node.lineno, at_top) for m in own]
        if not own and not at_top:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            out += [(f"third-party:{n}", node.lineno, False) for n in names if n and getattr(node, "level", 0) == 0]
    return out


def _unit(module: str) -> str | None:
    """The layer unit of a module: its sub-package or top-level module (``None`` for the package face)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _layer_order() -> list[list[str]]:
    """The README's layer order: the line ``Layer order (bottom to top): `a` < `b`, `c` < ...``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^Layer order \(bottom to top\): (.+)$", text, flags=re.M)
    assert match, "README.md lost its 'Layer order (bottom to top): ...' line (Development section)"
    return [re.findall(r"`([\w.]+)`", floor) for floor in match.group(1).split("<")]


def test_every_unit_has_a_documented_layer():
    floors = [u for floor in _layer_order() for u in floor]
    units = {_unit(m) for m in MODULES} - {None, "assets"}
    assert not units - set(floors), f"units missing from the README's layer order: {sorted(units - set(floors))}"
    assert not set(floors) - units, f"the README's layer order names no such unit: {sorted(set(floors) - units)}"


def test_no_import_runs_up_the_layers():
    floor_of = {u: i for i, floor in enumerate(_layer_order()) for u in floor}
    upward = []
    for module in MODULES:
        src = _unit(module)
        if src is None:
            continue
        for target, line, _ in _imports(module):
            dst = _unit(target) if not target.startswith("third-party:") else None
            if dst is not None and dst != src and floor_of[dst] > floor_of[src]:
                upward.append(f"{MODULES[module].relative_to(ROOT)}:{line} ({src}) imports {target} ({dst})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules_or_units():
    modules = {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m and _unit(t) is not None}
               for m in MODULES if _unit(m) is not None}
    assert not _cycles(modules), f"import cycles between modules: {_cycles(modules)}"
    units: dict[str, set[str]] = {}
    for m, targets in modules.items():
        units.setdefault(_unit(m), set()).update(_unit(t) for t in targets if _unit(t) != _unit(m))
    assert not _cycles(units), f"import cycles between sub-packages: {_cycles(units)}"


def test_function_level_imports_only_for_optional_or_heavy_packages():
    bad = []
    for module in MODULES:
        for target, line, at_top in _imports(module):
            where = f"{MODULES[module].relative_to(ROOT)}:{line}"
            if at_top:
                continue
            if not target.startswith("third-party:"):
                bad.append(f"{where}: function-level import of the package's own {target}")
            elif not any(target[12:] == p or target[12:].startswith(p + ".") for p in LAZY_OK):
                bad.append(f"{where}: function-level import of {target[12:]} (not optional or heavy: import it "
                           "at the top)")
    assert not bad, "\n".join(bad)


def test_no_task_name_branch_outside_tasks():
    hits = []
    for module, path in MODULES.items():
        if _unit(module) == "tasks":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if TASK_BRANCH.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "task-name branches outside tasks/ (ask the Task instead):\n" + "\n".join(hits)


@pytest.mark.parametrize("snippet, found", [
    ('if task == "depth":', True), ('x = {"depth": 1}', False), ('if spec.task in ("depth", "normals"):', True),
    ('"normals" != name', True), ('task_name = "depth"', False),
])
def test_the_task_branch_pattern_itself(snippet, found):
    assert bool(TASK_BRANCH.search(snippet)) == found


def test_the_checks_see_what_they_should(tmp_path):
    """The import reader resolves relative imports of packages and modules (a check that reads nothing would
    pass vacuously)."""
    imports = {t for t, _, _ in _imports("marigold_toolkit.pipeline.predictor")}
    assert {"marigold_toolkit.checkpoints.loading", "marigold_toolkit.tasks", "marigold_toolkit.core.image",
            "marigold_toolkit.pipeline.backends"} <= imports
    cli = {t for t, _, _ in _imports("marigold_toolkit.cli.main")}
    assert "marigold_toolkit.cli.predict" in cli  # `from . import predict` inside a package
    lazy = [t for t, _, top in _imports("marigold_toolkit.checkpoints.loading") if not top]
    assert "third-party:diffusers" in lazy
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
