"""``marigold predict``: run a checkpoint over image files and folders.

Exit codes: 0 all inputs succeeded, 1 any input failed (the others are still processed), 2 usage error
(bad flag, model that cannot be loaded).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm.auto import tqdm

from ..checkpoints.resolve import CheckpointError
from ..core.atomic import clean_stale_temporaries
from ..io.files import save_preview
from ..io.images import ImageReadError, find_images, load_image
from ..pipeline.high_resolution import HighResolution
from ..pipeline.predictor import Predictor
from ..tasks import ImageContext, task_names
from ..tasks.depth.export import EXPORT_FORMATS
from ..tasks.depth.geometry import MAX_DEPTH_JUMP
from ..tasks.depth.metric import FIT_METHODS, FIT_SPACES
from ..tasks.depth.spaces import PREDICTION_SPACES

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_inference_arguments(p: argparse.ArgumentParser, ensemble_default: int | None = 1) -> None:
    """Inference flags shared by ``predict`` and ``evaluate``."""
    p.add_argument("--model", default="prs-eth/marigold-depth-v1-1",
                   help="hub id, registry alias (e.g. demo-depth, offline) or local folder; predict also takes a "
                        "comma-separated list, e.g. demo-depth,demo-normals (default: %(default)s)")
    p.add_argument("--task", choices=task_names(),
                   help="expected task (an error if the checkpoint predicts something else); names the task of a "
                        "checkpoint whose layout does not tell it (E2E-FT's Stable Diffusion layout)")
    p.add_argument("--steps", type=int, help="denoising steps (default: the checkpoint's)")
    p.add_argument("--noise", choices=("zeros", "gaussian"),
                   help="initial latents: zeros (end-to-end fine-tuned models, one deterministic step) or gaussian "
                        "(default: the checkpoint's; E2E-FT checkpoints and our e2e-trained ones say zeros)")
    p.add_argument("--ensemble", type=int, default=ensemble_default, help="ensemble size; >1 also writes uncertainty")
    p.add_argument("--processing-resolution", type=int,
                   help="long edge the model runs at, 0 = native (default: the checkpoint's)")
    p.add_argument("--no-match-input-resolution", action="store_true",
                   help="keep predictions at the processing resolution")
    p.add_argument("--resample", default=None,
                   choices=("nearest", "nearest-exact", "bilinear", "bicubic", "area"),
                   help="resampling for resizing input and output (default: bilinear)")
    p.add_argument("--seed", type=int, help="seed; each image then gets Generator('cpu').manual_seed(S)")
    p.add_argument("--batch-size", type=int, default=1, help="image x ensemble rows per model call")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"),
                   help="model dtype (default: float32, or what --fast picks for this machine)")
    p.add_argument("--autocast", choices=("bfloat16", "float16"),
                   help="mixed precision: convolutions, linear layers and attention in this dtype; norms, residual "
                        "stream, the networks' narrow ends and the denoising loop in float32 (models float32)")
    p.add_argument("--fast", action="store_true",
                   help="machine-aware fast tier, logged with its reason: bfloat16 autocast channels-last on CPUs "
                        "with AVX-512-BF16/AMX, float32 on other CPUs, half precision + torch.compile (CUDA graphs) "
                        "on CUDA; an explicit --dtype/--autocast/--backend/--channels-last wins")
    p.add_argument("--decoder", metavar="PATH|HUB_ID|bundled",
                   help="decode with a tiny AutoencoderTiny instead of the VAE decoder: 'bundled' (the checkpoint's "
                        "tiny_decoder/, e.g. the demo models'), a folder from 'marigold distill-decoder', or a hub id "
                        "such as madebyollin/taesd; faster, not exact (see its distill_report.json)")
    p.add_argument("--variant", help="weight file variant, e.g. fp16")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--reduction", help="ensembling reduction (depth/intrinsics: median|mean, normals: closest|mean)")
    p.add_argument("--ensembling-method", metavar="METHOD",
                   help="depth ensembling: bfgs (the authors' and diffusers', the default) or least-squares "
                        "(closed form, continuous in the members; the default of --fast)")
    p.add_argument("--tiled-vae", action="store_true",
                   help="tiled VAE encode/decode for very large inputs (bounded memory; slightly different output)")
    p.add_argument("--vae-tile-size", type=int, default=None, metavar="PX",
                   help="tile edge in pixels for --tiled-vae, which it implies (default: the VAE's sample_size, 768 "
                        "for the public checkpoints)")
    p.add_argument("--channels-last", action="store_true",
                   help="run UNet and VAE in channels-last (NHWC) layout: a few %% faster on CPUs, more on GPUs with "
                        "half precision; outputs move at float-rounding level")


def ensembling_from_args(task, args: argparse.Namespace) -> dict | None:
    """``ensembling_kwargs`` of ``--reduction`` and ``--ensembling-method`` for ``task``; a ValueError names the
    flag and the problem."""
    for flag, options in (("--reduction", {"reduction": args.reduction}),
                          ("--ensembling-method", {"method": args.ensembling_method})):
        try:
            task.ensembling_options(**options)
        except ValueError as exc:
            raise ValueError(f"{flag}: {exc}") from exc
    return task.ensembling_options(args.reduction, args.ensembling_method)


def predictor_layout_kwargs(args: argparse.Namespace) -> dict:
    """The Predictor arguments of :func:`add_inference_arguments`' memory/layout/fast-tier flags."""
    return dict(vae_tiling=args.tiled_vae or args.vae_tile_size is not None, vae_tile_size=args.vae_tile_size,
                channels_last=args.channels_last, fast=args.fast, decoder=args.decoder, autocast=args.autocast)


