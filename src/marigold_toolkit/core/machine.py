"""What the machine can do: CPU model and instruction-set flags (``/proc/cpuinfo``), and the line benchmarks,
recipes and the fast tier's log carry.

The flags that matter for inference speed on a CPU are the native half-precision ones: ``avx512_bf16`` and
``amx_bf16`` (bfloat16 matrix units, Intel Cooper Lake / Sapphire Rapids and later, AMD Zen 4 and later),
``avx512_fp16`` / ``amx_fp16`` (float16). Without them PyTorch's CPU kernels emulate half precision and run far
slower than float32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

#: the SIMD flags that decide the speed of torch's CPU kernels (in the order the description lists them)
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16",
              "amx_fp16", "amx_tile")
#: flags that give native bfloat16 (resp. float16) matrix products
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
FP16_FLAGS = ("avx512_fp16", "amx_fp16")


@dataclass(frozen=True)
class CpuInfo:
    """A CPU's model name, logical core count and ``flags`` (as ``/proc/cpuinfo`` lists them)."""

    model: str = "unknown CPU"
    cores: int = 1
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def native_bf16(self) -> bool:
        """bfloat16 matrix products in hardware (AVX-512-BF16 or AMX-BF16)."""
        return any(f in self.flags for f in BF16_FLAGS)

    @property
    def native_fp16(self) -> bool:
        """float16 arithmetic in hardware (AVX-512-FP16 or AMX-FP16)."""
        return any(f in self.flags for f in FP16_FLAGS)

    @property
    def amx(self) -> bool:
        return "amx_tile" in self.flags

    def simd(self) -> list[str]:
        """The flags of :data:`SIMD_FLAGS` this CPU has."""
        return [f for f in SIMD_FLAGS if f in self.flags]

    def describe(self) -> str:
        """``<model>, N cores, flags a b c``."""
        present = self.simd()
        return f"{self.model}, {self.cores} cores, flags {' '.join(present) or '(none of ' + ' '.join(SIMD_FLAGS) + ')'}"


def parse_cpuinfo(text: str, cores: int | None = None) -> CpuInfo:
    """The first processor's model name and flags in ``/proc/cpuinfo`` text (ARM's ``Features`` line counts as
    flags).

    >>> info = parse_cpuinfo("processor : 0\\nmodel name : Xeon\\nflags : fpu avx2 avx512f avx512_bf16 amx_tile\\n", 2)
    >>> info.model, info.native_bf16, info.native_fp16, info.amx
    ('Xeon', True, False, True)
    >>> parse_cpuinfo("model name : EPYC\\nflags : avx2 fma\\n", 2).describe()
    'EPYC, 2 cores, flags avx2 fma'
    """
    model, flags = None, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "features") and flags is None:
            flags = frozenset(value.split())
    return CpuInfo(model or "unknown CPU", int(cores or os.cpu_count() or 1), flags or frozenset())


def cpu_info(path: str | os.PathLike = "/proc/cpuinfo") -> CpuInfo:
    """This machine's :class:`CpuInfo` (model ``unknown CPU`` and no flags where ``path`` cannot be read)."""
    try:
        return parse_cpuinfo(Path(path).read_text())
    except OSError:
        return CpuInfo(cores=os.cpu_count() or 1)


def cpu_description() -> str:
    """``<model name>, N cores, flags a b c`` of this machine (the line benchmark and recipe tables carry)."""
    return cpu_info().describe()


def gpu_description() -> str:
    """``<name> (<memory> GiB, compute capability X.Y)`` per CUDA device, or ``no GPU``."""
    if not torch.cuda.is_available():
        return "no GPU"
    parts = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        parts.append(f"{p.name} ({p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor})")
    return "; ".join(parts)
