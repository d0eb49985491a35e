#!/usr/bin/env bash
# Everything issue 7 (and issue 4's GPU measure) needs from one GPU machine, as ONE script that fits
# a short lease: the 7B-shaped methods table, the gpu-marked tests, and 7B-shaped FSDP2 / ZeRO-3
# runs with per-GPU memory, issue 21's packed vs padded throughput on the real data, and issue 33's
# memory model (NF4 and bf16, RoCoFT and QLoRA/LoRA: estimate vs torch.cuda peak). Each step has its
# own time limit and writes to $OUT (default ./gpu_out), so a step that fails or runs long does not
# cost the others. All steps' limits add up to 12.5 minutes (60 + 210 + 90 + 40 + 170 + 180 s), more
# than one 600 s device run: STEPS picks the steps of one run (default: all), e.g.
#   STEPS="machine memory_nf4" bash bench/gpu_check.sh          # 4 minutes: the memory model only
#
#   here:   .venv/bin/python bench/gpu_wheels.py      # .whl/: datasets, deepspeed, bitsandbytes (its
#                                                     # CUDA 13 libraries only), this checkout's
#                                                     # transformers/peft versions (~36 MiB)
#           .venv/bin/python bench/packing_throughput.py --export-kit models/packing-kit
#                                                     # SmolLM2 config + tokenizer + math_data.json (~5 MiB)
#   there:  bash bench/gpu_check.sh                   # device run, carry [".whl", "models/packing-kit"], timeout 600
#   here, rehearsal on CPU with tiny shapes (same steps, same code paths but CUDA):
#           SMOKE=1 PY=.venv/bin/python OUT=/tmp/gpu_out bash bench/gpu_check.sh
#
# Paste the outputs into BENCHMARKS.md with the machine line the first step prints.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_out}"
PY="${PY:-python3}"
SMOKE="${SMOKE:-0}"
STEPS="${STEPS:-machine methods_gpu gpu_tests packing sharding_7b memory_nf4}"
mkdir -p "$OUT"
if [ "$SMOKE" != 1 ] && [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then  # SMOKE: the venv has them
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing .whl/ failed"; exit 1; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS COMMAND...: run with a limit, keep its output, never stop the script
    local name=$1 limit=$2
    shift 2
    case " $STEPS " in *" $name "*) ;; *) echo "== $name skipped (not in STEPS)"; return ;; esac
    echo "== $name (limit ${limit}s)"
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    echo "   exit $? after $((SECONDS - t0))s -> $OUT/$name.txt"
    grep -v "USDT\|^\s*warnings.warn\|FutureWarning" "$OUT/$name.txt" | tail -n 30
}

if [ "$SMOKE" = 1 ]; then
    methods_args=(--config gpu --device cpu --layers 1 --hidden 256 --intermediate 688 --heads 4 --vocab 1024
                  --seq 64 --batch 2 --rounds 1 --steps 1 --profile 1)
    sharding_args=(--shape small --layers 1 --ranks 1 --precision bf16 --seq 64 --steps 2)
    packing_args=(--model rocoft_llm/recipes/tiny/llama --data rocoft_llm/recipes/tiny/data/train.json
                  --random-init --device cpu --steps 2 --micro-batch 4)
    memory_args=(--check --device cpu --shape tiny --seq 64 --quantize nf4 none)
else
    methods_args=(--config gpu --profile 2)
    sharding_args=(--shape llama2-7b --ranks 1 --precision bf16 --seq 1024 --steps 3)
    # SmolLM2-135M shapes with random weights (the same timing; the weights do not fit the carry)
    packing_args=(--model models/packing-kit --data models/packing-kit/math_data.json --random-init
                  --device cuda --precision bf16 --steps 20 --micro-batch 8)
    # Llama-2-7B shapes, 4 of its 32 layers (random weights, saved and loaded through build_model):
    # the estimate per layer and per model part is what is checked; 1 x 1024 tokens
    memory_args=(--check --device cuda --shape llama2-7b --layers 4 --seq 1024 --quantize nf4 none)
fi

step machine 60 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo 'no nvidia-smi'; \
  $PY -c 'import sys, torch, transformers, peft; print(sys.version.split()[0], torch.__version__, torch.version.cuda, transformers.__version__, peft.__version__)'; \
  $PY -c 'import deepspeed, datasets; print(\"deepspeed\", deepspeed.__version__, \"datasets\", datasets.__version__)'"
step methods_gpu 210 "$PY" bench/methods.py "${methods_args[@]}"
step gpu_tests 90 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py
backends=fsdp
"$PY" -c "import deepspeed" 2>/dev/null && backends=fsdp,deepspeed
step packing 40 "$PY" bench/packing_throughput.py "${packing_args[@]}"
step sharding_7b 170 "$PY" bench/sharding_memory.py "${sharding_args[@]}" --backends "$backends"
step memory_nf4 180 "$PY" bench/memory_estimate.py "${memory_args[@]}"