def add_export_arguments(p: argparse.ArgumentParser, metric: bool = True) -> None:
    """The 3D-export flags (and, with ``metric``, the sparse-depth metric fit) of ``predict`` and ``complete``."""
    g = p.add_argument_group("3D export" + (" and metric depth" if metric else "") + " (depth models)")
    g.add_argument("--export", metavar="FORMATS",
                   help=f"comma-separated {','.join(EXPORT_FORMATS)}: <stem>_points.ply (point cloud), <stem>_mesh.glb "
                        "(mesh), <stem>_depth.exr (float32 depth)")
    g.add_argument("--intrinsics", type=Path, metavar="CAM.json",
                   help="camera intrinsics fx, fy, cx, cy in pixels (a marigold synth camera JSON works as it is)")
    g.add_argument("--fov-x", type=float, metavar="DEG",
                   help="horizontal field of view instead of --intrinsics (default: EXIF focal length, else 65)")
    g.add_argument("--mesh-max-jump", type=float, default=MAX_DEPTH_JUMP, metavar="FRACTION",
                   help="GLB: drop triangles whose depths differ by more than this fraction (default: %(default)s)")
    if metric:
        g.add_argument("--sparse-depth", type=Path, metavar="FILE|DIR",
                       help="sparse metric depth: .npy HxW metres (0 = missing), 16-bit PNG in mm, or CSV u,v,depth; "
                            "a folder pairs files by stem; writes <stem>_depth_metric.npy/.json, makes exports metric")
        g.add_argument("--fit-space", choices=FIT_SPACES, default=None,
                       help="fit the scale and shift in depth or disparity space (default: the model's prediction "
                            "space)")
        g.add_argument("--output-space", choices=PREDICTION_SPACES, default=None,
                       help="also write the prediction converted to this space as <stem>_<space>.npy/.png/"
                            "_colored.png (default: the model's own space, nothing extra). An affine-invariant "
                            "prediction has an unknown shift, so this needs --sparse-depth (exit 2 without it)")
        g.add_argument("--fit-method", choices=FIT_METHODS, default="irls",
                       help="robust fit: irls (Huber) or ransac (default: %(default)s)")


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="predict depth / normals / intrinsics for images and folders",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUTS", help="image files and/or folders (searched recursively)")
    p.add_argument("--output-dir", required=True, type=Path, help="folder for the output files")
    add_inference_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="recompute inputs whose outputs already exist")
    p.add_argument("--preview", action="store_true", help="also write <stem>_preview.png: input | visualisations")
    p.add_argument("--max-megapixels", type=float, default=100.0, help="refuse larger inputs (default: %(default)s)")
    p.add_argument("--backend", choices=("eager", "compile", "onnx"), default="eager",
                   help="fast tier: torch.compile, or ONNX Runtime on an export (--onnx-dir); default eager")
    p.add_argument("--compile", action="store_true", help="same as --backend compile")
    p.add_argument("--onnx-dir", type=Path, help="folder written by 'marigold export-onnx' (for --backend onnx)")
    g = p.add_argument_group("high resolution (depth models)")
    g.add_argument("--hr", action="store_true",
                   help="global pass at the processing resolution, refined by overlapping tiles at native resolution, "
                        "each aligned to the global prediction and blended")
    g.add_argument("--hr-overlap", type=float, default=0.5, metavar="FRACTION",
                   help="fraction of a tile shared with each neighbour, in [0, 1) (default: %(default)s)")
    g.add_argument("--hr-tile-size", type=int, metavar="PX",
                   help="tile edge in input pixels (default: the processing resolution)")
    add_export_arguments(p)
    p.set_defaults(func=run)


