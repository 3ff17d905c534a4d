"""``marigold complete``: Marigold-DC depth completion of images with sparse metric depth measurements.

Writes ``<stem>_depth_metric.npy`` (float32 H x W, the units of the measurements, metres) and
``<stem>_depth_metric.json`` (settings, sparse file, per-member scale/shift and guidance loss), plus the
``--export`` files of ``marigold predict`` from the completed depth. A folder of sparse maps pairs them with the
images by stem. Exit codes: 0 all inputs succeeded, 1 any input failed (the others are still processed), 2 usage
error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..checkpoints.resolve import CheckpointError
from ..core.atomic import clean_stale_temporaries
from ..io.images import ImageReadError, find_images, load_image
from ..pipeline.completion import DEFAULT_SEED, DEFAULT_STEPS, CompletionError, complete_depth
from ..pipeline.predictor import Predictor
from ..tasks import ImageContext
from ..tasks.depth.export import export_file_names, metric_file_names, write_exports, write_metric
from ..tasks.depth.metric import SparseDepthError, read_sparse_depth, sparse_depth_file
from .predict import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    _extra_options,
    add_export_arguments,
    assign_stems,
    below_minimum,
)

logger = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser("complete", help="Marigold-DC: complete sparse metric depth guided by a depth model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="IMAGES", help="image files and/or folders (searched recursively)")
    p.add_argument("--sparse-depth", type=Path, required=True, metavar="FILE|DIR",
                   help="sparse depth: .npy HxW metres (0 = missing), 16-bit PNG mm, or CSV u,v,depth; a folder "
                        "pairs files by stem")
    p.add_argument("--model", default="depth-v1-0",
                   help="depth checkpoint (default: %(default)s, as the authors; run with DDIM trailing)")
    p.add_argument("--output-dir", required=True, type=Path, help="folder for the output files")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="denoising steps (default: %(default)s)")
    p.add_argument("--ensemble", type=int, default=1, help="members merged by the median (the authors' "
                                                           "evaluations: 10; default: %(default)s)")
    p.add_argument("--processing-resolution", type=int, help="long edge the model runs at (default: the "
                                                              "checkpoint's)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the initial latents (default: %(default)s)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--overwrite", action="store_true", help="recompute inputs whose outputs already exist")
    add_export_arguments(p, metric=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    args.fit_space = args.fit_method = None
    options, problem = _extra_options(args)
    problem = below_minimum(args, {"--ensemble": 1, "--steps": 1, "--processing-resolution": 0}) or problem
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    images, input_errors = find_images(args.inputs)
    failed = 0
    for path, reason in input_errors:
        print(f"error: {path}: {reason}", file=sys.stderr)
        failed += 1
    try:
        predictor = Predictor.from_pretrained(args.model, dtype=args.dtype, device=args.device)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if "sparse_depth" not in predictor.task.extra_options:
        print(f"error: --model {args.model}: depth completion needs a depth checkpoint; it predicts "
              f"{predictor.task.name}", file=sys.stderr)
        return EXIT_USAGE
    target = predictor.task.target_names[0]
    out_dir: Path = args.output_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: --output-dir {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    clean_stale_temporaries(out_dir)

    todo = []
    for path, stem in zip(images, assign_stems(images)):
        sparse_path = sparse_depth_file(args.sparse_depth, stem)
        if sparse_path is None:
            print(f"error: {path}: no sparse depth {args.sparse_depth}/{stem}.npy|png|csv", file=sys.stderr)
            failed += 1
            continue
        names = metric_file_names(stem, target) + export_file_names(stem, target, options["export"])
        if not args.overwrite and all((out_dir / n).is_file() for n in names):
            logger.info("%s: outputs exist, skipping (use --overwrite to recompute)", path)
            continue
        todo.append((path, stem, sparse_path))

    for path, stem, sparse_path in tqdm(todo, desc="images", unit="img", disable=None):
        try:
            image = load_image(path)
            sparse = read_sparse_depth(sparse_path, image.shape[0], image.shape[1])
            out = complete_depth(predictor, image, sparse, num_inference_steps=args.steps,
                                 ensemble_size=args.ensemble, processing_resolution=args.processing_resolution,
                                 seed=args.seed)
            record = {"sparse_depth": str(sparse_path), "units": "the sparse depth's (metres)",
                      "method": "Marigold-DC", "settings": out.settings,
                      "members": [{"scale": s, "shift": t, "loss_first": c[0], "loss_last": c[-1]}
                                  for (s, t), c in zip(out.scale_shift, out.losses)]}
            write_metric(out_dir, stem, target, out.depth, record)
            if options["export"]:
                valid = np.isfinite(out.depth) & (out.depth > 0)
                write_exports(out_dir, stem, target, out.depth, valid, "metres (Marigold-DC depth completion)",
                              out.depth, options, ImageContext(image, path))
        except (ImageReadError, SparseDepthError, CompletionError, ValueError, RuntimeError) as exc:
            print(f"error: {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
            failed += 1
        except OSError as exc:
            print(f"error: {path}: cannot write outputs ({exc.strerror or exc})", file=sys.stderr)
            failed += 1
    logger.info("%d image(s) completed, %d failed; outputs in %s", len(todo) - failed + len(input_errors), failed,
                out_dir)
    return EXIT_FAILED if failed else EXIT_OK
