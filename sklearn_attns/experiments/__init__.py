"""The paper's experiments (Figs. 3-5, Tables 1-2, Appendix D.1) and one on PDEs, runnable and resumable.

An application built on the library: it uses the estimators, data sets, metrics and
plotting helpers of the library as any user would, and the library never imports
it. ``python -m sklearn_attns`` is its command line (``sklearn_attns.experiments.cli``).

An experiment is a list of *cells*: one fit of a :class:`HybridSolverRegressor` on one
benchmark's training split and one rollout over its test split. :func:`run_experiment`
runs the cells one after the other, stores each finished cell as a JSON file under
``OUT/cells/`` (a rerun with the same settings skips it), then writes three files into
``OUT``: a CSV of every cell, a Markdown table with the paper's numbers beside ours where
the paper gives them, and a figure (log-scale MSE, needs matplotlib).

The sizes come from a :class:`Scale`: ``SCALES["paper"]`` uses Table 3's sizes and the
paper's network width; ``SCALES["medium"]`` the paper's network on 2-20% of its data;
``SCALES["quick"]`` runs each experiment in minutes on two CPU
cores with smaller data, fewer epochs and narrower networks (the Markdown header says
which). Tests may pass a smaller :class:`Scale` of their own, such as ``SCALES["tiny"]``.

The metric is the paper's: the squared error averaged over test trajectories, state
components and the times ``dt, 2 dt, ..., T`` (:func:`sklearn_attns.metrics.trajectory_mse`).

Modules: ``cells`` (scales, cells, the paper's numbers), ``run`` (running, resuming, the
CSV and Markdown outputs), ``figures`` (the figures), ``work_precision`` (work-precision
diagrams of the benchmark systems: does the hybrid pay?) and ``cli`` (the command line).
"""

from .cells import (
    CORRECTIONS,
    DEFAULT_VARIANT,
    DEMO,
    DEMO_SCALE,
    EXPERIMENTS,
    INTEGRATORS,
    SCALES,
    Cell,
    Experiment,
    Scale,
    with_overrides,
)
from .run import format_mse, run_cell, run_experiment, top_second_derivative, write_outputs

__all__ = ["CORRECTIONS", "DEFAULT_VARIANT", "DEMO", "DEMO_SCALE", "EXPERIMENTS", "INTEGRATORS", "SCALES",
           "Cell", "Experiment", "Scale", "format_mse", "run_cell", "run_experiment", "top_second_derivative",
           "with_overrides", "write_outputs"]
