"""``marigold train CONFIG [key=value ...]``: the Marigold fine-tuning protocol.

Multi-GPU: ``accelerate launch --num_processes N -m marigold_toolkit.cli.main train CONFIG``. Rerunning the
same command resumes from the last complete checkpoint in ``output_dir``.

Exit codes: 0 finished, 1 training stopped (e.g. non-finite loss; the last good checkpoint is kept), 2 usage or
configuration error (reported before any work starts).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..checkpoints.resolve import CheckpointError
from ..training.config import ConfigError, load_config
from ..training.trainer import Trainer, TrainingError

logger = logging.getLogger(__name__)


def add_config_command(sub, name: str, help: str, doc: str, config_example: str, override_example: str,
                       func) -> argparse.ArgumentParser:
    """A subcommand ``NAME CONFIG [key=value ...]`` (YAML config + OmegaConf-style overrides)."""
    p = sub.add_parser(name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help=f"YAML config, e.g. {config_example}")
    p.add_argument("overrides", nargs="*", help=f"key=value overrides, e.g. {override_example}")
    p.set_defaults(func=func)
    return p


def add_parser(sub) -> None:
    add_config_command(sub, "train", "fine-tune a Marigold model from a YAML config", __doc__,
                       "configs/train/depth.yaml", "optim.max_iter=100", run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.overrides)
        trainer = Trainer(cfg)
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = trainer.train()
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    logger.info("finished %d steps; checkpoint %s", summary["steps"], summary["checkpoint"])
    return 0
