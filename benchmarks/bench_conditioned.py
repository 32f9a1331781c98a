"""Conditioned systems: does the correction gain from seeing time, parameters and inputs?

Prints measured figures (not a test). For each system, default AttNS (only ``system``,
``dt`` and ``data_dt`` set) trained on 1,000 trajectories, against plain RK4 at the same
``dt`` and against the same correction without the conditioning
(``condition_network=False``), on 200 test trajectories whose parameters are drawn anew
from the training range (held out, inside it):

1. Forced Duffing ``x'' = -delta x' - x - x^3 + gamma cos(1.2 t)``, ``(delta, gamma)`` per
   trajectory in [0.1, 0.4] x [0.2, 0.6], start times in [0, 10], T = 4 (20 coarse steps
   of 0.2; data every 0.1). The network sees the drive's phase through
   ``time_features = (cos 1.2 t, sin 1.2 t)``, and, in a second row, ``t`` itself (the
   default).
2. ParametricSpringMass(10): stiffness and mass scales per trajectory in [0.5, 2], T = 4
   (20 coarse steps of 0.2).

Targets: AttNS >= 100x lower test MSE than plain RK4 and >= 10x lower than without the
conditioning. Run: python benchmarks/bench_conditioned.py [--quick]
"""

import argparse
import ast
import os
import platform
import sys
import time
import warnings

import numpy as np
import torch
from _user_systems import forced_duffing

from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns._array import namespace
from sklearn_attns.systems import ODESystem, ParametricSpringMass


def duffing_initial_conditions(n, rng):
    return rng.uniform(-1.5, 1.5, size=(n, 2))


def drive_phase(t):
    xp = namespace(t)
    return xp.stack([xp.cos(1.2 * t), xp.sin(1.2 * t)], 1)


def duffing_case(n, seed, time_features=drive_phase):
    system = ODESystem(rhs=forced_duffing, n_state=2, n_params=2, time_dependent=True,
                       time_features=time_features, initial_conditions=duffing_initial_conditions)
    rng = np.random.RandomState(seed)
    params = rng.uniform([0.1, 0.2], [0.4, 0.6], size=(n, 2))
    t0 = rng.uniform(0, 10, size=n)
    X = make_trajectories(system, n, t_end=4.0, dt=0.1, fine_dt=1e-3, params=params, t0=t0, random_state=seed)
    return system, X, {"params": params, "t0": t0}, dict(dt=0.2, data_dt=0.1)


def duffing_raw_time_case(n, seed):
    return duffing_case(n, seed, time_features=None)


def chain_case(n, seed):
    system = ParametricSpringMass(n_masses=10)
    params = system.sample_params(n, random_state=seed + 100)
    X = make_trajectories(system, n, t_end=4.0, dt=0.2, fine_dt=1e-3, params=params, random_state=seed)
    return system, X, {"params": params}, dict(dt=0.2)


def fit_score(system, X, meta, X_test, meta_test, seed=0, **params):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver = AttNSSolver(system=system, device="cpu", random_state=seed, **params).fit(X, **meta)
    return -solver.score(X_test, **meta_test), time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 training trajectories, for a smoke run")
    parser.add_argument("--cases", nargs="+", choices=("duffing", "duffing-raw-time", "chain"),
                        default=("duffing", "duffing-raw-time", "chain"))
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                        help="hyperparameters given to both AttNS fits, e.g. state_input=True")
    parser.add_argument("--seed", type=int, default=0, help="seed of the training data and the fits")
    args = parser.parse_args()
    extra = {name: ast.literal_eval(value) for name, value in (item.split("=", 1) for item in args.set)}
    n_train = 200 if args.quick else 1000
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"command: python benchmarks/bench_conditioned.py {' '.join(sys.argv[1:])}")
    cases = {"duffing": ("forced Duffing, drive phase as time features", duffing_case),
             "duffing-raw-time": ("forced Duffing, t as the time feature (the default)",
                                  duffing_raw_time_case),
             "chain": ("parametric spring chain (10 masses)", chain_case)}
    for name, case in (cases[key] for key in args.cases):
        system, X, meta, steps = case(n_train, 2 * args.seed)
        _, X_test, meta_test, _ = case(200, 2 * args.seed + 1)
        plain, _ = fit_score(system, X, meta, X_test, meta_test, correction="none", **steps)
        steps = {**steps, **extra, "seed": args.seed}
        print(f"{name}: {n_train} trajectories x {X.shape[1] - 1} data steps", flush=True)
        attns, fit_s = fit_score(system, X, meta, X_test, meta_test, **steps)
        blind, blind_s = fit_score(system, X, meta, X_test, meta_test, condition_network=False, **steps)
        print(f"  {'plain RK4':<40}test MSE {plain:.3g}")
        label = "AttNS (defaults)" if not extra else "AttNS " + ", ".join(args.set)
        print(f"  {label:<40}test MSE {attns:.3g}  ({fit_s:.0f} s)  "
              f"{plain / attns:,.0f}x below plain RK4", flush=True)
        print(f"  {'  ... condition_network=False':<40}test MSE {blind:.3g}  ({blind_s:.0f} s)  "
              f"conditioning gains {blind / attns:,.1f}x", flush=True)


if __name__ == "__main__":
    main()
