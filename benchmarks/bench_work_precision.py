"""Does a hybrid solver pay? Equal-accuracy speed-ups of AttNS over classical integrators.

For one system: training data of ``--n-train`` trajectories of 20 coarse steps and
``--n-test`` test trajectories, both float64 from fixed-step DOP853 at a fine step; AttNS
fitted at each ``--widths`` (float32 network, the estimator's default training budget);
then :func:`sklearn_attns.work_precision.work_precision` on the test trajectories: each
fitted solver eager and with ``compile=True``, the base integrator at finer steps and
fixed-step DOP853, each on the NumPy stepping path and compiled with torch, and scipy's
adaptive DOP853 on 8 trajectories. All timings come from one run, interleaved (best of
``--repeats`` rounds). Prints the table, both equal-accuracy speed-ups, ``c_net/c_step``
and ``k`` per solver, and writes ``docs/images/work_precision_<system>.png``.

Run: python benchmarks/bench_work_precision.py --system elastic|klink|chain|nbody [options]
     (append the output to docs/benchmark_logs/work_precision_cpu.log with --log)
"""

import argparse
import copy
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns.systems import ElasticPendulum, GravitationalNBody, KLinkPendulum, SpringMass
from sklearn_attns.work_precision import work_precision

ROOT = Path(__file__).resolve().parents[1]
# Finest refinement of a base integrator other than the system's own: low orders need far
# finer steps to reach a hybrid's error.
FINEST = {"euler": 4096, "heun": 256, "rk3": 64, "rk4": 32, "dop853": 4}

# dt: the hybrid's step (and the training data's spacing); spacing: the test outputs'; steps:
# test outputs per trajectory; refinements: the base integrator's steps are spacing / r.
SYSTEMS = {
    "elastic": dict(make=ElasticPendulum, dt=0.2, spacing=0.2, steps=20, fine=0.01, integrator="rk4",
                    refinements=(1, 2, 4, 8, 16, 32), dop853=(1, 2, 4)),
    "klink": dict(make=lambda: KLinkPendulum(n_links=2), dt=0.1, spacing=0.1, steps=20, fine=0.005,
                  integrator="rk4", refinements=(1, 2, 4, 8, 16), dop853=(1, 2, 4)),
    "chain": dict(make=lambda: SpringMass(n_masses=20), dt=0.2, spacing=0.2, steps=20, fine=0.002,
                  integrator="rk4", refinements=(1, 2, 4, 8, 16, 32), dop853=(1, 2, 4)),
    # One right-hand side of 16 bodies costs about 0.2 s per 1,024 states on the NumPy path.
    "nbody": dict(make=lambda: GravitationalNBody(n_bodies=16), dt=0.5, spacing=0.5, steps=20, fine=0.05,
                  integrator="rk4", refinements=(1, 2, 4, 8), dop853=(1, 2), n_train=500, n_test=256),
}


