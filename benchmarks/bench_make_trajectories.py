"""Benchmark: trajectory-steps per second of ``make_trajectories`` on the 20-mass chain.

Compares, in one run and on the same initial conditions,

* a plain vectorised NumPy classical RK4 loop (all trajectories at once, float64,
  ``system.rhs`` for the four stages, keeping every ``dt / fine_dt``-th state), timed once;
* ``make_trajectories(SpringMass(20), ..., n_jobs=-1)``, which takes the exact linear
  shortcut (one product with ``R(fine_dt A)^k`` per output step), best of ``--repeat``;
* the general stepping path of ``make_trajectories`` on the same chain, with the linear
  shortcut off (``ODESystem(rhs=SpringMass(20).rhs, n_state=40)``, initial conditions
  given explicitly), with ``n_jobs=1`` and ``n_jobs=-1``, best of ``--repeat``.

A trajectory-step is one fine step of one trajectory: ``n_trajectories * t_end / fine_dt``
per run (2,500 x 20,000 = 5e7 by default). Every output is checked against the plain loop
(max abs difference printed) so the speed is not bought with wrong numbers.

Run from the repository root::

    python3 benchmarks/bench_make_trajectories.py            # full: 2,500 trajectories
    python3 benchmarks/bench_make_trajectories.py --quick    # smoke run: 500 trajectories
"""

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

# Import the package from this checkout (also for joblib's worker processes) when it is
# not installed.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402

from sklearn_attns.datasets import make_trajectories  # noqa: E402
from sklearn_attns.systems import ODESystem, SpringMass  # noqa: E402

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
    threadpool_info = threadpool_limits = None


def plain_rk4(rhs, u0, fine_dt, substeps, n_steps):
    """Textbook vectorised classical RK4 on all trajectories at once, float64."""
    h = fine_dt
    X = np.empty((len(u0), n_steps + 1, u0.shape[1]))
    X[:, 0] = u = np.array(u0, dtype=np.float64)
    for n in range(n_steps):
        for _ in range(substeps):
            k1 = rhs(u)
            k2 = rhs(u + 0.5 * h * k1)
            k3 = rhs(u + 0.5 * h * k2)
            k4 = rhs(u + h * k3)
            u = u + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        X[:, n + 1] = u
    return X


