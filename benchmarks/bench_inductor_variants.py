"""Inductor settings for the compiled steps: each candidate of ``INDUCTOR_VARIANTS`` and a few
others, timed on the same fused column steps.

Every compiled function of the library (``make_trajectories``' fused fine steps, a hybrid
solver's column steps in ``predict``) is compiled with each setting of
``sklearn_attns._torch_stepping.INDUCTOR_VARIANTS`` and the fastest agreeing one is kept.
This script shows what the choice of candidates rests on: for the work-precision systems it
compiles four fine steps of the plain base integrator and four hybrid steps (network of the
setting's width, trained for one epoch: the weights do not change the cost) with each
setting, and times all of them interleaved, best of ``--repeats`` rounds, per step.

Run: python benchmarks/bench_inductor_variants.py [--systems nbody elastic elastic_heun klink] [--repeats 20]
"""

import torch
from _timing_setup import solver_to_time, start_on_one_thread, timing_parser

from sklearn_attns._timing import fastest_times
from sklearn_attns._torch_stepping import _fused_steps_function, compile_candidate
from sklearn_attns.integrators import get_integrator
from sklearn_attns.systems import ElasticPendulum, GravitationalNBody, KLinkPendulum

# name: (system, base integrator, dt, rows, width) as in the work-precision settings
SYSTEMS = {
    "nbody": (lambda: GravitationalNBody(n_bodies=16), "euler", 0.25, 256, 64),
    "elastic": (ElasticPendulum, "rk4", 0.2, 1024, 128),
    "elastic_heun": (ElasticPendulum, "heun", 0.1, 1024, 128),
    "klink": (lambda: KLinkPendulum(n_links=2), "rk4", 0.1, 1024, 64),
}
# Inductor's default, and buffers realised when read at least 1, 2 or 3 times.
SETTINGS = {"default": {},
            **{f"realize_reads_threshold={n}": {"realize_reads_threshold": n} for n in (1, 2, 3)}}
FUSED = 4


def main(argv=None):
    parser = timing_parser(__doc__, SYSTEMS, repeats=20)
    args = parser.parse_args(argv)
    start_on_one_thread()
    for name in args.systems:
        make, integrator, dt, rows, width = SYSTEMS[name]
        system = make()
        v = torch.as_tensor(system.sample_initial_conditions(rows, random_state=1)).t().contiguous()
        solver = solver_to_time(system, integrator, dt, width, epochs=1)
        plain = _fused_steps_function(system, get_integrator(integrator), dt, FUSED)
        steps = {"plain": (plain, (v, None, None, None, None)),
                 "hybrid": (solver.model_._column_steps(FUSED), (v,))}
        functions = {}
        with torch.no_grad():
            for label, patches in SETTINGS.items():
                for kind, (eager, arguments) in steps.items():
                    compiled = compile_candidate(eager, patches)
                    compiled(*arguments)  # compiles outside the timing
                    functions[kind, label] = lambda f=compiled, a=arguments: f(*a)
            seconds = dict(zip(functions, fastest_times(list(functions.values()), args.repeats)))
        print(f"\n{name}: {system!r}, {integrator} dt {dt:g}, width {width}, {rows} rows; ms per step")
        print(f"  {'setting':28s} {'plain step':>11s} {'hybrid step':>12s}")
        for label in SETTINGS:
            print(f"  {label:28s} {seconds['plain', label] * 1e3 / FUSED:11.3f} "
                  f"{seconds['hybrid', label] * 1e3 / FUSED:12.3f}")


if __name__ == "__main__":
    main()
