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

import argparse
import os
import platform
import sys
import warnings

import torch

from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns._timing import fastest_times
from sklearn_attns._torch_stepping import _column_major_inductor, _fused_steps_function, fresh_code
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
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS))
    parser.add_argument("--repeats", type=int, default=20, help="interleaved timing rounds")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, 1 torch thread")
    for name in args.systems:
        make, integrator, dt, rows, width = SYSTEMS[name]
        system = make()
        X = make_trajectories(system, 50, t_end=2 * dt, dt=dt, fine_dt=dt / 5, method="rk4", random_state=0)
        v = torch.as_tensor(system.sample_initial_conditions(rows, random_state=1)).t().contiguous()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solver = AttNSSolver(system=system, dt=dt, integrator=integrator, width=width, max_epochs=1,
                                 device="cpu", random_state=0).fit(X)
        plain = _fused_steps_function(system, get_integrator(integrator), dt, FUSED)
        steps = {"plain": (plain, (v, None, None, None, None)),
                 "hybrid": (solver.model_._column_steps(FUSED), (v,))}
        functions = {}
        with torch.no_grad():
            for label, patches in SETTINGS.items():
                for kind, (eager, arguments) in steps.items():
                    compiled = torch.compile(fresh_code(eager), backend=_column_major_inductor(patches),
                                             dynamic=False)
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
