"""What machine a benchmark or recipe ran on: the line its tables carry."""

from __future__ import annotations

import os
from pathlib import Path

#: the SIMD flags that decide the speed of torch's CPU kernels
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_description() -> str:
    """``<model name>, N cores, flags a b c`` from ``/proc/cpuinfo`` (``unknown CPU`` where it cannot be read)."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    present = [f for f in SIMD_FLAGS if f in flags]
    return f"{model}, {os.cpu_count()} cores, flags {' '.join(present) or '(none of ' + ' '.join(SIMD_FLAGS) + ')'}"
