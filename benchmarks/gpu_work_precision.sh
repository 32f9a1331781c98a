#!/usr/bin/env bash
# On a CUDA machine: the CUDA tests, then the work-precision diagrams of the benchmark systems
# at a large batch, every method on the GPU (the networks, and the classical methods' compiled
# torch steps), with solvers fitted earlier (on a CPU, say) by the same command.
#
#   python -m sklearn_attns work-precision --systems elastic klink chain elastic_dop853 --out FIT
#   bash benchmarks/gpu_work_precision.sh OUT FIT/models ["N_TEST ..."] [SECONDS]
#
# writes OUT/cuda_tests.log and, per number of test trajectories N (default 131072), OUT/wp_N
# (the command's report, figures, rows and log). Each run stops after SECONDS (default 300);
# its report keeps every system finished by then. SYSTEMS (default "elastic klink chain
# elastic_dop853") names the systems, in the order they are measured.
set -u
out=${1:?usage: gpu_work_precision.sh OUT FITTED_MODELS ["N_TEST ..."] [SECONDS]}
fitted=${2:?the models folder of an earlier work-precision run}
sizes=${3:-131072}
seconds=${4:-300}
systems=${SYSTEMS:-elastic klink chain elastic_dop853}
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$out"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    "$python" -c "import numpy, scipy, sklearn, torch; print('python', __import__('sys').version.split()[0], \
'numpy', numpy.__version__, 'scipy', scipy.__version__, 'scikit-learn', sklearn.__version__, 'torch', \
torch.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee "$out/machine.txt"
timeout 150 "$python" -m pytest -q -p no:cacheprovider -rs -k "cuda or gpu or traces" tests/test_estimator.py \
    tests/test_datasets_torch.py tests/test_work_precision.py tests/test_systems.py >"$out/cuda_tests.log" 2>&1
tail -n 15 "$out/cuda_tests.log"
for n_test in $sizes; do
    mkdir -p "$out/wp_$n_test"
    timeout "$seconds" "$python" -m sklearn_attns work-precision --systems $systems \
        --device cuda --n-test "$n_test" --jobs "$(nproc)" --fitted "$fitted" --out "$out/wp_$n_test" \
        >"$out/wp_$n_test/run.log" 2>&1
    echo "work-precision on $n_test trajectories: exit status $?, torch.compile warnings (graph breaks," \
         "recompilation limits): $(grep -c 'Graph break\|recompile_limit' "$out/wp_$n_test/run.log")"
    grep -v '^W1\|^  ' "$out/wp_$n_test/run.log" | tail -n 12
done
