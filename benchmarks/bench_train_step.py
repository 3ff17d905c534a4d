#!/usr/bin/env python
"""One Marigold fine-tuning step (UNet forward + backward + AdamW) in float32 vs bfloat16 autocast, side by side.

The UNet is randomly initialised in a given SD2 layout (default: the demo base of ``configs/demo/base.yaml``
with Marigold's 8-channel ``conv_in``); the batch is the demo recipe's (8 latents of 4x15x20 for 120x160 renders).
Variants alternate ABAB across repeats so drift cancels; each row is printed as it completes::

    python benchmarks/bench_train_step.py --repeats 4 --steps 10

Autocast keeps the weights and optimiser in float32 (what ``model.mixed_precision=bf16`` does through
Accelerate); on CPUs without native bfloat16 (AVX2 only) the bf16 rows are expected to be far slower.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import yaml

from marigold_toolkit.core.machine import cpu_description


def build_unet(arch: dict):
    from diffusers import UNet2DConditionModel

    n = len(arch["block_out_channels"])
    return UNet2DConditionModel(
        sample_size=32, in_channels=8, out_channels=4, block_out_channels=tuple(arch["block_out_channels"]),
        layers_per_block=arch["layers_per_block"], attention_head_dim=tuple(arch["attention_head_dim"]),
        norm_num_groups=arch["norm_num_groups"], cross_attention_dim=arch["cross_attention_dim"],
        down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
        use_linear_projection=True)


def time_variant(unet, opt, variant: str, batch: int, hw: tuple[int, int], steps: int, ctx_dim: int) -> float:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 8, *hw, generator=g)
    target = torch.randn(batch, 4, *hw, generator=g)
    ctx = torch.randn(batch, 2, ctx_dim, generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if variant == "bf16-autocast" else contextlib.nullcontext()
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with cast:
            out = unet(x, t, encoder_hidden_states=ctx).sample
        loss = torch.nn.functional.mse_loss(out.float(), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/demo/base.yaml", help="a pretrain-base config (its unet_arch)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--latent", type=int, nargs=2, default=(15, 20), metavar=("H", "W"))
    p.add_argument("--steps", type=int, default=10, help="timed steps per row (median)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--variants", default="fp32,bf16-autocast")
    a = p.parse_args(argv)
    arch = yaml.safe_load(open(a.config))["unet_arch"]
    print(f"Machine: {cpu_description()}; {torch.get_num_threads()} torch threads; torch {torch.__version__}",
          flush=True)
    print(f"UNet {arch} batch {a.batch} latent {tuple(a.latent)}; median of {a.steps} steps", flush=True)
    variants = a.variants.split(",")
    results: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(a.repeats):
        for v in variants if r % 2 == 0 else variants[::-1]:
            torch.manual_seed(0)
            unet = build_unet(arch)
            opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
            try:
                s = time_variant(unet, opt, v, a.batch, tuple(a.latent), a.steps, arch["cross_attention_dim"])
                results[v].append(s)
                print(f"repeat {r} {v:>14}: {s * 1000:8.1f} ms/step", flush=True)
            except Exception as e:  # a failed variant is a row, not the end of the run
                print(f"repeat {r} {v:>14}: failed: {type(e).__name__}: {e}", flush=True)
    base = statistics.median(results[variants[0]]) if results[variants[0]] else None
    print("\nvariant          ms/step   speed-up")
    for v in variants:
        if results[v]:
            m = statistics.median(results[v])
            print(f"{v:>14} {m * 1000:9.1f} {base / m if base else float('nan'):9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
