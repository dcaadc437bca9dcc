#!/usr/bin/env bash
# One GPU session, run unchanged from the repository root on a CUDA machine:
#
#   bash scripts/gpu_session.sh                 # results under ${OUT:-gpu_results}/
#
# 1. installs fla-core (flash-linear-attention) if it does not import yet: from the wheels in
#    ${WHEELS:-.whl} when that folder holds any (no network needed), else from pip's index or
#    cache (whatever pip is configured with; given up after 60 s); INSTALL_FLA=0 skips this;
# 2. runs the GPU tests (every backend against float64, values and gradients, both kernels,
#    both directions, padding and segments, backend=auto), under 3.5 minutes;
# 3. runs the GPU benchmark (attention fwd+bwd, training throughput, longest L) in a 3.5-minute
#    budget, appending to <out>/gpu.csv and writing <out>/README.md.
# Writes environment.txt, gpu_tests.log, gpu_tests.xml, benchmark_gpu.log, gpu.csv, README.md
# into one folder; the whole script takes at most ~8 minutes. A failing step does not stop the
# next one; the exit status is the first failure's. BENCH_ARGS adds arguments to the
# benchmark (a CPU smoke run: BENCH_ARGS="--device cpu --lengths 128 --steps 1").
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_results}
wheels=${WHEELS:-.whl}
python=${PYTHON:-python3}
bench_args=${BENCH_ARGS:-}
site=/tmp/protperf-gpu-site
mkdir -p "$out"
status=0
export PYTHONUNBUFFERED=1

# 1. fla-core, into a private folder (the machine's own environment is left as it is)
if [ "${INSTALL_FLA:-1}" != 0 ] && ! "$python" -c "import fla" >/dev/null 2>&1; then
    if compgen -G "$wheels/*.whl" >/dev/null; then
        "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target "$site" "$wheels"/*.whl || status=1
    else
        timeout 60 "$python" -m pip install -q --no-deps --target "$site" "fla-core>=0.6.0" \
            || echo "fla-core could not be installed: the fla cases will be skipped"
    fi
fi
export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"

{
    command -v nvidia-smi >/dev/null && nvidia-smi -L
    "$python" - <<'PY'
import platform

import torch

from protperf.attention.ops.causal_fla import (
    fla_available,
    gated_backward_problem,
    triton_version,
)

print("python", platform.python_version(), "torch", torch.__version__,
      "cuda", torch.version.cuda, "triton", triton_version())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
try:
    import fla

    print("fla", getattr(fla, "__version__", "installed"), "usable:", fla_available())
except Exception as error:  # not installed, or Triton failing to start
    print("fla not available:", error)
print("fla gated (softmax) backward:", gated_backward_problem() or "supported")
PY
} 2>&1 | tee "$out/environment.txt" || status=1

# 2. the GPU tests, with gradients
timeout 210 "$python" -m pytest -m gpu -n 0 -q -p no:cacheprovider tests/attention/test_gpu.py \
    --junitxml="$out/gpu_tests.xml" 2>&1 | tee "$out/gpu_tests.log"
test_status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] && status=$test_status

# 3. the GPU benchmark (a failing cell is recorded in the table, the run goes on)
# shellcheck disable=SC2086  # BENCH_ARGS is a list of words
timeout 300 "$python" scripts/benchmark_gpu.py --budget-s 210 --cell-s 45 --out-dir "$out" \
    $bench_args 2>&1 | tee "$out/benchmark_gpu.log"
bench_status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] && status=$bench_status

echo "gpu session done (status $status); results in $out/"
exit "$status"
