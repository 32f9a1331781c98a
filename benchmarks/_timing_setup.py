"""What the timing benchmarks share: their command line, the header of their report, and a
solver fitted only to be timed."""

import argparse
import os
import platform
import sys
import warnings

import torch

from sklearn_attns import AttNSSolver, make_trajectories


def timing_parser(description, systems, repeats):
    """A parser with ``--systems`` (keys of ``systems``, all by default) and ``--repeats``."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="+", choices=list(systems), default=list(systems))
    parser.add_argument("--repeats", type=int, default=repeats, help="interleaved timing rounds")
    return parser


def start_on_one_thread():
    """One torch thread; print the command and the machine."""
    torch.set_num_threads(1)
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, 1 torch thread")


def solver_to_time(system, integrator, dt, width, epochs, **params):
    """AttNS on the CPU, fitted for ``epochs`` on 50 short trajectories: a network's weights
    do not change its cost."""
    X = make_trajectories(system, 50, t_end=2 * dt, dt=dt, fine_dt=dt / 5, method="rk4", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AttNSSolver(system=system, dt=dt, integrator=integrator, width=width, max_epochs=epochs,
                           device="cpu", random_state=0, **params).fit(X)
