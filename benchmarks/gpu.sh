#!/usr/bin/env bash
# The GPU path at two shapes, in one script that finishes in a few minutes on one GPU:
#   GPT-2 small (12 layers, d_model 768, vocab 50,257), 24,576 features on blocks.7.hook_resid_pre
#   Gemma-2-2b-like (26 layers, d_model 2,304, vocab 256,000), 65,536 features on blocks.12
# Models from HookedTransformerConfig with random weights (no hub), in bfloat16 (--dtype);
# the SAE and every accumulator on the GPU. Prints, per shape, the floor (forward to the hook +
# encoder matmul), the pass without / with CE losses and the weight statistics, each as seconds,
# ratio to the floor and tokens/s; then peak GPU memory.
#
#   benchmarks/gpu.sh                 # both shapes, 32,768 tokens each
#   GPU_SH_TOKENS=65536 benchmarks/gpu.sh
#   GPU_SH_BUILD=1 benchmarks/gpu.sh  # also the whole build (writes every page: minutes more)
#   GPU_SH_DRY=1 benchmarks/gpu.sh    # print the commands and check their arguments, run none
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
TOKENS="${GPU_SH_TOKENS:-32768}"
DEVICE="${GPU_SH_DEVICE:-cuda}"
DTYPE="${GPU_SH_DTYPE:-bfloat16}"
BUILD=(--skip-build)
[ "${GPU_SH_BUILD:-0}" = 1 ] && BUILD=()
COMMON=(--device "$DEVICE" --dtype "$DTYPE" --n-tokens "$TOKENS" "${BUILD[@]}")
RUNS=(
  "--shape gpt2 --d-sae 24576 --layer 7 --batch-size 32"
  "--shape gemma --d-sae 65536 --layer 12 --batch-size 32"
)
for run in "${RUNS[@]}"; do
  # shellcheck disable=SC2086  # each run is a list of words
  if [ "${GPU_SH_DRY:-0}" = 1 ]; then
    echo "$PYTHON benchmarks/bench_scale.py $run ${COMMON[*]}"
    "$PYTHON" benchmarks/bench_scale.py $run "${COMMON[@]}" --check-args
  else
    timeout 225 "$PYTHON" benchmarks/bench_scale.py $run "${COMMON[@]}"
  fi
done
