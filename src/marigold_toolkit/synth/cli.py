"""``marigold synth``: render a synthetic training set (wired into the main CLI by ``add_parser``/``run``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .render import RENDER_MAPS
from .scene import HELDOUT_FAMILIES, SCENE_BUILDERS, SCENE_FAMILIES
from .writer import render_dataset

logger = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("synth", help="render a synthetic RGB + depth/normals/albedo/material dataset with Mitsuba 3",
                       description="Render procedural scenes into the folder training-data layout.")
    p.add_argument("--output-dir", required=True, help="dataset root (rgb/, depth/, normals/, ... are created)")
    p.add_argument("--num", type=int, required=True, help="number of samples (indices 0 .. num-1)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed; sample i uses a seed derived from (seed, i)")
    p.add_argument("--resolution", type=int, nargs=2, default=(120, 160), metavar=("H", "W"))
    p.add_argument("--spp", type=int, default=16, help="samples per pixel")
    p.add_argument("--workers", type=int, default=1, help="processes")
    p.add_argument("--scenes", default=",".join(SCENE_FAMILIES),
                   help=f"comma-separated scene families (training: {','.join(SCENE_FAMILIES)}; the held-out "
                        f"generator: {','.join(HELDOUT_FAMILIES)})")
    p.add_argument("--maps", choices=RENDER_MAPS, default="all",
                   help="all maps; geometry = RGB, depth, normals, material, mask (no albedo/shading pass, about "
                        "half the time); image = RGB only (one pass; image-only pretraining data)")
    p.add_argument("--variant", help="Mitsuba variant (default: $MARIGOLD_SYNTH_VARIANT or scalar_rgb; e.g. "
                                     "llvm_ad_rgb or cuda_ad_rgb where installed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _usage(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def run(args) -> int:
    families = tuple(s.strip() for s in str(args.scenes).split(",") if s.strip())
    unknown = [f for f in families if f not in SCENE_BUILDERS]
    if not families or unknown:
        return _usage(f"--scenes: unknown families {unknown!r}; known: {','.join(SCENE_BUILDERS)}")
    if args.num < 0 or args.spp < 1 or args.workers < 1 or min(args.resolution) < 1:
        return _usage("--num must be >= 0 and --spp, --workers, --resolution positive")
    try:
        import mitsuba
    except ImportError:
        return _usage("rendering needs Mitsuba 3: pip install 'marigold-toolkit[synth]'")
    if args.variant:
        if args.variant not in mitsuba.variants():
            return _usage(f"--variant {args.variant}: not available here; one of {', '.join(mitsuba.variants())}")
        os.environ["MARIGOLD_SYNTH_VARIANT"] = args.variant  # also read by the worker processes
    n = render_dataset(args.output_dir, args.num, seed=args.seed, resolution=tuple(args.resolution), spp=args.spp,
                       workers=args.workers, progress=not args.no_progress, families=families,
                       maps=args.maps)
    logger.info("synth: rendered %d new samples into %s", n, args.output_dir)
    return 0
