"""``marigold pretrain-base CONFIG [key=value ...]``: pretrain a small SD2-layout generative base on images.

See :mod:`marigold_toolkit.training.pretrain`. Exit codes: 0 done, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("pretrain-base", help="pretrain a small Stable-Diffusion-layout base (VAE + UNet) on images",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help="YAML config, e.g. configs/demo/base.yaml")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. unet.steps=0")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.config import ConfigError
    from ..training.pretrain import load_pretrain_config, pretrain_base

    try:
        cfg = load_pretrain_config(args.config, args.overrides)
        pretrain_base(cfg)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