def _high_resolution(args: argparse.Namespace) -> tuple[HighResolution | None, str | None]:
    """The --hr settings, or a usage problem."""
    if not args.hr:
        return None, None
    if args.no_match_input_resolution:
        return None, "--hr predicts at the input resolution; drop --no-match-input-resolution"
    if args.processing_resolution == 0:
        return None, "--hr needs a --processing-resolution > 0 for its global pass"
    try:
        return HighResolution(overlap=args.hr_overlap, tile_size=args.hr_tile_size), None
    except ValueError as exc:
        return None, str(exc).replace("high-resolution overlap", "--hr-overlap").replace(
            "high-resolution tile_size", "--hr-tile-size")


def assign_stems(paths: list[Path]) -> list[str]:
    """Output stem per input. Unique file stems are kept; inputs sharing a stem (``a/x.jpg``, ``b/x.png``) get
    ``<stem>-2``, ``<stem>-3``... in sorted path order, and a warning names the mapping."""
    by_stem: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_stem.setdefault(p.stem.lower(), []).append(i)
    stems = [p.stem for p in paths]
    taken = {s.lower() for s in stems}  # a new name must not be another input's own stem (a/x, b/x, c/x-2)
    for group in by_stem.values():
        if len(group) < 2:
            continue
        ordered = sorted(group, key=lambda i: str(paths[i]))
        k = 1
        for i in ordered[1:]:
            k += 1
            while f"{paths[i].stem}-{k}".lower() in taken:
                k += 1
            stems[i] = f"{paths[i].stem}-{k}"
            taken.add(stems[i].lower())
            logger.warning("%s: stem '%s' is used by %s; writing it as '%s'",
                           paths[i], paths[i].stem, paths[ordered[0]], stems[i])
    return stems


def below_minimum(args: argparse.Namespace, minimums: dict[str, int]) -> str | None:
    """A usage problem if a flag (``{"--steps": 1, ...}``; unset flags pass) is below its minimum."""
    for flag, minimum in minimums.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None and value < minimum:
            return f"{flag} must be >= {minimum}, got {value}"
    return None


def _extra_options(args: argparse.Namespace) -> tuple[dict, str | None]:
    """The options of the tasks' extra outputs (3D export, metric depth) from the flags, or a usage problem."""
    formats = tuple(f.strip().lower() for f in (args.export or "").split(",") if f.strip())
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown:
        return {}, f"--export: unknown format(s) {', '.join(unknown)}; use {','.join(EXPORT_FORMATS)}"
    for flag, path in (("--intrinsics", args.intrinsics), ("--sparse-depth", args.sparse_depth)):
        if path is not None and not path.exists():
            return {}, f"{flag} {path}: no such file or folder"
    if args.intrinsics is not None and args.fov_x is not None:
        return {}, "use either --intrinsics or --fov-x, not both"
    if args.fov_x is not None and not 0 < args.fov_x < 180:
        return {}, f"--fov-x {args.fov_x}: must lie strictly between 0 and 180 degrees"
    if not args.mesh_max_jump > 0:
        return {}, f"--mesh-max-jump {args.mesh_max_jump}: must be positive"
    return {"export": formats, "intrinsics": args.intrinsics, "fov_x": args.fov_x, "sparse_depth": args.sparse_depth,
            "fit_space": args.fit_space, "fit_method": args.fit_method, "mesh_max_jump": args.mesh_max_jump,
            "output_space": getattr(args, "output_space", None)}, None


