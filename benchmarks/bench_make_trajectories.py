"""Benchmark: make_trajectories' general stepping path against a plain NumPy RK4 loop.

Three systems that take the general path (no linear shortcut): ``ElasticPendulum()``,
``KLinkPendulum(n_links=2)`` and Lorenz's 40-variable model (``lorenz96`` in
``_user_systems.py``: a user ``rhs`` written with operations that NumPy and torch share).
For each, on the same initial conditions, in one process, interleaved over ``--rounds``
rounds:

* **plain loop**: a textbook vectorised NumPy RK4 loop over all trajectories at once
  (float64, ``system.rhs`` for the four stages, every ``dt / fine_dt``-th state kept);
* ``make_trajectories(..., compile=True)`` with ``n_jobs=1`` and ``n_jobs=-1``: the torch
  steps, column-major and compiled (the compiling happens in a first call that is timed
  apart, and the compiled steps are reused by the rounds, as they are by any later call in
  the same process or worker);
* ``make_trajectories(..., compile=False, n_jobs=-1)``: the NumPy steps in worker processes.

Each round runs every method once, one after the other, so that the machine's busy spells
hit them alike; the ratio plain-loop time / method time is taken per round, and its median
over the rounds is reported with the median times. Every output is checked against the
plain loop (largest difference relative to the largest state).

A trajectory-step is one fine step of one trajectory (``n_trajectories * t_end / fine_dt``).
The script also prints when compiling pays: the number of trajectory-steps after which the
compile time is won back against the NumPy steps.

Run from the repository root::

    python benchmarks/bench_make_trajectories.py                 # 2,500 trajectories, 3 rounds
    python benchmarks/bench_make_trajectories.py --quick         # smoke run
"""

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

# Import the package from this checkout, and the user system from this folder (also for
# joblib's worker processes).
_ROOT, _HERE = str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)
for _path in (_HERE, _ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, _HERE, os.environ.get("PYTHONPATH")) if p)

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from _user_systems import lorenz96, lorenz96_start  # noqa: E402

import sklearn_attns  # noqa: E402
from sklearn_attns.datasets import make_trajectories  # noqa: E402
from sklearn_attns.systems import ElasticPendulum, KLinkPendulum, ODESystem  # noqa: E402

# name -> (system, T): T sized so that the plain loop takes a few seconds per round.
SYSTEMS = {
    "elastic pendulum": (ElasticPendulum(), 10.0),
    "2-link pendulum": (KLinkPendulum(n_links=2), 2.0),
    "Lorenz-96, 40 variables": (ODESystem(rhs=lorenz96, n_state=40, initial_conditions=lorenz96_start,
                                          name="lorenz96"), 1.0),
}


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


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _load():
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"


def machine_info():
    model = ""
    try:
        model = next((line.split(":", 1)[1].strip() for line in
                      subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                      if line.startswith("Model name")), "")
    except OSError:
        pass
    lines = [
        f"python {platform.python_version()} on {platform.platform()}",
        f"cpu: {model or platform.processor() or platform.machine()}",
        f"os.cpu_count() = {os.cpu_count()}"
        + (f", usable cores = {len(os.sched_getaffinity(0))}" if hasattr(os, "sched_getaffinity") else ""),
        f"joblib.effective_n_jobs(-1) = {joblib.effective_n_jobs(-1)}",
        f"numpy {np.__version__}, torch {torch.__version__}, joblib {joblib.__version__}, "
        f"sklearn_attns {sklearn_attns.__version__}",
    ]
    lines.append("load average (1, 5, 15 min) at start: " + _load())
    return lines


