"""Do the default hyperparameters train well on a small data set?

Prints measured figures (not a test). On five systems that are not the paper's, AttNS with
its defaults (only ``system``, ``dt`` and ``data_dt`` set) is fitted on 1,000 trajectories
of 20 coarse steps and scored on 200 others, beside a small grid of hand-set training
budgets and widths; the target is a default test MSE within 3x of the grid's best. Plain
RK4 at the same step is printed for scale.

Run: python benchmarks/bench_defaults.py [--systems NAME ...] [--quick]
"""

import argparse
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
from sklearn_attns.systems import ODESystem


def van_der_pol(u):
    return namespace(u).stack([u[:, 1], 1.0 * (1 - u[:, 0] ** 2) * u[:, 1] - u[:, 0]], 1)


def lorenz(u):
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    return namespace(u).stack([10 * (y - x), x * (28 - z) - y, x * y - 8 / 3 * z], 1)


def lotka_volterra(u):
    x, y = u[:, 0], u[:, 1]
    return namespace(u).stack([1.5 * x - x * y, x * y - 3.0 * y], 1)


def fitzhugh_nagumo(u):
    v, w = u[:, 0], u[:, 1]
    return namespace(u).stack([v - v**3 / 3 - w + 0.5, 0.08 * (v + 0.7 - 0.8 * w)], 1)


def _uniform(low, high):
    def draw(n, rng):
        return rng.uniform(low, high, size=(n, len(low)))
    return draw


def _settled(draw, rhs, t, h=0.01):
    """Initial conditions drawn by ``draw``, then carried for time ``t`` along ``rhs`` (RK4,
    step ``h``): states near the attractor instead of the fast transients onto it."""
    def settle(n, rng):
        u = draw(n, rng)
        for _ in range(round(t / h)):
            k1 = rhs(u)
            k2 = rhs(u + h / 2 * k1)
            k3 = rhs(u + h / 2 * k2)
            u = u + h / 6 * (k1 + 2 * k2 + 2 * k3 + rhs(u + h * k3))
        return u
    return settle


# name: (system, coarse dt, data dt, parameter sampler or None). Van der Pol (mu = 1) starts
# after a settling time: drawn from the box, 93% of RK4's one-step error (mu = 2, dt 0.1)
# lay in the first step, the fast transient onto the cycle, which 1,000 trajectories
# sample too thinly to learn; mu = 1 because at mu = 2 the rollout error is set by the
# timing of the relaxation jumps, which a 12x smaller one-step error did not move
# (docs/benchmarks.md). FitzHugh-Nagumo's step 0.5 keeps RK4 stable on its fast
# variable (1 - v^2 down to -5.25 in the box: dt 1.0 is past RK4's stability limit).
SYSTEMS = {
    "duffing": (ODESystem(rhs=forced_duffing, n_state=2, n_params=2, time_dependent=True,
                          initial_conditions=_uniform([-1.5, -1.5], [1.5, 1.5])), 0.2, 0.1,
                lambda n, rng: rng.uniform([0.1, 0.2], [0.4, 0.6], size=(n, 2))),
    "van_der_pol": (ODESystem(rhs=van_der_pol, n_state=2,
                              initial_conditions=_settled(_uniform([-3, -3], [3, 3]), van_der_pol, 1.0)),
                    0.2, 0.2, None),
    "lorenz": (ODESystem(rhs=lorenz, n_state=3, initial_conditions=_uniform([-15, -20, 5], [15, 20, 40])),
               0.02, 0.02, None),
    "lotka_volterra": (ODESystem(rhs=lotka_volterra, n_state=2,
                                 initial_conditions=_uniform([1, 0.5], [5, 3])),
                       0.2, 0.2, None),
    "fitzhugh_nagumo": (ODESystem(rhs=fitzhugh_nagumo, n_state=2,
                                  initial_conditions=_uniform([-2.5, -1], [2.5, 2])), 0.5, 0.5, None),
}

GRID = [
    {"width": 64, "batch_size": 128, "max_epochs": 100},
    {"width": 256, "batch_size": 128, "max_epochs": 100},
    {"width": 1024, "batch_size": 4096, "max_epochs": 30},  # the defaults before "auto"
]


def data(name, n, seed):
    system, dt, data_dt, sample = SYSTEMS[name]
    rng = np.random.RandomState(seed)
    params = None if sample is None else sample(n, rng)
    X = make_trajectories(system, n, t_end=20 * dt, dt=data_dt, fine_dt=min(1e-3, data_dt / 10),
                          params=params, random_state=seed)
    return X, ({} if params is None else {"params": params})


def fit_score(name, X, meta, X_test, meta_test, **params):
    system, dt, data_dt, _ = SYSTEMS[name]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver = AttNSSolver(system=system, dt=dt, data_dt=data_dt, device="cpu", random_state=0,
                             **params).fit(X, **meta)
    return -solver.score(X_test, **meta_test), time.perf_counter() - start, solver.n_iter_


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", choices=sorted(SYSTEMS), default=sorted(SYSTEMS))
    parser.add_argument("--quick", action="store_true", help="200 training trajectories and no grid")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_train = 200 if args.quick else 1000
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} torch threads", flush=True)
    print(f"command: python {' '.join(sys.argv)}", flush=True)
    for name in args.systems:
        print("load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()), flush=True)
        X, meta = data(name, n_train, 0)
        X_test, meta_test = data(name, 200, 1)
        plain, _, _ = fit_score(name, X, meta, X_test, meta_test, correction="none")
        default, seconds, epochs = fit_score(name, X, meta, X_test, meta_test)
        print(f"{name}: plain RK4 {plain:.3g}; defaults {default:.3g} ({epochs} epochs, {seconds:.0f} s)",
              flush=True)
        best = default
        for params in [] if args.quick else GRID:
            mse, seconds, _ = fit_score(name, X, meta, X_test, meta_test, **params)
            best = min(best, mse)
            print(f"  {params}: {mse:.3g} ({seconds:.0f} s)", flush=True)
        print(f"  defaults / best of grid: {default / best:.2f} (target <= 3); defaults gain "
              f"{plain / default:,.0f}x over plain RK4", flush=True)
    print("load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()), flush=True)


if __name__ == "__main__":
    main()
