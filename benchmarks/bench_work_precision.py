"""Does a hybrid solver pay? Work-precision diagrams of the benchmark systems.

A thin wrapper of ``python -m sklearn_attns work-precision`` (the logic and the per-system
settings live in :mod:`sklearn_attns.experiments.work_precision`); the options are the same.

Run: python benchmarks/bench_work_precision.py --systems nbody burgers [--out DIR] [--quick]
     (append the report to docs/benchmark_logs/work_precision_cpu.log with --log)
"""

import sys

from sklearn_attns.experiments.cli import main

if __name__ == "__main__":
    sys.exit(main(["work-precision", *sys.argv[1:]]))