class Tee:
    """Print to stdout and, with ``--log``, append to the log file."""

    def __init__(self, path):
        self.file = open(path, "a") if path else None

    def __call__(self, *lines):
        for line in lines:
            print(line, flush=True)
            if self.file:
                self.file.write(f"{line}\n")
                self.file.flush()


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line for line in out.splitlines() if line.startswith("Model name"))
        return model.split(":", 1)[1].strip()
    except Exception:  # no lscpu: fall back on what Python knows
        return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=sorted(SYSTEMS), required=True)
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--dt", type=float, help="the hybrid's step (default: per system)")
    parser.add_argument("--spacing", type=float, help="spacing of the test outputs (default: per system)")
    parser.add_argument("--steps", type=int,
                        help="test outputs per trajectory (default 20; keep steps * spacing within the "
                             "training horizon, 20 * dt)")
    parser.add_argument("--integrator", help="base integrator (default: per system)")
    parser.add_argument("--refinements", type=int, nargs="+",
                        help="the base integrator's steps are spacing / r for these r (default: per system)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--n-train", type=int, help="training trajectories (default 1000; nbody 500)")
    parser.add_argument("--n-test", type=int, help="test trajectories (default 1024; nbody 256)")
    parser.add_argument("--max-epochs", default="auto", help="'auto' (the estimator's default) or an int")
    parser.add_argument("--no-eager", action="store_true", help="time the compiled solvers only")
    parser.add_argument("--backends", nargs="+", default=["numpy", "torch-compile"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on cores shared with other work, OpenMP's spinning threads "
                             "wait for each other at every small operation)")
    parser.add_argument("--log", help="append the output to this file too")
    parser.add_argument("--figure", help="the PNG (default docs/images/work_precision_<system>.png)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = SYSTEMS[args.system]
    system = spec["make"]()
    dt = args.dt or spec["dt"]
    spacing = args.spacing or spec["spacing"]
    integrator = args.integrator or spec["integrator"]
    max_epochs = args.max_epochs if args.max_epochs == "auto" else int(args.max_epochs)
    n_train, n_test = args.n_train or spec.get("n_train", 1000), args.n_test or spec.get("n_test", 1024)
    steps = args.steps or spec["steps"]
    say = Tee(args.log)
    say("", f"== {args.system}: {system!r} ==",
        f"command: python {' '.join(sys.argv)}",
        f"machine: {cpu_model()}, {os.cpu_count()} cores (shared with other work: load average "
        f"{os.getloadavg()[0]:.1f} at the start), torch {torch.__version__}, {torch.get_num_threads()} "
        f"torch thread(s), Python {platform.python_version()}",
        f"hybrid: AttNS + {integrator}, dt {dt:g}, depth {args.depth}, widths {args.widths}, "
        f"{args.dtype} network; {n_train} training trajectories of 20 steps; test: {n_test} trajectories "
        f"of {steps} outputs {spacing:g} apart")

    start = time.perf_counter()
    fine = spec["fine"]
    X_train = make_trajectories(system, n_train, t_end=20 * dt, dt=dt, fine_dt=fine, method="dop853",
                                random_state=0, n_jobs=-1)
    X_test = make_trajectories(system, n_test, t_end=steps * spacing, dt=spacing, fine_dt=fine,
                               method="dop853", random_state=1, n_jobs=-1)
    say(f"data (DOP853, fine step {fine:g}): {time.perf_counter() - start:.1f} s")

    solvers = {}
    for width in args.widths:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solver = AttNSSolver(system=system, dt=dt, integrator=integrator, width=width, depth=args.depth,
                                 dtype=args.dtype, max_epochs=max_epochs, device="cpu", random_state=0)
            solver.fit(X_train)
        say(f"fit width {width}: {time.perf_counter() - start:.0f} s, {solver.n_iter_} epochs, "
            f"training loss {solver.loss_curve_[-1]:.3g}")
        if not args.no_eager:
            solvers[f"AttNS w{width}"] = solver
        compiled = copy.deepcopy(solver).set_params(compile=True)
        solvers[f"AttNS w{width} compiled"] = compiled

    start = time.perf_counter()
    refinements = args.refinements or (spec["refinements"] if integrator == spec["integrator"] else
                                       [2**i for i in range(FINEST[integrator].bit_length())])
    classical = {integrator: refinements, "dop853": spec["dop853"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = work_precision(X_test, spacing, solvers, classical=classical, backend=args.backends,
                                repeats=args.repeats, reference_tolerances=(1e-6, 1e-8, 1e-10))
    say(f"work_precision: {time.perf_counter() - start:.0f} s (first calls compile; load average now "
        f"{os.getloadavg()[0]:.1f})", "", result.table(), "", result.summary())

    figure = Path(args.figure or ROOT / "docs" / "images" / f"work_precision_{args.system}.png")
    figure.parent.mkdir(parents=True, exist_ok=True)
    ax = result.plot()
    ax.figure.savefig(figure, dpi=110, bbox_inches="tight")
    say(f"figure: {figure.relative_to(ROOT) if figure.is_relative_to(ROOT) else figure}")


if __name__ == "__main__":
    main()
