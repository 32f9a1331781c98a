"""Training time on the CPU with subnormal numbers flushed to zero (what ``fit`` does) and without.

Prints measured figures (not a test). Trains AttNS on a small 2-link pendulum set
(``load_klink_pendulum(scale=0.004)``: 80 training trajectories, half of them used; RK4,
dt = 0.1, batch 1024, width 1024) with Table 2's Transformer module and with the default
MLP, each twice in the same process: as ``fit`` runs (subnormals flushed in the training
loop) and with the flush switched off (IEEE subnormal arithmetic, torch's default).
Reports fit times, their ratio, and both runs' final training losses and test MSEs
(equal when the values flushed carry nothing).

Run: python benchmarks/bench_subnormals.py [--epochs 8] [--threads 1] [--scale 0.004]
"""

import argparse
import contextlib
import os
import platform
import sys
import time
import warnings

import torch

from sklearn_attns import AttNSSolver, training
from sklearn_attns.datasets import load_klink_pendulum


def timed_fit(data, module, epochs, flush):
    solver = AttNSSolver(system=data.system, dt=data.dt, module=module, width=1024, data_fraction=0.5,
                         batch_size=1024, max_epochs=epochs, device="cpu", random_state=0)
    patched = training.subnormals_flushed if flush else (lambda device: contextlib.nullcontext())
    original, training.subnormals_flushed = training.subnormals_flushed, patched
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            solver.fit(data.train)
            elapsed = time.perf_counter() - start
    finally:
        training.subnormals_flushed = original
    return elapsed, solver.loss_curve_[-1], -solver.score(data.test)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (the flush covers the calling one)")
    parser.add_argument("--scale", type=float, default=0.004, help="fraction of Table 3's 2-link data")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads)")
    data = load_klink_pendulum(scale=args.scale, fine_dt=1e-3, reference_fine_dt=1e-3)
    print(f"data: {data.train.shape[0]} training trajectories (half used) x {data.train.shape[1]} times, "
          f"{data.test.shape[0]} test; {args.epochs} epochs")
    for module in ("transformer", "mlp"):
        runs = {flush: timed_fit(data, module, args.epochs, flush) for flush in (True, False)}
        for flush, (seconds, loss, mse) in runs.items():
            print(f"{module:<11} subnormals {'flushed' if flush else 'kept   '}: fit {seconds:7.1f} s, "
                  f"final loss {loss:.6g}, test MSE {mse:.6g}")
        print(f"{module:<11} kept / flushed fit time: {runs[False][0] / runs[True][0]:.2f}x")


if __name__ == "__main__":
    main()
