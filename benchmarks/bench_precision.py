"""Where a half-precision tier's deviation from float32 comes from, on a trained model, in one run.

Every row predicts the same views with the same seed and compares them with float32 eager, in the task's own terms
(:meth:`~marigold_toolkit.tasks.base.Task.deviation`: depth AbsRel, normals mean angle):

* ``autocast``: bf16 autocast, channels-last — what ``--fast`` runs on CPUs with native bf16;
* ``cast``: the models cast to bf16, channels-last (``--dtype bfloat16 --channels-last``, the diffusers way);
* ``autocast:unet`` / ``autocast:encoder`` / ``autocast:decoder``: only that model call under bf16 autocast, the
  others float32 — which part of the network the error comes from.

Views (``--views 4``): each photo, mirrored, its left 70 % and its bottom 70 % — four times the samples, so one
lucky or unlucky photo does not decide a comparison. Depth ensembles (ensemble > 1) are merged by least squares by
default (continuous; the authors' BFGS moves by percents at any float-level change, see README "Depth ensembling is
not continuous").

Columns: the deviation's mean, median, 90th percentile and worst over the views, how many views exceed the fast
tier's tolerance (depth: 0.5 % AbsRel), and for depth the mean AbsRel left after fitting each output to float32 by
least-squares scale and shift (``aligned``: ensembles are min-max normalised, so noise at the two extreme pixels
becomes a global change that this column removes). Rows print as they finish::

    python benchmarks/bench_precision.py --model demo-depth --ensembles 1,10 --views 4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

VARIANTS = ("autocast", "cast", "autocast:unet", "autocast:encoder", "autocast:decoder")


def views(image: np.ndarray, n: int) -> list[np.ndarray]:
    """``image`` and up to three variations of it: mirrored, left 70 %, bottom 70 %."""
    h, w = image.shape[:2]
    out = [image, image[:, ::-1], image[:, : int(w * 0.7)], image[int(h * 0.3):]]
    return [np.ascontiguousarray(v) for v in out[:n]]


def as_batch(prediction: np.ndarray) -> torch.Tensor:
    """A predict() output (``[H, W]`` or ``[H, W, C]``) -> ``[1, C, H, W]`` float64."""
    t = torch.from_numpy(np.asarray(prediction, dtype=np.float64))
    return t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]


def aligned_absrel(pred: np.ndarray, ref: np.ndarray) -> float:
    """AbsRel of ``pred`` after a least-squares scale and shift onto ``ref`` (both depth in [0, 1])."""
    from marigold_toolkit.pipeline.backends import depth_absrel
    from marigold_toolkit.tasks.depth.alignment import align_depth_least_squares

    aligned, _, _ = align_depth_least_squares(pred, ref, np.ones(ref.shape, dtype=bool))
    return depth_absrel(aligned, ref)


def predictor_for(variant: str, model: str, exact, mixed):
    """The predictor of one row: its own models for ``cast``; ``mixed`` (the one autocast predictor) for
    ``autocast``; for ``autocast:PART`` the float32 predictor ``exact`` with that one model call taken from
    ``mixed``."""
    from marigold_toolkit import Predictor
    from marigold_toolkit.pipeline.backends import ModelCalls

    if variant == "cast":
        return Predictor.from_pretrained(model, dtype="bfloat16", channels_last=True), None
    if variant == "autocast":
        return mixed, None
    call = {"unet": "unet", "encoder": "encode", "decoder": "decode"}[variant.split(":", 1)[1]]
    calls = {name: getattr(mixed.calls if name == call else exact.calls, name) for name in ("unet", "encode", "decode")}
    return exact, ModelCalls(variant, calls["unet"], calls["encode"], calls["decode"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo-depth")
    p.add_argument("--images", nargs="+", default=[str(Path(__file__).resolve().parents[1] / "examples")])
    p.add_argument("--ensembles", default="1,10", help="comma-separated ensemble sizes")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--views", type=int, default=4, choices=(1, 2, 3, 4), help="views per photo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int)
    p.add_argument("--processing-resolution", type=int)
    p.add_argument("--ensembling-method", default="least-squares", choices=("bfgs", "least-squares"),
                   help="depth ensembling (default least-squares: continuous)")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    variants = a.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            p.error(f"--variants: unknown variant {v!r}; use {', '.join(VARIANTS)}")

    from marigold_toolkit import Predictor
    from marigold_toolkit.core.machine import cpu_description
    from marigold_toolkit.io.images import find_images, load_image
    from marigold_toolkit.pipeline.backends import FAST_TIER_ABSREL_TOL

    if a.threads:
        torch.set_num_threads(a.threads)
    files, errors = find_images(a.images)
    for path, why in errors:
        print(f"skipping {path}: {why}", file=sys.stderr)
    if not files:
        p.error("--images: no images found")
    samples = [v for f in files for v in views(load_image(f), a.views)]
    exact = Predictor.from_pretrained(a.model)
    is_depth = exact.task.name == "depth"
    key = exact.task.deviation_key
    print(f"# {cpu_description()}, {torch.get_num_threads()} threads, torch {torch.__version__}; model {a.model}, "
          f"{len(files)} photos x {a.views} views = {len(samples)} samples, seed {a.seed}; deviation: {key}"
          f"{f', ensembles merged by {a.ensembling_method}' if is_depth else ''}", flush=True)
    cols = ["ensemble", "variant", "mean", "median", "p90", "worst"]
    cols += ["> 0.5 %", "aligned mean"] if is_depth else []
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols), flush=True)
    scale, unit = {"absrel": (100, " %"), "angular_deg": (1, "°")}.get(key, (1, ""))
    mixed = (Predictor.from_pretrained(a.model, autocast="bfloat16", channels_last=True)
             if any(v.startswith("autocast") for v in variants) else None)
    rows = {variant: predictor_for(variant, a.model, exact, mixed) for variant in variants}
    for ens in (int(e) for e in a.ensembles.split(",")):
        kw = dict(seed=a.seed, ensemble_size=ens, num_inference_steps=a.steps,
                  processing_resolution=a.processing_resolution)
        if is_depth and ens > 1:
            kw["ensembling_kwargs"] = {"method": a.ensembling_method}
        ref = [exact.predict(x, **kw).prediction for x in samples]
        for variant in variants:
            predictor, calls = rows[variant]
            saved = predictor.calls
            if calls is not None:
                predictor.calls = calls
            try:
                out = [predictor.predict(x, **kw).prediction for x in samples]
            finally:
                predictor.calls = saved
            dev = np.array([exact.task.deviation(as_batch(o), as_batch(r))[key] for o, r in zip(out, ref)]) * scale
            row = [str(ens), variant] + [f"{v:.3f}{unit}" for v in
                                         (dev.mean(), np.median(dev), np.quantile(dev, 0.9), dev.max())]
            if is_depth:
                row += [f"{int((dev / scale > FAST_TIER_ABSREL_TOL).sum())} / {len(dev)}",
                        f"{100 * np.mean([aligned_absrel(o, r) for o, r in zip(out, ref)]):.3f} %"]
            print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
