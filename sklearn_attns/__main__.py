"""Command line: ``python -m sklearn_attns demo``."""

import argparse
import sys

import numpy as np


def _demo(args):
    from .datasets import make_trajectories
    from .integrators import get_integrator
    from .metrics import trajectory_mse
    from .systems import SpringMass

    system = SpringMass(n_masses=20)
    X = make_trajectories(system, n_trajectories=args.n_trajectories, t_end=20.0, dt=0.2, fine_dt=1e-3,
                          random_state=0, verbose=1)
    print(f"dataset: {X.shape} {X.dtype} (n_trajectories, n_times, n_state) of {system!r}")
    rk4 = get_integrator("rk4")
    u, path = X[:, 0], [X[:, 0]]
    for _ in range(X.shape[1] - 1):
        u = rk4.step(system.rhs, u, 0.2)
        path.append(u)
    print(f"plain RK4 at dt=0.2: trajectory MSE {trajectory_mse(X, np.stack(path, 1)):.3g}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="sklearn-attns", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="make a spring-mass dataset and show what plain RK4 gets wrong")
    demo.add_argument("--n-trajectories", type=int, default=200)
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
