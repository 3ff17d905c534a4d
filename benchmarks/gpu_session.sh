#!/usr/bin/env bash
# The fast tier's GPU rows in one device call (README "Performance": 768, 1 step, ensemble 1 and 10; diffusers
# float32 vs our eager float32, eager bf16, --fast and --fast with a tiny decoder), for a session that is lent a
# GPU machine. Prepared on a CPU machine; not yet run on a device.
#
# The device image has PyTorch, transformers, accelerate, safetensors, scipy, matplotlib and tqdm, not diffusers,
# omegaconf or tensorboardX. Before the call, in the repository root here:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 omegaconf==2.3.0 tensorboardX==2.6.4
#   python3 -m pip download --no-deps -d .whl antlr4-python3-runtime==4.9.3   # omegaconf's; an sdist only
#
# then run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=560). The table and the log come
# back as $OUT/gpu-table.md and $OUT/gpu-log.txt; torch.compile rows are a second call
# (MARIGOLD_GPU_OURS=compile:bfloat16,compile+cl:bfloat16), since each compiles for a minute or more per process.
set -euo pipefail
OUT=${OUT:-/tmp/marigold-gpu-out}
mkdir -p "$OUT"
python3 -m pip install --quiet --no-deps --no-index --no-build-isolation .whl/*
python3 -m pip install --quiet --no-deps --no-build-isolation -e .
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu-log.txt"
python3 benchmarks/bench_inference.py --device cuda --tasks depth --resolutions 768 --steps 1 --ensembles 1,10 \
  --ours "${MARIGOLD_GPU_OURS:-eager,eager:bfloat16,fast,fast@tiny}" --repeats 2 --image-size 576 768 \
  --output "$OUT/gpu-table.md" 2>&1 | tee -a "$OUT/gpu-log.txt"
