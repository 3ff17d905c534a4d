"""The ``marigold`` console command."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..checkpoints.registry import list_models
from ..evaluation.datasets import BENCHMARKS, VIDEO_BENCHMARKS
from ..synth import cli as synth_cli
from . import complete, distill, evaluate, export, label, predict, pretrain, serve, train, video


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit with code 2 and one line
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="marigold", description="Marigold dense prediction: depth, surface normals, intrinsics.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    predict.add_parser(sub)
    complete.add_parser(sub)
    evaluate.add_parser(sub)
    train.add_parser(sub)
    pretrain.add_parser(sub)
    distill.add_parser(sub)
    export.add_parser(sub)
    label.add_parser(sub)
    serve.add_parser(sub)
    video.add_parser(sub)
    synth_cli.add_parser(sub)
    models = sub.add_parser("models", help="list the registered model aliases")
    models.set_defaults(func=_list_models)
    benchmarks = sub.add_parser("benchmarks", help="list the evaluation benchmarks and their protocol settings")
    benchmarks.set_defaults(func=_list_benchmarks)
    return parser


def _list_models(args) -> int:
    for m in list_models():
        print(f"{m.alias:22s} {m.hub_id:42s} {m.task:11s} {m.description}")
    return 0


def _list_benchmarks(args) -> int:
    for name, cls in BENCHMARKS.items():
        inf = cls.inference
        print(f"{name:18s} {cls.task:16s} n={cls.num_samples!s:6s} res={inf.processing_resolution:<4d} "
              f"ensemble={inf.ensemble_size:<3d} seed={inf.seed:<5d} split={cls.split_file or '(files in gt/)'}")
    for name, cls in VIDEO_BENCHMARKS.items():
        print(f"{name:18s} {cls.task + ' (video)':16s} n={cls.num_samples!s:6s} frames={cls.num_frames!s:<4s} "
              f"range=({cls.min_depth:g}, {cls.max_depth:g}) m  split={cls.split_file}/*.csv")
    return 0


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    if verbose < 2:
        for noisy in ("diffusers", "transformers", "huggingface_hub", "PIL", "matplotlib"):
            logging.getLogger(noisy).setLevel(max(level, logging.ERROR))
        try:
            import diffusers.utils.logging as dlog
            import transformers.utils.logging as tlog

            dlog.set_verbosity_error()
            tlog.set_verbosity_error()
            dlog.disable_progress_bar()
            # transformers >= 5 shows a "Loading weights" bar on stderr for the text encoder; its switch also
            # turns off huggingface_hub's download bars, which stay on unless they were off already
            import huggingface_hub.utils as hub_utils

            hub_bars_on = not hub_utils.are_progress_bars_disabled()
            tlog.disable_progress_bar()
            if hub_bars_on:
                hub_utils.enable_progress_bars()
        except Exception:  # noqa: BLE001 - logging setup must never fail the command
            pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args.verbose, args.quiet)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
