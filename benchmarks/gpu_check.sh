#!/usr/bin/env bash
# The GPU checks, in one go, on a machine with a CUDA device:
#   1. the transformers backend's tests on CUDA (tests/backends/test_transformers_cuda.py, and
#      the CPU test file run again with device "auto", which now resolves to CUDA + bf16;
#      the one test that asserts the CPU fallback is left out); SKIP_TESTS=1 skips them;
#   2. benchmarks/backend_bench.py in bf16 (1, 2, 4 and 8 streams, and the overhead broken
#      down piece by piece) and in fp32 (1 and 2 streams).
# Results go to the folder given as the first argument (default benchmarks/out/gpu).
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
set -uo pipefail
out=${1:-benchmarks/out/gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
py=${PYTHON:-python3}
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "nvidia-smi not available" >"$out/nvidia-smi.txt"
tests_rc=0
if [ -z "${SKIP_TESTS:-}" ]; then
    "$py" -m pytest -p no:cacheprovider -q \
        tests/backends/test_transformers_cuda.py tests/backends/test_transformers_backend.py \
        -k "not variants_share_one_loaded_model" 2>&1 | tee "$out/pytest.log"
    tests_rc=${PIPESTATUS[0]}
fi
"$py" benchmarks/backend_bench.py --device cuda --dtype bfloat16 --max-new-tokens 128 \
    --repeats 3 --breakdown 3 --concurrency 2,4,8 --json "$out/cuda_bf16.json" 2>&1 |
    tee "$out/bench_bf16.log"
"$py" benchmarks/backend_bench.py --device cuda --dtype float32 --max-new-tokens 128 \
    --repeats 3 --concurrency 2 --json "$out/cuda_fp32.json" 2>&1 | tee "$out/bench_fp32.log"
exit "$tests_rc"
