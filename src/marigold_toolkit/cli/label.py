"""``marigold label``: label an image collection into sharded, resumable outputs, in this process or on Ray Data.

Writes OUT/part-XXXXX.parquet (one row per image: key, sha256, width, height, model, settings, seed and one
binary column per output) and OUT/manifest.json (model, settings, counts, failed inputs with their reasons), or
with --format files the `marigold predict` file layout. Each image's seed derives from --seed and the SHA-256 of
its bytes. A killed job rerun with the same command resumes: finished shards are kept, nothing is written twice.

Exit codes: 0 all inputs labelled, 1 some failed (listed in the manifest; the rest are done), 2 usage error (bad
flag, model that cannot be found or loaded, output folder of other settings, missing Ray).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..label.engines import ENGINES, RayOptions
from ..label.job import LabelError, LabelJob, run_label_job
from ..label.records import InferenceSettings
from ..label.shards import FORMATS
from ..pipeline.fast import fast_settings
from .predict import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_inference_arguments, assign_stems, below_minimum

SEED_HELP = ("job seed (default: %(default)s); image I gets the seed image_seed(S, sha256(I)), so its result equals "
             "`marigold predict I --seed <that>` whatever the sharding, workers or order")


def add_parser(sub) -> None:
    p = sub.add_parser("label", help="label image collections at scale: sharded, resumable, locally or on Ray Data",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUTS",
                   help="image files, folders (recursive), quoted glob patterns, .txt lists of inputs, .parquet "
                        "tables with an image-bytes column, fsspec URLs (s3://, gs://, ... with their backend)")
    p.add_argument("--output", required=True, type=Path, metavar="OUT", help="folder for the shards and manifest")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: this process (several with accelerate launch); ray: a Ray Data pipeline "
                        "(default: %(default)s)")
    p.add_argument("--address", metavar="RAY_ADDRESS",
                   help="Ray cluster to join (e.g. auto, ray://head:10001); default: start one on this machine")
    p.add_argument("--workers", type=int, metavar="N", help="model actors of --engine ray (default: 1)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                   help="GPUs reserved per Ray worker (default: %(default)s: CPU workers)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C",
                   help="CPUs reserved per Ray worker, and its torch threads (default: %(default)s)")
    p.add_argument("--shard-size", type=int, default=256, metavar="K", help="images per shard (default: %(default)s)")
    p.add_argument("--format", choices=FORMATS, default="parquet",
                   help="parquet: part-XXXXX.parquet shards; files: marigold predict's files (default: %(default)s)")
    add_inference_arguments(p)
    p.add_argument("--max-megapixels", type=float, default=100.0, help="refuse larger inputs (default: %(default)s)")
    for action in p._actions:  # the job seed means something else here than predict's --seed
        if action.dest == "seed":
            action.default, action.help = 0, SEED_HELP
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    problem = below_minimum(args, {"--ensemble": 1, "--batch-size": 1, "--steps": 1, "--processing-resolution": 0,
                                   "--shard-size": 1, "--workers": 1})
    if problem is None and not args.max_megapixels > 0:
        problem = f"--max-megapixels must be > 0, got {args.max_megapixels}"
    if problem is None and "," in str(args.model):
        problem = f"--model {args.model}: label runs one model per job (one output folder per model)"
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    # --fast is resolved here, once, so every worker runs (and the settings hash records) the same dtype, autocast and
    # layout
    dtype, channels_last, autocast = fast_settings(args.fast, args.device, args.dtype, args.channels_last,
                                                   args.autocast)
    settings = InferenceSettings(
        num_inference_steps=args.steps, ensemble_size=args.ensemble, processing_resolution=args.processing_resolution,
        match_input_resolution=not args.no_match_input_resolution, resample=args.resample or "bilinear",
        seed=args.seed, batch_size=args.batch_size, dtype=dtype, variant=args.variant, device=args.device,
        reduction=args.reduction, ensembling_method=args.ensembling_method, fast=args.fast, noise=args.noise,
        task=args.task, vae_tiling=args.tiled_vae,
        vae_tile_size=args.vae_tile_size, channels_last=channels_last, decoder=args.decoder, autocast=autocast,
        max_pixels=int(args.max_megapixels * 1e6))
    job = LabelJob(
        inputs=args.inputs, output=args.output, model=args.model, settings=settings, engine=args.engine,
        format=args.format, shard_size=args.shard_size, stems=assign_stems,
        ray=RayOptions(address=args.address, workers=args.workers or 1, cpus_per_worker=args.cpus_per_worker,
                       gpus_per_worker=args.gpus_per_worker))
    if args.workers is not None and args.engine == "local":
        print("error: --workers applies to --engine ray; for several processes on one machine use `accelerate "
              "launch -m marigold_toolkit.cli.main label ... --engine local`", file=sys.stderr)
        return EXIT_USAGE
    try:
        summary = run_label_job(job)
    except LabelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for failure in summary.new_failures:
        print(f"error: {failure.key}: {failure.reason}", file=sys.stderr)
    counts = summary.manifest["counts"]
    if summary.rank == 0 and not args.quiet:
        print(f"labelled {counts['labelled']} of {counts['inputs']} input(s) in {counts['shards']} shard(s), "
              f"{counts['failed']} failed; this run: {summary.images_done} image(s) in {summary.shards_written} "
              f"new shard(s), {summary.images_per_second:.2f} img/s; manifest: {summary.manifest_path}",
              file=sys.stderr)
    return EXIT_FAILED if counts["failed"] else EXIT_OK
