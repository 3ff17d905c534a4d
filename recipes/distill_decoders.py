#!/usr/bin/env python
"""Tiny decoders for the demo models: render -> distil a width sweep per model -> table -> bundle the smallest
within tolerance.

Every distillation is ``marigold distill-decoder`` (the console command, resumable); this script chains them::

    python recipes/distill_decoders.py all                # render, distil, table, bundle
    python recipes/distill_decoders.py render|distill|table|bundle
    python recipes/distill_decoders.py all --smoke        # tiny budget (CI-sized)
    python recipes/distill_decoders.py all --tasks depth --configs w16   # one model, one width

Data: ``marigold synth`` renders (the demo recipe's families and resolution, seeds of their own) with the demo
models' own predicted latents added (``--with-predictions``). The table reports, per model and width, the
decoder's parameters, its held-out deviation from the full decoder (the task's own terms: depth AbsRel,
normals mean angle), and decode times at the demo resolution and at 576x768 (random latents; timing only),
each measured side by side in one process with the order alternated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ASSETS = REPO / "src" / "marigold_toolkit" / "assets" / "demo"
MODELS = {"depth": "demo-depth", "normals": "demo-normals"}
#: the sweep: folder name -> (width, residual blocks per level, steps); TAESD's decoder is width 64, (3, 3, 3, 1)
CONFIGS = {"w4": (4, (1, 1, 1, 1), 1500), "w8": (8, (1, 1, 1, 1), 1500), "w16": (16, (1, 1, 1, 1), 1500),
           "w16-deep": (16, (3, 3, 3, 1), 4000)}
#: largest held-out deviation a bundled decoder may have: depth 1 % of the depth range in mean absolute difference
#: (AbsRel of raw decoded maps is dominated by the pixels at the near plane, where the reference is ~0), normals
#: 2 degrees mean angle
TOLERANCE = {"depth": ("mean_abs", 0.01), "normals": ("angular_deg", 2.0)}
RENDER = dict(num=320, seed=7, resolution=(128, 160), spp=8)
TRAIN = dict(batch_size=8, crop=16, holdout=32)
SMOKE = dict(render=dict(num=6, seed=7, resolution=(64, 80), spp=2), train=dict(batch_size=2, crop=4, holdout=2),
             configs={"w4": (4, (1, 1, 1, 1), 4)})


def marigold(*args: str) -> None:
    cmd = [sys.executable, "-m", "marigold_toolkit.cli.main", *args]
    print("+ marigold", " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def render(a) -> None:
    spec = SMOKE["render"] if a.smoke else RENDER
    marigold("synth", "--output-dir", str(a.work_dir / "data"), "--num", str(spec["num"]), "--seed",
             str(spec["seed"]), "--resolution", *map(str, spec["resolution"]), "--spp", str(spec["spp"]),
             "--maps", "geometry", "--workers", str(a.workers), "--no-progress")


def distill(a) -> None:
    train = SMOKE["train"] if a.smoke else TRAIN
    for task in a.tasks:
        model = MODELS[task]
        configs = SMOKE["configs"] if a.smoke else CONFIGS
        for name in (a.configs.split(",") if a.configs else configs):
            width, blocks, steps = configs[name]
            out = a.work_dir / task / name
            if (out / "distill_report.json").is_file():
                continue
            marigold("distill-decoder", model, "--output", str(out), "--data", str(a.work_dir / "data"),
                     "--width", str(width), "--blocks", ",".join(map(str, blocks)), "--steps", str(steps),
                     "--with-predictions",
                     *[x for k, v in train.items() for x in (f"--{k.replace('_', '-')}", str(v))])


def _decode_ms(model: str, folder: Path, hw: tuple[int, int], repeats: int = 5) -> tuple[float, float]:
    """Median ms of the full decoder and of ``folder``'s tiny decoder on one random latent of image size ``hw``,
    alternating which runs first."""
    import torch

    from marigold_toolkit.checkpoints.loading import load_components
    from marigold_toolkit.checkpoints.tiny_decoder import load_tiny_decoder

    vae = load_components(model, device="cpu").vae
    tiny = load_tiny_decoder(folder)
    z = torch.randn(1, 4, hw[0] // 8, hw[1] // 8)
    calls = {"full": lambda: vae.decode(z).sample, "tiny": lambda: tiny.decode(z).sample}
    times = {"full": [], "tiny": []}
    with torch.no_grad():
        for f in calls.values():
            f()
        for r in range(repeats):
            for name in (("full", "tiny") if r % 2 == 0 else ("tiny", "full")):
                t0 = time.perf_counter()
                calls[name]()
                times[name].append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times["full"]), 1e3 * statistics.median(times["tiny"])


def _decoders(folder: Path) -> list[Path]:
    """The finished decoders of a sweep (folders with a report), fewest parameters first."""
    done = [p for p in folder.glob("w*") if (p / "distill_report.json").is_file()]
    return sorted(done, key=lambda p: json.loads((p / "distill_report.json").read_text())["architecture"]["parameters"])


def table(a) -> str:
    from marigold_toolkit.core.machine import cpu_description

    lines = [f"Machine: {cpu_description()}, 1 image per call, float32, median of 5 alternating calls", "",
             "| model | decoder | params | held-out deviation (mean, worst) | mean abs difference | "
             "decode ms 128x160 full / tiny | decode ms 576x768 full / tiny |", "|---|---|---|---|---|---|---|"]
    for task in a.tasks:
        model = MODELS[task]
        for folder in _decoders(a.work_dir / task):
            rep = json.loads((folder / "distill_report.json").read_text())
            key, dev = rep["deviation_key"], rep["held_out_deviation"]
            small = _decode_ms(model, folder, (128, 160))
            large = _decode_ms(model, folder, (576, 768))
            unit = "°" if key.endswith("deg") else ""
            fmt = (lambda v: f"{v:.2f}°") if unit else (lambda v: f"{v:.2%}")
            arch = rep["architecture"]
            lines.append(f"| {model} | width {arch['width']}, blocks {','.join(map(str, arch['blocks']))}, "
                         f"{rep['training']['steps']} steps | {arch['parameters']:,} "
                         f"(full: {rep['architecture']['teacher_decoder_parameters']:,}) | {key} {fmt(dev[key])} / "
                         f"{fmt(dev['worst_' + key])} | {dev['mean_abs']:.4f} | {small[0]:.1f} / {small[1]:.1f} | "
                         f"{large[0]:.0f} / "
                         f"{large[1]:.0f} |")
    text = "\n".join(lines) + "\n"
    (a.work_dir / "table.md").write_text(text)
    print(text)
    return text


def bundle(a) -> None:
    """Copy, per model, the smallest decoder within :data:`TOLERANCE` (where none is, the most accurate one, and
    say so) into the package (``--smoke``: into the work dir) as ``<model>/tiny_decoder/`` and refresh the demo
    checksums."""
    target_root = a.work_dir / "bundle" if a.smoke else PACKAGE_ASSETS
    for task in a.tasks:
        key, limit = TOLERANCE[task]
        sweep = [(f, json.loads((f / "distill_report.json").read_text())["held_out_deviation"][key])
                 for f in _decoders(a.work_dir / task)]
        if not sweep:
            print(f"{task}: no finished decoder; nothing bundled", flush=True)
            continue
        within = [f for f, dev in sweep if dev <= limit]
        best = within[0] if within else min(sweep, key=lambda fd: fd[1])[0]
        if not within:
            print(f"{task}: no decoder within {key} {limit}; bundling the most accurate, {best.name} "
                  f"({key} {min(d for _, d in sweep):.4g})", flush=True)
        dest = target_root / task / "tiny_decoder"
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(best, dest)
        print(f"{task}: bundled {best} -> {dest}", flush=True)
    if not a.smoke:
        sys.path.insert(0, str(REPO / "recipes"))
        from demo import write_checksums

        write_checksums(target_root)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("all", "render", "distill", "table", "bundle"))
    p.add_argument("--work-dir", type=Path, default=REPO / "runs" / "decoders")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="rendering processes")
    p.add_argument("--configs", help=f"comma-separated subset of the sweep ({','.join(CONFIGS)}; default all)")
    p.add_argument("--tasks", default=",".join(MODELS),
                   help="comma-separated models to distil, tabulate and bundle decoders for (default: all)")
    a = p.parse_args(argv)
    a.tasks = tuple(t for t in a.tasks.split(",") if t)
    if not a.tasks or set(a.tasks) - set(MODELS):
        p.error(f"--tasks: give some of {', '.join(MODELS)}")
    stages = {"render": render, "distill": distill, "table": table, "bundle": bundle}
    for name in (stages if a.stage == "all" else [a.stage]):
        stages[name](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