def bench_system(label, system, t_end, args):
    n, dt, fine_dt = args.n_trajectories, args.dt, args.fine_dt
    t_end *= args.t_scale
    n_steps, substeps = int(round(t_end / dt)), int(round(dt / fine_dt))
    traj_steps = n * n_steps * substeps
    u0 = system.sample_initial_conditions(n, random_state=args.seed)
    common = dict(t_end=t_end, dt=dt, fine_dt=fine_dt, method="rk4", initial_conditions=u0)
    print(f"\n== {label} ({system.label}, n_state={system.n_state}): {n} trajectories, T={t_end:g}, "
          f"fine_dt={fine_dt:g} ({n_steps * substeps} fine steps, {traj_steps:.3g} trajectory-steps)",
          flush=True)

    def generate(n_jobs, compile):
        return lambda: make_trajectories(system, n_jobs=n_jobs, compile=compile, **common)

    methods = {
        "plain NumPy RK4 loop": lambda: plain_rk4(system.rhs, u0, fine_dt, substeps, n_steps),
        "compiled torch steps, n_jobs=1": generate(1, True),
        "compiled torch steps, n_jobs=-1": generate(-1, True),
        "NumPy steps, n_jobs=-1": generate(-1, False),
    }
    # The first compiled call in this process (n_jobs=1) and in the workers (n_jobs=-1):
    # compiling, timed apart on a short run of the same batch shape.
    first = dict(common, t_end=dt)
    compile_s = {}
    for jobs in (1, -1):
        compile_s[jobs], _ = timed(lambda: make_trajectories(system, n_jobs=jobs, compile=True, **first))
        print(f"  first compiled call, n_jobs={jobs} (compiling + {n * substeps:.3g} trajectory-steps): "
              f"{compile_s[jobs]:.1f} s", flush=True)

    times = {name: [] for name in methods}
    reference, diffs = None, {}
    for r in range(args.rounds):
        for name, function in methods.items():
            seconds, X = timed(function)
            times[name].append(seconds)
            if reference is None:
                reference = X
            difference = float(np.abs(X - reference).max() / np.abs(reference).max())
            diffs[name] = max(diffs.get(name, 0.0), difference)
        took = ", ".join(f"{name} {times[name][-1]:.2f} s" for name in methods)
        print(f"  round {r + 1}: {took}; load {_load()}", flush=True)

    plain = times["plain NumPy RK4 loop"]
    print(f"  {'method':<34} {'median s':>9} {'traj-steps/s':>13} {'x plain (median)':>17} {'rel. diff':>10}")
    for name in methods:
        ratios = [p / t for p, t in zip(plain, times[name])]
        median = statistics.median(times[name])
        print(f"  {name:<34} {median:>9.2f} {traj_steps / median:>13.3e} {statistics.median(ratios):>17.2f} "
              f"{diffs[name]:>10.1e}")
    numpy_rate = traj_steps / statistics.median(times["NumPy steps, n_jobs=-1"])
    compiled_rate = traj_steps / statistics.median(times["compiled torch steps, n_jobs=-1"])
    if compiled_rate > numpy_rate:
        pays = compile_s[-1] / (1 / numpy_rate - 1 / compiled_rate)
        print(f"  compiling ({compile_s[-1]:.0f} s, n_jobs=-1) pays after {pays:.3g} trajectory-steps "
              f"(the NumPy steps would take {pays / numpy_rate:.0f} s)")
    return max(diffs.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trajectories", type=int, default=2500)
    parser.add_argument("--dt", type=float, default=0.1, help="spacing of kept states (default 0.1)")
    parser.add_argument("--fine-dt", type=float, default=1e-3, help="RK4 step (default 1e-3)")
    parser.add_argument("--t-scale", type=float, default=1.0, help="multiplies each system's T (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--systems", nargs="*", default=list(SYSTEMS), choices=list(SYSTEMS),
                        metavar="SYSTEM", help=f"some of {list(SYSTEMS)}")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 trajectories, T / 10, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_trajectories, args.t_scale, args.rounds = 500, args.t_scale / 10, 1

    print("command:", shlex.join([sys.executable, *sys.argv]))
    for line in machine_info():
        print(line)
    worst = max(bench_system(name, *SYSTEMS[name], args) for name in args.systems)
    print("\nload average (1, 5, 15 min) at end: " + _load())
    if not worst <= 1e-12:
        print(f"WARNING: an output differs from the plain loop by {worst:.3g} (relative)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
