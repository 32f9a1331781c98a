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

from unittest import mock

from _timing_setup import solver_to_time, start_on_one_thread, timing_parser
from bench_inference import fastest_per_round

from sklearn_attns import make_trajectories
from sklearn_attns.corrections import HybridStep
from sklearn_attns.systems import ElasticPendulum, GravitationalNBody, KLinkPendulum

# name: (system, base integrator, dt, rows, width) as in the work-precision settings
SYSTEMS = {
    "elastic": (ElasticPendulum, "rk4", 0.2, 1024, 128),
    "klink": (lambda: KLinkPendulum(n_links=2), "rk4", 0.1, 1024, 128),
    "nbody": (lambda: GravitationalNBody(n_bodies=16), "euler", 0.25, 256, 128),
}


def main(argv=None):
    parser = timing_parser(__doc__, SYSTEMS, repeats=10)
    parser.add_argument("--n-steps", type=int, default=20)
    args = parser.parse_args(argv)
    start_on_one_thread()
    for name in args.systems:
        make, integrator, dt, rows, width = SYSTEMS[name]
        system = make()
        u0 = make_trajectories(system, rows, t_end=dt, dt=dt, fine_dt=dt / 5, method="rk4",
                               random_state=1)[:, 0]
        solver = solver_to_time(system, integrator, dt, width, epochs=2, compile=True)

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
