"""``marigold pretrain-base CONFIG [key=value ...]``: pretrain a small SD2-layout generative base on images.

See :mod:`marigold_toolkit.demo.pretrain`. Exit codes: 0 done, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys

from ..demo.pretrain import load_pretrain_config, pretrain_base
from ..training.config import ConfigError
from .train import add_config_command


def add_parser(sub) -> None:
    add_config_command(sub, "pretrain-base", "pretrain a small Stable-Diffusion-layout base (VAE + UNet) on images",
                       __doc__, "configs/demo/base.yaml", "unet.steps=0", run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_pretrain_config(args.config, args.overrides)
        pretrain_base(cfg)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
