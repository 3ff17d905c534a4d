"""Ensembling cost: decode fewer or cheaper members, side by side with the reference, on a trained model.

At ensemble size 10 the VAE decoder is most of a prediction (10 decodes vs 1 encode). This script runs the denoiser
once per image (``ensemble_size`` members, their final latents kept) and then finishes the same latents in several
ways, in one process, alternating the order per image:

* ``members``: every member through the full decoder, then the task's ensembling (the reference, as predict);
* ``members+1e-6``: the same with the latents perturbed by 1e-6 relative — the reference's own noise floor (depth
  ensembling's BFGS alignment is not continuous in its inputs: float-level changes move its result);
* ``latent-mean``: the members' mean latent, decoded once (no ensembling);
* ``half-res``: members decoded from 2x average-pooled latents and upsampled (a quarter of the decoder's pixels);
* ``tiny``: members through a tiny decoder (``--decoder``, e.g. ``bundled``), then ensembling;
* ``fast``: the whole prediction again with ``fast=True`` (``--fast``: e.g. bfloat16 channels-last) and the same
  seed — the fast tier's deviation at this ensemble size.

``--method least-squares`` finishes every row with the continuous least-squares alignment instead of the authors'
BFGS (see :mod:`marigold_toolkit.tasks.depth.ensemble`), so deviations measure the decoding, not the alignment's
discontinuity.

Columns: decode+ensemble seconds per image, and deviation from ``members`` (the task's own terms, e.g. depth AbsRel)::

    python benchmarks/bench_ensemble_decode.py --model demo-depth --images examples --ensemble 10 --decoder bundled
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="demo-depth")
    p.add_argument("--images", type=Path, nargs="+", default=[Path(__file__).resolve().parents[1] / "examples"])
    p.add_argument("--ensemble", type=int, default=10)
    p.add_argument("--steps", type=int)
    p.add_argument("--processing-resolution", type=int)
    p.add_argument("--decoder", help="tiny decoder for the 'tiny' row (bundled, a folder or a hub id)")
    p.add_argument("--fast", action="store_true", help="add the 'fast' row (Predictor fast=True)")
    p.add_argument("--method", default="bfgs", choices=("bfgs", "least-squares"),
                   help="depth ensembling alignment for every row (default: the authors' bfgs)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--max-images", type=int, default=8)
    a = p.parse_args(argv)

    import torch.nn.functional as F

    from marigold_toolkit import Predictor
    from marigold_toolkit.checkpoints.tiny_decoder import load_tiny_decoder, tiny_decode_fn
    from marigold_toolkit.core.image import unpad
    from marigold_toolkit.core.machine import cpu_description
    from marigold_toolkit.io.images import find_images

    if a.threads:
        torch.set_num_threads(a.threads)
    predictor = Predictor.from_pretrained(a.model)
    task, vae = predictor.task, predictor.vae
    sf = float(vae.config.scaling_factor)
    full = lambda z: vae.decode(z / sf).sample  # noqa: E731 - scaled latents in
    decoders = {"members": full, "members+1e-6": full}
    if a.decoder:
        tiny = load_tiny_decoder(a.decoder, predictor.spec.path, dtype=predictor.dtype)
        decoders["tiny"] = lambda z, f=tiny_decode_fn(tiny, sf): f(z / sf)
    images, _ = find_images([str(p) for p in a.images])
    images = images[: a.max_images]
    steps, res = predictor.resolve_settings(a.steps, a.processing_resolution)
    ens = {"method": a.method} if a.method != "bfgs" else {}
    kw = dict(num_inference_steps=steps, processing_resolution=res, ensemble_size=a.ensemble, ensembling_kwargs=ens)
    fast = Predictor.from_pretrained(a.model, fast=True) if a.fast else None

    def finish(images, prepared):
        """Decoded VAE images [E, 3, PH, PW] of one input -> its MarigoldOutput, as predict finishes it."""
        _, padding, in_size, proc_size = prepared
        members = unpad(task.decode(images).float(), padding)[:, None]  # [E, 1 target, C, h, w]
        return predictor._finish(members, False, ens, True, "bilinear", in_size, proc_size, {})

    def half_res(latents, prepared):
        img = full(F.avg_pool2d(latents, 2, ceil_mode=True))
        return finish(F.interpolate(img, size=(latents.shape[-2] * 8, latents.shape[-1] * 8), mode="bilinear",
                                    align_corners=False), prepared)

    def latent_mean(latents, prepared):
        return finish(full(latents.mean(0, keepdim=True)), prepared)

    ways = {name: (lambda z, pr, d=d: finish(d(z), pr)) for name, d in decoders.items()}
    ways["latent-mean"] = latent_mean
    ways["half-res"] = half_res
    if fast is not None:
        ways["fast"] = None  # a whole prediction, run below
    times = {w: [] for w in ways}
    devs = {w: [] for w in ways}
    print(f"Machine: {cpu_description()}, torch threads {torch.get_num_threads()}; model {a.model}; ensemble "
          f"{a.ensemble}, {steps} steps, resolution {res}, ensembling {a.method}; {len(images)} images; order alternates per image\n",
          flush=True)
    with torch.no_grad():
        for n, path in enumerate(images):
            prepared = predictor.prepare_image(str(path), res)
            out = predictor.predict(str(path), seed=n, output_latent=True, **kw)
            latents = out.latent
            results = {}
            order = list(ways) if n % 2 == 0 else list(reversed(ways))
            for w in order:
                z = latents
                if w == "members+1e-6":
                    z = latents * (1 + 1e-6 * torch.randn(latents.shape, generator=torch.Generator().manual_seed(n)))
                t0 = time.perf_counter()
                if w == "fast":
                    results[w] = fast.predict(str(path), seed=n, **kw)
                else:
                    results[w] = ways[w](z, prepared)
                times[w].append(time.perf_counter() - t0)
            ref = torch.from_numpy(results["members"].prediction).reshape(1, 1, *results["members"].prediction.shape[:2])
            for w, r in results.items():
                pred = torch.from_numpy(r.prediction).reshape(ref.shape)
                devs[w].append(task.deviation(pred, ref)[task.deviation_key])
    print("(the 'fast' row's time is a whole prediction, the others' decoding + ensembling only)\n")
    print(f"| finish | decode+ensemble s/img | vs members | {task.deviation_key} vs members (mean / worst) |")
    print("|---|---|---|---|")
    base = statistics.median(times["members"])
    for w in ways:
        t = statistics.median(times[w])
        print(f"| {w} | {t:.3f} | {base / t:.2f}x | {statistics.fmean(devs[w]):.4g} / {max(devs[w]):.4g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
