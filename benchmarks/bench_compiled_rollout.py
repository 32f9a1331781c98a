"""Prediction with ``compile=True``: several steps per compiled call on states held column
by column, against one compiled call per step on row-major states.

Since the column path, ``predict`` of a compiled solver with an unconditioned system whose
right-hand side takes tensors compiles ``fuse`` whole steps (base step and network) into
one call on transposed states (``HybridStep.compiled_column_steps_for``); before, it called
a compiled step once per step on ``(rows, n_state)`` states, which is what conditioned
systems still do. This script times both through the public ``predict`` (the one-call-per-
step path by disabling the column path), interleaved, best of ``--repeats`` rounds, beside
the plain base integrator at the hybrid's step on the fused compiled path of
``make_trajectories``. The network's weights do not change its cost, so it trains for two
epochs only.

Run: python benchmarks/bench_compiled_rollout.py [--systems elastic klink nbody] [--repeats 10]
"""

import argparse
import os
import platform
import sys
import warnings
from unittest import mock

import torch
from bench_inference import fastest_per_round

from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns.corrections import HybridStep
from sklearn_attns.systems import ElasticPendulum, GravitationalNBody, KLinkPendulum

# name: (system, base integrator, dt, rows, width) as in the work-precision settings
SYSTEMS = {
    "elastic": (ElasticPendulum, "rk4", 0.2, 1024, 128),
    "klink": (lambda: KLinkPendulum(n_links=2), "rk4", 0.1, 1024, 128),
    "nbody": (lambda: GravitationalNBody(n_bodies=16), "euler", 0.25, 256, 128),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--n-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=10, help="interleaved timing rounds")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, 1 torch thread")
    for name in args.systems:
        make, integrator, dt, rows, width = SYSTEMS[name]
        system = make()
        X = make_trajectories(system, 50, t_end=2 * dt, dt=dt, fine_dt=dt / 5, method="rk4", random_state=0)
        u0 = make_trajectories(system, rows, t_end=dt, dt=dt, fine_dt=dt / 5, method="rk4",
                               random_state=1)[:, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solver = AttNSSolver(system=system, dt=dt, integrator=integrator, width=width, max_epochs=2,
                                 device="cpu", compile=True, random_state=0).fit(X)

        def one_call_per_step():
            with mock.patch.object(HybridStep, "compiled_column_steps_for", lambda *args: None):
                solver.predict(u0, args.n_steps)

        functions = {
            "columns, several steps per call": lambda: solver.predict(u0, args.n_steps),
            "rows, one call per step": one_call_per_step,
            "plain base step (make_trajectories, compiled)": lambda: make_trajectories(
                system, t_end=args.n_steps * dt, dt=dt, fine_dt=dt, method=integrator, initial_conditions=u0,
                device="cpu", compile=True),
        }
        for fn in functions.values():  # compile outside the timing
            fn()
        best = fastest_per_round(functions, args.repeats)
        print(f"\n{name}: {system!r}, {integrator} dt {dt:g}, width {width}, {rows} rows, "
              f"{args.n_steps} steps")
        for label, seconds in best.items():
            print(f"  {label}: {seconds * 1e3:.2f} ms ({seconds * 1e3 / args.n_steps:.3f} ms/step)")
        columns, rows_path, plain = best.values()
        print(f"  columns vs rows: {rows_path / columns:.2f}x faster; c_net/c_step {columns / plain - 1:.2f} "
              f"(columns), {rows_path / plain - 1:.2f} (rows)")


if __name__ == "__main__":
    main()
