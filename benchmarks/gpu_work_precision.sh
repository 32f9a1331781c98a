#!/usr/bin/env bash
# On a CUDA machine: the CUDA tests, then the work-precision diagrams of the benchmark systems
# at a large batch, every method on the GPU (the networks, and the classical methods' compiled
# torch steps), with solvers fitted earlier (on a CPU, say) by the same command.
#
#   python -m sklearn_attns work-precision --systems elastic klink chain elastic_dop853 --out FIT
#   bash benchmarks/gpu_work_precision.sh OUT FIT/models [N_TEST] [SECONDS]
#
# writes OUT/cuda_tests.log and OUT/wp (the command's report, figures, rows and log). The
# diagrams stop after SECONDS (default 420); the report keeps every system finished by then.
set -u
out=${1:?usage: gpu_work_precision.sh OUT FITTED_MODELS [N_TEST] [SECONDS]}
fitted=${2:?the models folder of an earlier work-precision run}
n_test=${3:-131072}
seconds=${4:-420}
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$out/wp"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    "$python" -c "import numpy, scipy, sklearn, torch; print('python', __import__('sys').version.split()[0], \
'numpy', numpy.__version__, 'scipy', scipy.__version__, 'scikit-learn', sklearn.__version__, 'torch', \
torch.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee "$out/machine.txt"
timeout 150 "$python" -m pytest -q -p no:cacheprovider -rs -k "cuda or gpu" tests/test_estimator.py \
    tests/test_datasets_torch.py tests/test_work_precision.py >"$out/cuda_tests.log" 2>&1
tail -n 15 "$out/cuda_tests.log"
timeout "$seconds" "$python" -m sklearn_attns work-precision --systems elastic klink chain elastic_dop853 \
    --device cuda --n-test "$n_test" --jobs "$(nproc)" --fitted "$fitted" --out "$out/wp" \
    >"$out/wp/run.log" 2>&1
echo "work-precision exit status $?"
tail -n 40 "$out/wp/run.log"
