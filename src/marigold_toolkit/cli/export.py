"""``marigold export-onnx MODEL OUTPUT_DIR``: export UNet, VAE encoder and VAE decoder to ONNX for the fast tier.

Run the export with ``marigold predict ... --model MODEL --backend onnx --onnx-dir OUTPUT_DIR`` (or
``Predictor.from_pretrained(MODEL, backend="onnx", onnx_dir=OUTPUT_DIR)``). Needs ``pip install
"marigold-toolkit[fast]"`` (onnx, onnxruntime). Exit codes: 0 exported, 2 usage error (model not loadable,
output folder not empty, onnx missing).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..checkpoints.onnx import DEFAULT_OPSET, export_onnx
from ..checkpoints.resolve import CheckpointError

logger = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser("export-onnx", help="export a checkpoint's UNet and VAE to ONNX (fast tier)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="hub id, registry alias or local folder")
    p.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR", help="folder for the .onnx files and manifest")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17)")
    p.add_argument("--variant", help="weight file variant to read, e.g. fp16 (exported as float32)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export in OUTPUT_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        manifest = export_onnx(args.model, args.output_dir, opset=args.opset or DEFAULT_OPSET, variant=args.variant,
                               overwrite=args.overwrite)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logger.info("wrote %s", manifest)
    return 0
