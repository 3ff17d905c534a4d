"""``marigold distill-decoder CHECKPOINT --output DIR``: distil a tiny decoder (diffusers ``AutoencoderTiny``) for a
checkpoint's VAE on its own task's latents; use it with ``--decoder DIR``.

See :mod:`marigold_toolkit.training.distill_decoder`. Resumable (work folder ``DIR.work/``). Exit codes: 0 done,
1 failed while running, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..checkpoints.resolve import CheckpointError
from ..training.distill_decoder import DistillConfig, DistillError, distill_decoder

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def add_parser(sub) -> None:
    p = sub.add_parser("distill-decoder", help="distil a tiny decoder for a checkpoint (use it with --decoder)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="teacher: registry alias, hub id or folder")
    p.add_argument("--output", required=True, type=Path, help="folder of the distilled decoder")
    p.add_argument("--data", action="append", type=Path, default=[], metavar="DIR",
                   help="training folder (folder layout, the checkpoint's task targets); repeatable; default: render "
                        "--render scenes with Mitsuba")
    p.add_argument("--render", type=int, default=256, metavar="N", help="scenes to render without --data (%(default)s)")
    p.add_argument("--render-resolution", type=int, nargs=2, metavar=("H", "W"),
                   help="rendering size (default: 3:4 at the checkpoint's processing resolution)")
    p.add_argument("--width", type=int, default=16, help="student channels at every level (TAESD: 64; %(default)s)")
    p.add_argument("--blocks", type=_ints, default=(1, 1, 1, 1),
                   help="residual blocks per level, comma-separated (TAESD: 3,3,3,1; default 1,1,1,1)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--crop", type=int, default=16, help="training crop in latent pixels (x8 image pixels)")
    p.add_argument("--holdout", type=int, default=16, help="samples held out for the deviation report")
    p.add_argument("--with-predictions", action="store_true",
                   help="also train on the checkpoint's own predicted latents of the images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--overwrite", action="store_true", help="discard an existing work folder and start over")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = DistillConfig(
        checkpoint=args.checkpoint, output=args.output, data=list(args.data), render=args.render,
        render_resolution=tuple(args.render_resolution) if args.render_resolution else None, width=args.width,
        blocks=tuple(args.blocks), steps=args.steps, batch_size=args.batch_size, lr=args.lr, crop=args.crop,
        holdout=args.holdout, with_predictions=args.with_predictions, seed=args.seed, device=args.device)
    try:
        report = distill_decoder(cfg, overwrite=args.overwrite)
    except (DistillError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    dev = report["held_out_deviation"]
    print(json.dumps({"output": str(args.output), "deviation_key": report["deviation_key"],
                      "held_out_deviation": dev, "decode_seconds": report["decode_seconds"]}))
    return EXIT_OK
