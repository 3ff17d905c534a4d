"""``marigold evaluate``: the paper's benchmarks, or a folder of predictions against a folder of ground truth.

Benchmark mode:  marigold evaluate --benchmark NAME --data-dir ROOT --model MODEL [inference flags]
                 writes report.json, per_image.csv and report.md (published numbers next to ours) to --output-dir;
                 predictions are cached there, keyed by model and settings (re-scoring is free, runs resume).
                 A video benchmark (pointodyssey-video, scannet-video, bonn-video, dydtof-video) runs the video
                 pipeline per sequence (--mode, --preset as `marigold video`) and writes per_sequence.csv.
Folder mode:     marigold evaluate --task depth|normals|intrinsics|depth_completion --predictions DIR --ground-truth DIR
                 [--alignment least_squares|least_squares_disparity|none] [--min-depth X] [--max-depth Y]
                 --output REPORT.json

Exit codes: 0 report written, 1 some images could not be scored (report still written) or none could,
2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import replace
from pathlib import Path

from ..checkpoints.resolve import CheckpointError
from ..evaluation.datasets import VideoBenchmark, get_benchmark
from ..evaluation.folder import FolderError, evaluate_folder
from ..evaluation.plots import write_plots
from ..evaluation.report import write_csv, write_json
from ..evaluation.runner import evaluate_benchmark, resolve_settings
from ..evaluation.video_runner import evaluate_video_benchmark
from ..io.video import VideoReadError
from ..pipeline.predictor import Predictor
from ..tasks import get_task
from ..video.job import VIDEO_MODES, protocol_mode, video_settings
from ..video.rolling import PRESETS
from .predict import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_inference_arguments,
    below_minimum,
    ensembling_from_args,
    predictor_layout_kwargs,
)

logger = logging.getLogger(__name__)

ALIGNMENTS = ("least_squares", "least_squares_disparity", "none")


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="score a model on a benchmark, or a prediction folder against ground truth",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("benchmark mode")
    g.add_argument("--benchmark", help="benchmark name (see `marigold benchmarks`)")
    g.add_argument("--data-dir", "--data-root", dest="data_dir", type=Path,
                   help="root folder of the benchmark data in its published layout")
    g.add_argument("--split", type=Path, help="split file, or a video benchmark's folder of sequence CSV files "
                                              "(default: the authors' name under --data-dir)")
    g.add_argument("--output-dir", type=Path, help="report folder (default: eval/<benchmark>/<model>)")
    g.add_argument("--max-samples", type=int, help="only the first N samples (quick checks)")
    g.add_argument("--plot-images", type=int, default=4, help="error maps for the first N images with --plots")
    g.add_argument("--plot-stems", help="comma-separated sample stems to draw error maps for (with --plots)")
    add_inference_arguments(g, ensemble_default=None)
    v = p.add_argument_group("video benchmarks")
    v.add_argument("--mode", choices=VIDEO_MODES,
                   help="video pipeline (see `marigold video`; default: rolling with --preset paper for a "
                        "checkpoint in RollingDepth's layout, else latent-init)")
    v.add_argument("--preset", choices=sorted(PRESETS), help="rolling: the RollingDepth authors' presets")
    f = p.add_argument_group("folder mode")
    f.add_argument("--predictions", type=Path, help="folder of <stem>_<target>.npy predictions")
    f.add_argument("--ground-truth", type=Path, help="folder of <stem>.npy ground truth (intrinsics: <target>/<stem>.npy)")
    f.add_argument("--output", type=Path, help="REPORT.json path")
    f.add_argument("--up-to-scale", default="shading,residual",
                   help="intrinsic targets compared after scale alignment (default: %(default)s)")
    c = p.add_argument_group("both")
    c.add_argument("--alignment", choices=ALIGNMENTS + ("least_square", "least_square_disparity"),
                   help="depth alignment (default: least squares in the model's / predictions' own space, "
                        "depth or disparity; a benchmark's protocol otherwise)")
    c.add_argument("--min-depth", type=float, help="depth range lower bound in metres (folder mode)")
    c.add_argument("--max-depth", type=float, help="depth range upper bound in metres (folder mode)")
    c.add_argument("--plots", action="store_true", help="also write error maps and a histogram as PNG")
    p.set_defaults(func=run)


def _usage(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    folder_mode = args.predictions is not None or args.ground_truth is not None
    if folder_mode and args.benchmark:
        return _usage("use either --benchmark or --predictions/--ground-truth, not both")
    if folder_mode:
        return _run_folder(args)
    if not args.benchmark:
        return _usage("give --benchmark NAME --data-dir ROOT, or --task --predictions --ground-truth --output")
    return _run_benchmark(args)


def _alignment(args) -> str | None:
    return {"least_square": "least_squares", "least_square_disparity": "least_squares_disparity"}.get(
        args.alignment, args.alignment)


def _run_folder(args) -> int:
    missing = [f for f, v in (("--task", args.task), ("--predictions", args.predictions),
                              ("--ground-truth", args.ground_truth), ("--output", args.output)) if v is None]
    if missing:
        return _usage(f"folder mode needs {', '.join(missing)}")
    try:
        report, rows = evaluate_folder(
            args.task, args.predictions, args.ground_truth, alignment=_alignment(args),
            min_depth=args.min_depth, max_depth=args.max_depth,
            up_to_scale=tuple(t for t in args.up_to_scale.split(",") if t), show_progress=True,
        )
    except FolderError as exc:
        return _usage(str(exc))
    out: Path = args.output
    write_json(out, report)
    write_csv(out.with_name(out.stem + "_per_image.csv"), rows)
    if args.plots:
        task = get_task(args.task).for_folders(args.ground_truth, args.predictions)
        report["plots"] = [str(p) for p in write_plots(out.parent, task, rows, [])]
        write_json(out, report)
    for stem in report["missing_predictions"]:
        print(f"warning: {stem}: ground truth without prediction", file=sys.stderr)
    for stem in report["missing_ground_truth"]:
        print(f"warning: {stem}: prediction without ground truth", file=sys.stderr)
    for stem, why in report["failed"].items():
        print(f"error: {stem}: {why}", file=sys.stderr)
    logger.info("%d image(s) scored; report %s", report["num_images"], out)
    return EXIT_FAILED if report["failed"] or report["num_images"] == 0 else EXIT_OK


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip("/").split("/")[-1]) or "model"


def _run_benchmark(args) -> int:
    if args.data_dir is None:
        return _usage("--benchmark needs --data-dir")
    try:
        bench = get_benchmark(args.benchmark, args.data_dir, args.split)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        return _usage(str(exc).strip("'\""))
    if isinstance(bench, VideoBenchmark):
        return _run_video_benchmark(args, bench)
    if args.mode or args.preset:
        return _usage(f"--mode and --preset apply to video benchmarks; '{bench.name}' is an image benchmark")
    problem = below_minimum(args, {"--ensemble": 1, "--batch-size": 1, "--steps": 1, "--max-samples": 1,
                                   "--processing-resolution": 0})
    if problem:
        return _usage(problem)
    try:
        predictor = Predictor.from_pretrained(args.model, dtype=args.dtype, device=args.device, variant=args.variant,
                                              task=args.task, **predictor_layout_kwargs(args))
    except (CheckpointError, ValueError, OSError) as exc:
        return _usage(str(exc))
    needed = bench.model_task or bench.task
    if predictor.task.name != needed:
        return _usage(f"benchmark '{bench.name}' needs a {needed} model; '{args.model}' predicts "
                      f"{predictor.task.name}")
    settings = resolve_settings(bench, args.steps, args.ensemble, args.processing_resolution, args.seed,
                                args.batch_size, args.resample, args.noise,
                                zero_noise=(args.noise or predictor.spec.initial_noise) == "zeros")
    if not bench.task_ensembling and (args.reduction or args.ensembling_method):
        return _usage(f"--reduction/--ensembling-method: benchmark '{bench.name}' merges its ensembles by the median")
    try:  # resolved here (the fast tier's method included), so the cache key and report name what ran
        ens = predictor.resolve_ensembling(ensembling_from_args(predictor.task, args), settings.ensemble_size)
    except ValueError as exc:
        return _usage(str(exc))
    settings = replace(settings, reduction=ens.get("reduction"), ensembling_method=ens.get("method"))
    out_dir = args.output_dir or Path("eval") / bench.name / _slug(str(args.model))
    report = evaluate_benchmark(bench, predictor, out_dir, settings, alignment=_alignment(args),
                                max_samples=args.max_samples, plots=args.plots, plot_images=args.plot_images,
                                plot_stems=[t for t in (args.plot_stems or "").split(",") if t] or None)
    logger.info("%s: %d image(s) scored; report in %s", bench.name, report["num_images"], out_dir)
    return EXIT_OK if report["num_images"] > 0 else EXIT_FAILED


def _run_video_benchmark(args, bench: VideoBenchmark) -> int:
    problem = below_minimum(args, {"--steps": 1, "--max-samples": 1, "--processing-resolution": 0})
    if problem:
        return _usage(problem)
    if args.ensemble not in (None, 1):
        return _usage(f"--ensemble {args.ensemble}: the video pipeline predicts each frame once")
    if args.reduction or args.ensembling_method:
        return _usage("--reduction/--ensembling-method: the video pipeline predicts each frame once")
    if args.plots:
        logger.warning("--plots: no plots are drawn for video benchmarks")
    dtype = args.dtype or (PRESETS[args.preset]["dtype"] if args.preset else None)
    try:
        predictor = Predictor.from_pretrained(args.model, dtype=dtype, device=args.device, variant=args.variant,
                                              task=args.task, **predictor_layout_kwargs(args))
    except (CheckpointError, ValueError, OSError) as exc:
        return _usage(str(exc).splitlines()[0])
    if predictor.task.name != bench.task or not predictor.task.supports_video:
        return _usage(f"benchmark '{bench.name}' needs a {bench.task} model that `marigold video` runs; "
                      f"'{args.model}' predicts {predictor.task.name}")
    mode, preset = args.mode, args.preset
    if mode is None:
        mode, default_preset = protocol_mode(predictor)
        if preset is not None:
            mode = "rolling"
        elif mode == "rolling":
            preset = default_preset
    try:
        settings, _ = video_settings(mode, preset, steps=args.steps, processing_resolution=args.processing_resolution,
                                     seed=args.seed if args.seed is not None else bench.inference.seed,
                                     resample=args.resample or "bilinear", write_png=False, write_mp4=False)
    except ValueError as exc:
        return _usage(str(exc).splitlines()[0])
    out_dir = args.output_dir or Path("eval") / bench.name / _slug(str(args.model))
    try:
        report = evaluate_video_benchmark(bench, predictor, out_dir, settings, alignment=_alignment(args),
                                          max_samples=args.max_samples, preset=preset)
    except (VideoReadError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {bench.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)
        return EXIT_FAILED
    logger.info("%s: %d sequence(s) scored (%s); report in %s", bench.name, report["num_sequences"], mode, out_dir)
    return EXIT_OK if report["num_sequences"] > 0 else EXIT_FAILED
