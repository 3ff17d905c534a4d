"""Named models: short aliases for the public Marigold checkpoints (timm-style registry).

An alias resolves to a Hugging Face hub id, or, for the bundled demo models, to a folder inside the installed
package (so they work offline); everything else about a model is read from its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: the bundled demo checkpoints (see docs/demo-models.md and recipes/demo.py)
DEMO_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo"


@dataclass(frozen=True)
class ModelEntry:
    alias: str
    hub_id: str  # a hub id, or a local folder for bundled models
    task: str
    description: str
    #: the initial latents the model is run from ("zeros" for end-to-end fine-tuned models), or None: as the
    #: checkpoint says
    initial_noise: str | None = None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(alias: str, hub_id: str, task: str, description: str, initial_noise: str | None = None) -> None:
    """Register ``alias`` -> ``hub_id``. Aliases are case-insensitive."""
    _REGISTRY[alias.lower()] = ModelEntry(alias, hub_id, task, description, initial_noise)


def lookup_model(name: str) -> ModelEntry | None:
    """The registry entry of alias ``name``, or ``None``."""
    return _REGISTRY.get(name.lower())


def resolve_alias(name: str) -> str:
    """Return the hub id registered under ``name``, or ``name`` unchanged."""
    entry = _REGISTRY.get(name.lower())
    return entry.hub_id if entry else name


def list_models() -> list[ModelEntry]:
    """All registered models, in registration order."""
    return list(_REGISTRY.values())


register_model("depth-v1-1", "prs-eth/marigold-depth-v1-1", "depth", "Depth v1.1, DDIM trailing, 4 steps default")
register_model("depth-v1-0", "prs-eth/marigold-depth-v1-0", "depth", "Depth v1.0 (CVPR 2024), DDIM leading")
register_model("depth-lcm-v1-0", "prs-eth/marigold-depth-lcm-v1-0", "depth", "Depth LCM v1.0, 1-4 steps")
register_model("normals-v1-1", "prs-eth/marigold-normals-v1-1", "normals", "Surface normals v1.1")
register_model(
    "iid-appearance-v1-1", "prs-eth/marigold-iid-appearance-v1-1", "intrinsics", "Albedo + roughness/metallicity"
)
register_model(
    "iid-lighting-v1-1", "prs-eth/marigold-iid-lighting-v1-1", "intrinsics", "Albedo + shading + residual (linear)"
)
register_model("e2e-ft-depth", "GonzaloMG/marigold-e2e-ft-depth", "depth",
               "Marigold + E2E-FT depth (Martin Garcia et al.): one deterministic step from zeros", "zeros")
register_model("e2e-ft-normals", "GonzaloMG/marigold-e2e-ft-normals", "normals",
               "Marigold + E2E-FT normals: one deterministic step from zeros", "zeros")
register_model("rollingdepth-v1-0", "prs-eth/rollingdepth-v1-0", "depth",
               "RollingDepth (Ke et al., CVPR 2025): video snippets with cross-frame attention; inverse depth; "
               "marigold video --mode rolling")
register_model("demo-depth", str(DEMO_DIR / "depth"), "depth",
               "Bundled demo (offline, ~5 MB): tiny model trained by recipes/demo.py on rendered scenes")
register_model("demo-normals", str(DEMO_DIR / "normals"), "normals",
               "Bundled demo (offline, ~5 MB): tiny model trained by recipes/demo.py on rendered scenes")
