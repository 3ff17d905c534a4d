"""``marigold video``: temporally consistent depth for a video file or a folder of frames.

Writes ``<stem>_depth.npy`` (float32 [T, H, W] in [0, 1]), ``<stem>_depth/`` (16-bit PNG frames),
``<stem>_depth.mp4`` (input | colourised depth) and ``<stem>_depth.json``; a rerun continues a killed job.

Exit codes: 0 done, 1 the input could not be read or predicted, 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..checkpoints.resolve import CheckpointError
from ..io.video import FrameSelection, FrameSource, VideoReadError
from ..pipeline.predictor import Predictor
from ..video.job import VIDEO_MODES, VideoSettings, run_video, video_settings
from ..video.rolling import PRESETS
from .predict import EXIT_FAILED, EXIT_OK, EXIT_USAGE, below_minimum

logger = logging.getLogger(__name__)


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 1,10,25") from None


def add_parser(sub) -> None:
    p = sub.add_parser("video", help="temporally consistent video depth (latent init, RollingDepth)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="INPUT", type=Path, help="a video file (PyAV) or a folder of frames")
    p.add_argument("--model", default="depth-lcm-v1-0",
                   help="depth model (rolling: rollingdepth-v1-0 or a folder in its layout) (default: %(default)s)")
    p.add_argument("--output-dir", required=True, type=Path)
    p.add_argument("--mode", choices=VIDEO_MODES, default="latent-init",
                   help="latent-init: each frame starts from 0.9 common noise + 0.1 the previous frame's latent; "
                        "rolling: RollingDepth; independent: plain per-frame prediction (default: %(default)s)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="rolling: the authors' presets (resolution, "
                   "dilations, refinement, dtype); explicit flags win")
    p.add_argument("--max-frames", type=int, help="at most this many frames (after --start/--end/--stride)")
    p.add_argument("--stride", type=int, default=1, help="every S-th frame (default: 1)")
    p.add_argument("--start", type=float, default=0.0, metavar="T", help="first second (default: 0)")
    p.add_argument("--end", type=float, metavar="T", help="stop before this second (default: the end)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of a frame folder (default: %(default)s)")
    p.add_argument("--steps", type=int, help="denoising steps (latent-init default: 1)")
    p.add_argument("--processing-resolution", type=int, help="long edge the model runs at (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shared noise (default: %(default)s)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="default: float32 (presets say)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: best available)")
    p.add_argument("--chunk", type=int, default=16, help="frames per resumable chunk (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="recompute when the outputs exist")
    p.add_argument("--no-png", action="store_true", help="skip the 16-bit PNG frames")
    p.add_argument("--no-mp4", action="store_true", help="skip the side-by-side video")
    g = p.add_argument_group("rolling (RollingDepth)")
    g.add_argument("--dilations", type=_ints, help="snippet dilations, must include 1 (default: 1,25)")
    g.add_argument("--snippet-length", type=int, help="frames per snippet (default: 3)")
    g.add_argument("--no-cap-dilation", action="store_true", help="keep dilations that exceed frames/length - 1")
    g.add_argument("--refine-steps", type=int, help="refinement steps, 0 = none (default: 0)")
    g.add_argument("--coalign-iterations", type=int, help="co-alignment iterations (default: 2000)")
    g.add_argument("--snippets-per-call", type=int, default=1, help="snippets per UNet call (default: 1)")
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> tuple[VideoSettings, str]:
    return video_settings(args.mode, args.preset, dilations=args.dilations, snippet_length=args.snippet_length,
                          cap_dilation=not args.no_cap_dilation, refine_steps=args.refine_steps,
                          snippets_per_call=args.snippets_per_call, coalign_iterations=args.coalign_iterations,
                          steps=args.steps, processing_resolution=args.processing_resolution, seed=args.seed,
                          chunk=args.chunk, write_png=not args.no_png, write_mp4=not args.no_mp4, dtype=args.dtype)


def run(args: argparse.Namespace) -> int:
    problem = below_minimum(args, {"--steps": 1, "--processing-resolution": 0, "--max-frames": 1, "--stride": 1,
                                   "--chunk": 1, "--snippet-length": 1, "--refine-steps": 0,
                                   "--coalign-iterations": 1, "--snippets-per-call": 1})
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings, dtype = _settings(args)
        selection = FrameSelection(start=args.start, end=args.end, stride=args.stride, max_frames=args.max_frames)
    except ValueError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    try:
        source = FrameSource(args.input, selection, folder_fps=args.fps)
    except VideoReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED if args.input.exists() else EXIT_USAGE
    try:
        predictor = Predictor.from_pretrained(args.model, dtype=dtype, device=args.device)
    except (CheckpointError, ValueError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_USAGE
    if not predictor.task.supports_video:
        print(f"error: --model {args.model} predicts {predictor.task.name}; video depth needs a depth model",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        result = run_video(predictor, source, args.output_dir, settings, overwrite=args.overwrite)
    except VideoReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, RuntimeError) as exc:
        print(f"error: {args.input}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_FAILED
    logger.info("%s: %d frames in %.1f s (%s); outputs in %s", result.stem, result.frames, result.seconds,
                result.prediction_space, args.output_dir)
    return EXIT_OK