def best_of(repeat, func):
    """Return (best wall time in s, all times, last result) of ``repeat`` calls."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return min(times), times, result


def machine_info():
    lines = [
        f"python {platform.python_version()} on {platform.platform()}",
        f"processor: {platform.processor() or platform.machine()}",
        f"os.cpu_count() = {os.cpu_count()}"
        + (f", usable cores (sched_getaffinity) = {len(os.sched_getaffinity(0))}"
           if hasattr(os, "sched_getaffinity") else ""),
        f"joblib.effective_n_jobs(-1) = {joblib.effective_n_jobs(-1)}",
        f"numpy {np.__version__}, torch {torch.__version__}, joblib {joblib.__version__}, "
        f"scikit-learn {sklearn.__version__}",
    ]
    if hasattr(os, "getloadavg"):
        lines.append("load average (1, 5, 15 min) at start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    if threadpool_info is not None:
        for pool in threadpool_info():
            lines.append(
                f"threadpool: {pool.get('user_api')} {pool.get('internal_api')} "
                f"{pool.get('version')} num_threads={pool.get('num_threads')}"
            )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trajectories", type=int, default=2500, help="trajectories (default 2500)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 trajectories")
    parser.add_argument("--n-masses", type=int, default=20, help="masses of the chain (default 20)")
    parser.add_argument("--t-end", type=float, default=20.0, help="final time T (default 20)")
    parser.add_argument("--dt", type=float, default=0.2, help="spacing of kept states (default 0.2)")
    parser.add_argument("--fine-dt", type=float, default=1e-3, help="RK4 step (default 1e-3)")
    parser.add_argument("--repeat", type=int, default=3, help="make_trajectories runs, best kept (default 3)")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="cap BLAS/OpenMP threads in this process (default: library defaults)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial conditions (default 0)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_trajectories = 500
    if args.blas_threads is not None:
        if threadpool_limits is None:
            parser.error("--blas-threads needs threadpoolctl")
        # Kept for the whole run; joblib's worker processes set their own limits.
        _limits = threadpool_limits(args.blas_threads)  # noqa: F841

    n_steps = int(round(args.t_end / args.dt))
    substeps = int(round(args.dt / args.fine_dt))
    n = args.n_trajectories
    traj_steps = n * n_steps * substeps

    chain = SpringMass(n_masses=args.n_masses)
    # The same chain with the linear shortcut off: only rhs, so make_trajectories steps.
    generic = ODESystem(rhs=chain.rhs, n_state=chain.n_state, name="SpringMass rhs (generic)")
    u0 = chain.sample_initial_conditions(n, random_state=args.seed)
    common = dict(t_end=args.t_end, dt=args.dt, fine_dt=args.fine_dt, method="rk4")

    print("command:", shlex.join([sys.executable, *sys.argv]))
    for line in machine_info():
        print(line)
    print(
        f"problem: SpringMass(n_masses={args.n_masses}), n_state={chain.n_state}, {n} trajectories, "
        f"T={args.t_end:g}, fine_dt={args.fine_dt:g} ({substeps * n_steps} fine steps), "
        f"kept every {substeps}th state (dt={args.dt:g}), RK4, float64"
    )
    print(f"trajectory-steps per run: {traj_steps:.3g}; make_trajectories timed best of {args.repeat}")
    print(flush=True)

    rows = []

    start = time.perf_counter()
    reference = plain_rk4(chain.rhs, u0, args.fine_dt, substeps, n_steps)
    plain_s = time.perf_counter() - start
    rows.append(("plain NumPy RK4 loop (once)", plain_s, [plain_s], 0.0))
    print(f"  plain loop: {plain_s:.2f} s", flush=True)

    cases = [
        ("make_trajectories linear path, n_jobs=-1",
         lambda: make_trajectories(chain, initial_conditions=u0, n_jobs=-1, **common)),
        ("make_trajectories generic path, n_jobs=1",
         lambda: make_trajectories(generic, initial_conditions=u0, n_jobs=1, **common)),
        ("make_trajectories generic path, n_jobs=-1",
         lambda: make_trajectories(generic, initial_conditions=u0, n_jobs=-1, **common)),
    ]
    for label, func in cases:
        seconds, times, X = best_of(args.repeat, func)
        if X.shape != reference.shape:
            raise AssertionError(f"{label}: shape {X.shape} != plain loop's {reference.shape}")
        diff = float(np.max(np.abs(X - reference)))
        rows.append((label, seconds, times, diff))
        print(f"  {label}: runs " + ", ".join(f"{t:.3g}" for t in times) + " s", flush=True)

    scale = float(np.max(np.abs(reference)))
    print()
    header = f"{'method':<44} {'seconds':>9} {'traj-steps/s':>13} {'x plain':>9} {'max|X - plain|':>15}"
    print(header)
    print("-" * len(header))
    for label, seconds, _, diff in rows:
        rate = traj_steps / seconds
        print(f"{label:<44} {seconds:>9.3f} {rate:>13.3e} {plain_s / seconds:>9.2f} {diff:>15.2e}")
    print("-" * len(header))
    print(f"(max |X| of the plain loop = {scale:.3g}; differences are absolute)")
    if hasattr(os, "getloadavg"):
        print("load average (1, 5, 15 min) at end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    worst = max(diff for _, _, _, diff in rows)
    if not worst <= 1e-8 * max(scale, 1.0):
        print(f"WARNING: an output differs from the plain loop by {worst:.3g}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
