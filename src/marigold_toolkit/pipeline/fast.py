"""The machine-aware fast tier: which dtype, memory layout and backend run fastest on the device at hand.

``Predictor.from_pretrained(model, fast=True)`` (``--fast``) asks :func:`choose_fast_plan` and logs what it chose
and why. The choices follow what was measured (README "Performance"):

* CPU with native bfloat16 (AVX-512-BF16 or AMX, see :mod:`marigold_toolkit.core.machine`): bfloat16
  autocast (:mod:`~marigold_toolkit.pipeline.precision`: convolutions, linear layers and attention in bf16; norms,
  residual stream, the networks' narrow ends and the loop in float32) in channels-last layout, eager. oneDNN's
  bf16 convolutions and matrix products run at several times the float32 rate there; ``torch.compile`` is not used
  on CPUs because the convolutions stay oneDNN calls (only elementwise ops fuse) and every new input shape compiles
  for minutes.
* Other CPUs: float32 eager — half precision is emulated there and far slower than float32.
* CUDA: bfloat16 on compute capability 8.0 and later (float16 before), channels-last, ``torch.compile`` with
  mode ``reduce-overhead`` (CUDA graphs, recorded per input shape; the model calls' outputs are copied out of the
  graph's memory so the next replay cannot overwrite them).
* MPS: float16, eager.

Every choice stays within :data:`~marigold_toolkit.pipeline.backends.FAST_TIER_ABSREL_TOL` of the float32 eager
output on the tiny test checkpoints (tested) and is reported against the float32 reference by
``benchmarks/bench_inference.py --ours fast``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..checkpoints.loading import resolve_device
from ..core.machine import BF16_FLAGS, CpuInfo, cpu_info

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastPlan:
    """What the fast tier runs: ``dtype`` (``"float32"``, ``"bfloat16"``, ``"float16"``), ``channels_last``,
    ``backend`` (``"eager"`` or ``"compile"``) with ``compile_mode`` (``torch.compile``'s mode), and ``reason``:
    one sentence on why, naming the device and the flags it was decided on."""

    dtype: str
    channels_last: bool
    backend: str
    compile_mode: str | None
    reason: str
    #: ``True``: ``dtype`` is an autocast dtype (models and loop float32, see
    #: :mod:`~marigold_toolkit.pipeline.precision`), not the dtype the models are cast to
    autocast: bool = False

    def describe(self) -> str:
        layout = ", channels-last" if self.channels_last else ""
        backend = f"torch.compile ({self.compile_mode})" if self.backend == "compile" else self.backend
        dtype = f"{self.dtype} autocast" if self.autocast else self.dtype
        return f"{dtype}{layout}, {backend}: {self.reason}"


def choose_fast_plan(device: torch.device | str, cpu: CpuInfo | None = None,
                     cuda_capability: tuple[int, int] | None = None) -> FastPlan:
    """The fast tier for ``device``.

    Args:
        device: the device the models run on.
        cpu: the CPU's flags (default: this machine's, :func:`~marigold_toolkit.core.machine.cpu_info`).
        cuda_capability: the GPU's compute capability (default: asked from torch for a CUDA device).

    >>> from marigold_toolkit.core.machine import CpuInfo
    >>> choose_fast_plan("cpu", CpuInfo("Xeon", 2, frozenset({"avx512f", "amx_bf16", "amx_tile"}))).dtype
    'bfloat16'
    >>> choose_fast_plan("cpu", CpuInfo("EPYC", 2, frozenset({"avx2", "fma"}))).dtype
    'float32'
    >>> choose_fast_plan("cuda", cuda_capability=(7, 5)).dtype, choose_fast_plan("cuda", cuda_capability=(9, 0)).dtype
    ('float16', 'bfloat16')
    """
    device = torch.device(device)
    if device.type == "cuda":
        if cuda_capability is None:
            cuda_capability = tuple(torch.cuda.get_device_capability(device))
        major, minor = cuda_capability
        dtype = "bfloat16" if major >= 8 else "float16"
        return FastPlan(dtype, True, "compile", "reduce-overhead",
                        f"CUDA device of compute capability {major}.{minor}: {dtype} tensor cores, channels-last, "
                        "torch.compile with CUDA graphs (recorded once per input shape)")
    if device.type == "mps":
        return FastPlan("float16", False, "eager", None, "Apple GPU (MPS): float16, eager")
    cpu = cpu or cpu_info()
    native = [f for f in BF16_FLAGS if f in cpu.flags]
    if native:
        return FastPlan("bfloat16", True, "eager", None,
                        f"{cpu.model} has native bfloat16 ({' '.join(native)}): bfloat16 channels-last oneDNN "
                        "kernels under autocast (norms, residual stream, narrow ends and loop in float32); no "
                        "torch.compile on CPUs (convolutions stay oneDNN calls, compiling takes minutes per input "
                        "shape)", autocast=True)
    return FastPlan("float32", False, "eager", None,
                    f"{cpu.model} has no native half precision (none of {' '.join(BF16_FLAGS)}): half precision "
                    "would be emulated and far slower, float32 eager is the fastest path")


def resolve_fast(device: torch.device | str | None, dtype: str | torch.dtype | None, channels_last: bool,
                 backend: str = "eager", autocast: str | torch.dtype | None = None,
                 ) -> tuple[FastPlan, str | torch.dtype, str, str | None, bool, str | torch.dtype | None]:
    """The fast tier's plan for ``device`` merged with what the caller gave: ``(plan, dtype, backend,
    compile_mode, channels_last, autocast)``. A given ``dtype`` or ``autocast`` and ``channels_last=True`` are
    kept (a given ``dtype`` turns the plan's autocast off); the plan's backend applies only where ``backend`` is
    the default ``"eager"``; channels-last and autocast never go to the onnx backend. Logs the plan (and a given
    dtype that differs from it)."""
    plan = choose_fast_plan(resolve_device(device))
    logger.info("fast tier: %s", plan.describe())
    given = dtype if autocast is None else autocast
    if given is not None and (str(given).replace("torch.", ""), autocast is not None) != (plan.dtype, plan.autocast):
        logger.info("fast tier: keeping %s %s as given (the plan says %s)", "autocast" if autocast else "dtype",
                    given, plan.describe().split(":")[0])
    compile_mode = None
    if backend == "eager":
        backend, compile_mode = plan.backend, plan.compile_mode
    if dtype is None and autocast is None:
        if not plan.autocast:
            dtype = plan.dtype
        elif backend != "onnx":
            autocast = plan.dtype
    return (plan, dtype if dtype is not None else "float32", backend, compile_mode,
            bool(channels_last or (plan.channels_last and backend != "onnx")), autocast)


def fast_settings(fast: bool, device: torch.device | str | None, dtype: str | None, channels_last: bool,
                  autocast: str | None = None) -> tuple[str, bool, str | None]:
    """``(dtype, channels_last, autocast)`` with ``fast``'s choices for ``device`` filled in where not given (a job
    that runs on several workers resolves them once, so all of them compute the same numbers). Logs the plan."""
    if not fast:
        return dtype or "float32", bool(channels_last), autocast
    _, dtype, _, _, channels_last, autocast = resolve_fast(device, dtype, channels_last, autocast=autocast)
    return str(dtype).replace("torch.", ""), channels_last, None if autocast is None else str(autocast)
