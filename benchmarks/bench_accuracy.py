"""Accuracy of AttNS on the 20-mass spring chain, and AttNS against NeurVec with little data.

Prints measured figures (not a test). Two parts, on SpringMass(20), T = 20, dt = 0.2,
training data at fine step 1e-3 (RK4), test data at fine step 1e-4 (RK4):

1. AttNS + RK4 on 2,500 training trajectories: test MSE and training wall time
   (target: MSE <= 1e-6 within three minutes on two cores; plain RK4 scores about 0.4).
2. 250 training trajectories: AttNS and NeurVec with the same settings and budget,
   three seeds each, mean test MSE (target: AttNS below NeurVec).

Run: python benchmarks/bench_accuracy.py [--quick] [--device cpu]
"""

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np
import torch

from sklearn_attns import AttNSSolver, NeurVecSolver, make_trajectories
from sklearn_attns.integrators import get_integrator
from sklearn_attns.metrics import trajectory_mse
from sklearn_attns.systems import SpringMass


def plain_rk4_mse(system, X, dt):
    rk4, u, path = get_integrator("rk4"), X[:, 0], [X[:, 0]]
    for _ in range(X.shape[1] - 1):
        u = rk4.step(system.rhs, u, dt)
        path.append(u)
    return trajectory_mse(X, np.stack(path, 1))


def fit_and_score(cls, X, X_test, **params):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver = cls(**params).fit(X)
    elapsed = time.perf_counter() - start
    return -solver.score(X_test), elapsed, solver


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run at a tenth of the sizes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of part 1")
    parser.add_argument("--small-epochs", type=int, default=60, help="epochs of part 2 (250 trajectories)")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), device {args.device}")

    system = SpringMass(n_masses=20)
    X = make_trajectories(system, 2500 // scale, 20.0, 0.2, 1e-3, random_state=0)
    X_test = make_trajectories(system, 5000 // scale, 20.0, 0.2, 1e-4, random_state=1)
    common = dict(system=system, dt=0.2, integrator="rk4", batch_size=1024, device=args.device,
                  compile=not args.no_compile)
    print(f"plain RK4 test MSE: {plain_rk4_mse(system, X_test, 0.2):.3g}")

    mse, elapsed, solver = fit_and_score(AttNSSolver, X, X_test, max_epochs=args.epochs, random_state=0,
                                         **common)
    verdict = "meets" if mse <= 1e-6 and elapsed <= 180 else "misses"
    print(f"[1] AttNS, {len(X)} trajectories, {solver.n_iter_} epochs: test MSE {mse:.3g}, "
          f"fit {elapsed:.1f} s ({verdict} the target MSE <= 1e-6 within 180 s)")

    small = X[: 250 // scale]
    rows = {}
    for name, cls in (("AttNS", AttNSSolver), ("NeurVec", NeurVecSolver)):
        results = [fit_and_score(cls, small, X_test, max_epochs=args.small_epochs, random_state=seed,
                                 **common)
                   for seed in (0, 1, 2)]
        rows[name] = [r[0] for r in results]
        print(f"[2] {name}, {len(small)} trajectories, {args.small_epochs} epochs: test MSE per seed "
              + ", ".join(f"{m:.3g}" for m in rows[name])
              + f"; mean {np.mean(rows[name]):.3g}; fit {np.mean([r[1] for r in results]):.1f} s each")
    ratio = np.mean(rows["NeurVec"]) / np.mean(rows["AttNS"])
    print(f"[2] NeurVec / AttNS mean test MSE: {ratio:.2f} "
          f"(AttNS {'beats' if ratio > 1 else 'does not beat'} NeurVec)")


if __name__ == "__main__":
    main()
