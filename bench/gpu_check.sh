#!/usr/bin/env bash
# Everything issue 7 (and issue 4's GPU measure) needs from one GPU machine, as ONE script that fits
# a short lease: the gpu-marked tests, the 7B-shaped methods table, and 7B-shaped FSDP2 / ZeRO-3
# runs with per-GPU memory. Each step has its own time limit and writes to $OUT (default
# ./gpu_out), so a step that fails or runs long does not cost the others; the most important
# step runs first and the limits add up to under 10 minutes.
#
#     OUT=/tmp/gpu_out bash bench/gpu_check.sh
#
# Needs torch + transformers + peft (+ deepspeed for the ZeRO-3 run; skipped with a note when it
# is not importable) and this checkout installed or on PYTHONPATH. Paste the outputs into
# BENCHMARKS.md with the machine line the first step prints.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
PY="${PY:-python}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

step() {  # step NAME SECONDS COMMAND...: run with a limit, keep its output, never stop the script
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    echo "   exit $? after $((SECONDS - t0))s -> $OUT/$name.txt"
    tail -n 25 "$OUT/$name.txt"
}

step machine 60 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
  $PY -c 'import torch, transformers, peft; print(torch.__version__, torch.version.cuda, transformers.__version__, peft.__version__)'; \
  $PY -c 'import deepspeed; print(\"deepspeed\", deepspeed.__version__)' || echo 'deepspeed: not installed'"
step methods_gpu 240 "$PY" bench/methods.py --config gpu
step gpu_tests 90 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py
backends=fsdp
"$PY" -c "import deepspeed" 2>/dev/null && backends=fsdp,deepspeed
step sharding_7b 240 "$PY" bench/sharding_memory.py --shape llama2-7b --ranks 1 --backends "$backends" \
  --precision bf16 --seq 1024 --steps 3