def _fail(path, reason: str) -> None:
    print(f"error: {path}: {reason}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    problem = below_minimum(args, {"--ensemble": 1, "--batch-size": 1, "--steps": 1, "--processing-resolution": 0})
    extras, extras_problem = _extra_options(args)
    high_resolution, hr_problem = _high_resolution(args)
    problem = problem or extras_problem or hr_problem
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE

    images, input_errors = find_images(args.inputs)
    failed = 0
    for path, reason in input_errors:
        _fail(path, reason)
        failed += 1

    model_names = [m.strip() for m in str(args.model).split(",") if m.strip()]
    if not model_names:
        print("error: --model is empty", file=sys.stderr)
        return EXIT_USAGE
    predictors = []
    for name in model_names:
        try:
            predictors.append(Predictor.from_pretrained(
                name, dtype=args.dtype, device=args.device, variant=args.variant, backend=args.backend,
                onnx_dir=args.onnx_dir, compile=args.compile, task=args.task, **predictor_layout_kwargs(args)))
        except (CheckpointError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if args.task and args.task != predictors[-1].task.name:
            print(f"error: --task {args.task} but model '{name}' predicts {predictors[-1].task.name}",
                  file=sys.stderr)
            return EXIT_USAGE
    all_targets = [t for p in predictors for t in p.target_names]
    if len(set(all_targets)) != len(all_targets):
        print(f"error: --model {args.model}: several models predict the same target ({', '.join(all_targets)}), "
              "so their output files would collide; run them with separate --output-dir", file=sys.stderr)
        return EXIT_USAGE

    if high_resolution is not None:
        for name, predictor in zip(model_names, predictors):
            if not predictor.task.supports_tiling:
                print(f"error: --hr: model '{name}' predicts {predictor.task.name}; high resolution needs a depth "
                      "model", file=sys.stderr)
                return EXIT_USAGE

    for option in ("export", "sparse_depth", "output_space"):
        if extras.get(option) and not any(option in p.task.extra_options for p in predictors):
            flag = "--" + option.replace("_", "-")
            print(f"error: {flag}: none of the models ({args.model}) writes it; it needs a depth model",
                  file=sys.stderr)
            return EXIT_USAGE
    for name, predictor in zip(model_names, predictors):
        problem = predictor.task.extra_options_problem(extras)
        if problem:
            print(f"error: model '{name}': {problem}", file=sys.stderr)
            return EXIT_USAGE

    ens_kwargs = []
    for predictor in predictors:
        try:
            ens_kwargs.append(ensembling_from_args(predictor.task, args))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE

    out_dir: Path = args.output_dir
    # With --output-dir inside (or equal to) an input folder, a rerun finds the earlier results there: they are
    # outputs, not inputs (explicitly named files are kept).
    out_root = out_dir.resolve()
    own_suffixes = tuple(n for p in predictors for n in p.task.output_files("", True))
    own_suffixes += tuple(n for p in predictors for n in p.task.extra_files("", extras))  # e.g. converted PNGs
    own_suffixes += ("_preview.png",)
    explicit = {Path(a).resolve() for a in args.inputs if Path(a).is_file()}
    images = [p for p in images if p.resolve() in explicit
              or not (p.resolve().parent == out_root and p.name.endswith(own_suffixes))]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: --output-dir {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    clean_stale_temporaries(out_dir)

    stems = assign_stems(images)
    with_unc = args.ensemble > 1
    todo = []
    for path, stem in zip(images, stems):
        names = [n for p in predictors
                 for n in p.task.output_files(stem, with_unc) + p.task.extra_files(stem, extras)]
        if args.preview:
            names.append(f"{stem}_preview.png")
        if not args.overwrite and all((out_dir / n).is_file() for n in names):
            logger.info("%s: outputs exist, skipping (use --overwrite to recompute)", path)
            continue
        todo.append((path, stem))

    bar = tqdm(total=len(todo), desc="images", unit="img", disable=None)
    # Images are read lazily in chunks of --batch-size so memory stays bounded for large folders.
    chunk = max(1, args.batch_size)
    for start in range(0, len(todo), chunk):
        loaded = []
        for path, stem in todo[start : start + chunk]:
            try:
                loaded.append((path, stem, load_image(path, max_pixels=int(args.max_megapixels * 1e6))))
            except ImageReadError as exc:
                _fail(path, str(exc))
                failed += 1
                bar.update(1)
        if not loaded:
            continue
        per_model = []  # per model: its outputs for `loaded`, or None where prediction failed
        for predictor, predictor_ens_kwargs in zip(predictors, ens_kwargs):
            try:
                per_model.append(predictor.predict(
                    [arr for _, _, arr in loaded],
                    num_inference_steps=args.steps,
                    ensemble_size=args.ensemble,
                    processing_resolution=args.processing_resolution,
                    match_input_resolution=not args.no_match_input_resolution,
                    resample_method_input=args.resample or "bilinear",
                    resample_method_output=args.resample or "bilinear",
                    batch_size=args.batch_size,
                    seed=args.seed,
                    ensembling_kwargs=predictor_ens_kwargs,
                    noise=args.noise,
                    high_resolution=high_resolution,
                ))
            except (ValueError, RuntimeError, MemoryError) as exc:
                per_model = None
                for path, _, _ in loaded:
                    _fail(path, f"prediction failed ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
                failed += len(loaded)
                break
        if per_model is not None:
            for i, (path, stem, arr) in enumerate(loaded):
                try:
                    context = ImageContext(arr, path, [outputs[i] for outputs in per_model])
                    for predictor, outputs in zip(predictors, per_model):
                        predictor.task.write_outputs(out_dir, stem, outputs[i])
                        predictor.task.write_extras(out_dir, stem, outputs[i], extras, context)
                    if args.preview:
                        panels = [p.task.visualize(name, a) for p, outputs in zip(predictors, per_model)
                                  for name, a in outputs[i].targets.items()]
                        save_preview(out_dir / f"{stem}_preview.png", arr, panels)
                except OSError as exc:
                    _fail(path, f"cannot write outputs ({exc.strerror or exc})")
                    failed += 1
                except ValueError as exc:  # bad sparse depth / intrinsics for this input, a missing package
                    _fail(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                    failed += 1
        bar.update(len(loaded))
    bar.close()
    done = len(images) - (failed - len(input_errors))
    logger.info("%d image(s) done, %d failed; outputs in %s", done, failed, out_dir)
    return EXIT_FAILED if failed else EXIT_OK
