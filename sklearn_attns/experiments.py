"""The paper's experiments (Figs. 3-5, Tables 1-2, Appendix D.1), runnable and resumable.

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
"""

import csv
import fnmatch
import json
import math
import os
import re
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .datasets import load_elastic_pendulum, load_klink_pendulum, load_spring_mass
from .estimator import HybridSolverRegressor
from .metrics import mse_per_step, trajectory_mse

__all__ = ["DEMO", "DEMO_SCALE", "EXPERIMENTS", "SCALES", "Cell", "Experiment", "Scale", "format_mse",
           "run_cell", "run_experiment", "top_second_derivative", "with_overrides", "write_outputs"]


# --- Sizes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """How large an experiment runs.

    Parameters
    ----------
    name : str
        Shown in the outputs.
    data : dict
        Benchmark name (``"spring_mass"``, ``"elastic_pendulum"``, ``"klink_pendulum"``)
        to the ``scale`` given to its loader: a fraction of Table 3's sizes, or "paper".
    max_epochs : int
        Training epochs of every fit.
    batch_size : int
        Training batch; also trajectories per batch in the rollouts.
    width : int
        Hidden width standing for the paper's default ``d1 = 1024``; Table 1's widths are
        ``width / 2`` and ``2 width``.
    chain_sizes : tuple of int
        Masses of the spring chains of Fig. 3.
    n_masses : int
        Masses of the spring chain of Tables 1 and 2 (the paper's ``d = 20``).
    data_sizes : tuple of float
        Fractions of the training split of Fig. 5.
    fine_dt : float
        Fine step of the training data.
    reference_fine_dt : float
        Fine step of the RK4 test data.
    timing_repeats : int
        Rollouts timed for Table 1's inference speed (the fastest counts).
    learning_rate : float
        Adam's initial learning rate.
    random_state : int
        Seed of the data subsets, initial weights and shuffling.
    n_jobs : int or None
        Processes that make the data sets (see :func:`~sklearn_attns.make_trajectories`).
    note : str
        What differs from the paper, printed in the Markdown header.
    """

    name: str
    data: dict
    max_epochs: int
    batch_size: int
    width: int
    chain_sizes: tuple
    n_masses: int
    data_sizes: tuple
    fine_dt: float = 1e-3
    reference_fine_dt: float = 1e-4
    timing_repeats: int = 3
    learning_rate: float = 1e-3
    random_state: int = 0
    n_jobs: int = None
    note: str = ""


PAPER_WIDTH = 1024

SCALES = {
    "paper": Scale(
        name="paper", data={"spring_mass": "paper", "elastic_pendulum": "paper", "klink_pendulum": "paper"},
        max_epochs=100, batch_size=8192, width=PAPER_WIDTH, chain_sizes=(10, 20, 30), n_masses=20,
        data_sizes=(0.1, 0.25, 0.5, 1.0), n_jobs=-1,
        note="Table 3's sizes; 100 epochs of Adam (cosine schedule), batch 8192; the network of Eq. (8) "
             "with d1 = 1024 (Table 1: 512 / 1024 / 2048). The chain sizes of Fig. 3 are not given in the "
             "paper's text; d = 20 is the chain of Tables 1 and 2.",
    ),
    "quick": Scale(
        name="quick", data={"spring_mass": 0.05, "elastic_pendulum": 0.005, "klink_pendulum": 0.01},
        max_epochs=30, batch_size=512, width=256, chain_sizes=(10, 20), n_masses=20,
        data_sizes=(0.25, 0.5, 1.0), reference_fine_dt=1e-3,
        note="a reduced run for two CPU cores: training splits of 250 (spring-mass), 100 (elastic) and "
             "200 (2-link) trajectories before the data fraction is applied, test splits of 250 / 50 / 100 "
             "(5%, 0.5% and 1% of Table 3); 30 epochs; width d1 = 256 stands for the paper's 1024 "
             "(Table 1: 128 / 256 / 512 for 512 / 1024 / 2048); RK4 reference at fine step 1e-3 (it "
             "differs from 1e-4 by an MSE below 1e-17).",
    ),
    "medium": Scale(
        name="medium", data={"spring_mass": 0.2, "elastic_pendulum": 0.02, "klink_pendulum": 0.04},
        max_epochs=30, batch_size=1024, width=PAPER_WIDTH, chain_sizes=(10, 20), n_masses=20,
        data_sizes=(0.1, 0.25, 0.5, 1.0), reference_fine_dt=1e-3,
        note="the paper's network (d1 = 1024; Table 1: 512 / 1024 / 2048) on part of its data: training "
             "splits of 1,000 (spring-mass), 400 (elastic) and 800 (2-link) trajectories before the data "
             "fraction is applied, test splits of 1,000 / 200 / 400 (20%, 2% and 4% of Table 3); 30 epochs, "
             "batch 1024; RK4 reference at fine step 1e-3 (it differs from 1e-4 by an MSE below 1e-17).",
    ),
    "tiny": Scale(
        name="tiny", data={"spring_mass": 0.002, "elastic_pendulum": 0.0002, "klink_pendulum": 0.0005},
        max_epochs=2, batch_size=256, width=16, chain_sizes=(2,), n_masses=2, data_sizes=(0.5, 1.0),
        fine_dt=1e-2, reference_fine_dt=1e-2, timing_repeats=1,
        note="a smoke-test size: a handful of trajectories, 2 epochs, width 16; the numbers mean nothing.",
    ),
}


# --- Cells ---------------------------------------------------------------------------------

SYSTEM_NAMES = {"spring_mass": "Spring-mass", "elastic_pendulum": "Elastic pendulum",
                "klink_pendulum": "2-link pendulum"}
INTEGRATOR_NAMES = {"euler": "Euler", "heun": "Improved Euler", "rk3": "RK3", "rk4": "RK4"}
METHOD_NAMES = {"attns": "AttNS", "attns-m": "AttNS-m", "neurvec": "NeurVec", "csm": "CSM", "fsnet": "FSNet"}
CORRECTIONS = ("none", "attns", "attns-m", "neurvec", "csm", "fsnet")
INTEGRATORS = ("euler", "heun", "rk3", "rk4")
_LOADERS = {"spring_mass": load_spring_mass, "elastic_pendulum": load_elastic_pendulum,
            "klink_pendulum": load_klink_pendulum}


@dataclass(frozen=True)
class Cell:
    """One fit and one test rollout.

    Parameters
    ----------
    benchmark : {"spring_mass", "elastic_pendulum", "klink_pendulum"}
        The data set (Table 3).
    correction : str, default="attns"
        ``"none"`` is the plain integrator.
    integrator : str, default="rk4"
        Base method; for the spring chain it also makes the training data (Table 3).
    data_fraction : float, default=1.0
        Share of the training split used.
    n_masses : int or None, default=None
        Masses of the spring chain.
    params : tuple of (str, object), default=()
        Further :class:`HybridSolverRegressor` parameters (depth, width, ...).
    variant : str, default=""
        The paper's name of an ablation row.
    test : {"all", "top10"}, default="all"
        The whole test split, or its 10% of trajectories with the largest ``|u''|``
        (Appendix D.1).
    t_end : float or None, default=None
        Evaluation time; None is the benchmark's ``T``.
    timed : bool, default=False
        Time the rollout ``timing_repeats`` times (Table 1).
    paper : tuple of (str, object), default=()
        The paper's numbers for this cell (``"mse"``, ``"rel_speed"``).
    """

    benchmark: str
    correction: str = "attns"
    integrator: str = "rk4"
    data_fraction: float = 1.0
    n_masses: int = None
    params: tuple = ()
    variant: str = ""
    test: str = "all"
    t_end: float = None
    timed: bool = False
    paper: tuple = field(default=(), compare=False)

    @property
    def key(self):
        """A file-name-safe identifier, unique within an experiment."""
        parts = [self.benchmark + (f"{self.n_masses}" if self.n_masses else ""), self.integrator,
                 self.correction, f"data{self.data_fraction * 100:g}"]
        parts += [f"{name}{value}" for name, value in self.params]
        if self.test != "all":
            parts.append(self.test)
        if self.t_end is not None:
            parts.append(f"T{self.t_end:g}")
        return re.sub(r"[^A-Za-z0-9.=_-]+", "", "-".join(parts).replace("*", "x"))

    @property
    def method(self):
        if self.correction == "none":
            return f"{INTEGRATOR_NAMES[self.integrator]} (plain)"
        return METHOD_NAMES[self.correction]


def _settings(cell, scale):
    """Everything a cell's result depends on; a stored result is reused only if they match."""
    settings = {k: v for k, v in asdict(cell).items() if k != "paper"}
    settings.update(
        data=scale.data[cell.benchmark], max_epochs=scale.max_epochs, batch_size=scale.batch_size,
        width=scale.width, fine_dt=scale.fine_dt, reference_fine_dt=scale.reference_fine_dt,
        learning_rate=scale.learning_rate, random_state=scale.random_state,
        timing_repeats=scale.timing_repeats if cell.timed else None,
    )
    return json.loads(json.dumps(settings))


def top_second_derivative(X, dt, fraction=0.1):
    """Indices of the trajectories with the largest ``max |u''|`` (Appendix D.1).

    ``u''`` is estimated by central second differences of the stored states,
    ``(u_{n+1} - 2 u_n + u_{n-1}) / dt**2``, and its maximum taken over times and
    components.

    Parameters
    ----------
    X : ndarray of shape (n_trajectories, n_times, n_state)
        Trajectories sampled every ``dt`` (at least 3 times).
    dt : float
        Time between stored states.
    fraction : float, default=0.1
        Share of the trajectories kept (at least one).

    Returns
    -------
    indices : ndarray of int
        Sorted indices of the kept trajectories.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 1, 11)
    >>> X = np.stack([np.sin(w * t) for w in (1.0, 5.0, 2.0)])[:, :, None]
    >>> top_second_derivative(X, 0.1, fraction=0.3)
    array([1])
    """
    second = (X[:, 2:] - 2 * X[:, 1:-1] + X[:, :-2]) / dt**2
    size = np.abs(second).max(axis=(1, 2))
    n_keep = max(1, math.ceil(fraction * len(X) - 1e-9))
    return np.sort(np.argsort(-size, kind="stable")[:n_keep])


class _DataCache:
    """Loads each benchmark split once per run."""

    def __init__(self, scale, verbose):
        self.scale, self.verbose, self.loaded = scale, verbose, {}

    def __call__(self, cell):
        train_method = cell.integrator if cell.benchmark == "spring_mass" else "rk4"
        key = (cell.benchmark, cell.n_masses, train_method)
        if key not in self.loaded:
            kwargs = {"n_masses": cell.n_masses} if cell.benchmark == "spring_mass" else {}
            self.loaded[key] = _LOADERS[cell.benchmark](
                scale=self.scale.data[cell.benchmark], train_method=train_method, fine_dt=self.scale.fine_dt,
                reference_fine_dt=self.scale.reference_fine_dt, n_jobs=self.scale.n_jobs,
                verbose=int(self.verbose > 0), **kwargs)
        return self.loaded[key]


def _test_set(cell, data):
    X = data.test
    if cell.t_end is not None:
        X = X[:, : round(cell.t_end / data.dt) + 1]
    if cell.test == "top10":
        X = X[top_second_derivative(X, data.dt)]
    elif cell.test != "all":
        raise ValueError(f"test must be 'all' or 'top10', got {cell.test!r}.")
    return X


def run_cell(cell, scale, data, device="auto", compile=False, verbose=0):
    """Fit one cell's solver and score it on its test trajectories.

    Parameters
    ----------
    cell : Cell
        What to run.
    scale : Scale
        Epochs, batch, width and seed.
    data : Bunch
        The benchmark (``train``, ``test``, ``system``, ``dt``) from a loader.
    device : str, default="auto"
        Torch device of the solver.
    compile : bool, default=False
        Run the network through ``torch.compile``.
    verbose : int, default=0
        Passed to the solver: 1 prints a line per training epoch.

    Returns
    -------
    result : dict
        ``mse`` (inf if a rollout blew up), ``mse_per_step``, ``loss_curve``, ``fit_s``,
        ``predict_s``, ``epochs``, ``n_train``, ``n_test``, ``blown_up`` (number of
        trajectories), ``dt`` and ``warnings`` (distinct messages of runtime warnings:
        rollouts that blew up, a training loss that became non-finite).
    """
    params = dict(system=data.system, dt=data.dt, integrator=cell.integrator, correction=cell.correction,
                  data_fraction=cell.data_fraction, width=scale.width, max_epochs=scale.max_epochs,
                  batch_size=scale.batch_size, learning_rate=scale.learning_rate, device=device,
                  compile=compile, random_state=scale.random_state, verbose=verbose)
    params.update(cell.params)
    solver = HybridSolverRegressor(**params)
    X = _test_set(cell, data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        solver.fit(data.train)
        fit_s = time.perf_counter() - start
        timings = []
        for _ in range(scale.timing_repeats if cell.timed else 1):
            start = time.perf_counter()
            paths = solver.predict(X[:, 0], n_steps=X.shape[1] - 1)
            timings.append(time.perf_counter() - start)
    messages = sorted({str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)})
    per_step = mse_per_step(X, np.nan_to_num(paths, nan=np.inf))
    return {
        "mse": trajectory_mse(X, np.nan_to_num(paths, nan=np.inf)),
        "mse_per_step": per_step.tolist(),
        "loss_curve": [float(v) for v in getattr(solver, "loss_curve_", [])],
        "fit_s": fit_s,
        "predict_s": min(timings),
        "epochs": int(solver.n_iter_),
        "n_train": len(solver.train_indices_),
        "n_test": len(X),
        "blown_up": int((~np.isfinite(paths).all(axis=(1, 2))).sum()),
        "dt": float(data.dt),
        "warnings": messages,
    }


# --- Experiments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    """One experiment of the paper.

    Parameters
    ----------
    name : str
        The command-line name.
    title : str
        Heading of the Markdown file and the figure.
    cells : callable
        ``cells(scale) -> list of Cell``.
    columns : tuple of str
        Record fields that name a row of the Markdown table, before the results.
    figure : dict
        Keyword arguments of the plotting function (``kind`` "bars" or "curves").
    paper_note : str
        Where the paper's numbers come from.
    extra : tuple of str, default=()
        Record fields shown after the MSE columns (Table 1's relative speeds).
    """

    name: str
    title: str
    cells: object
    columns: tuple
    figure: dict
    paper_note: str
    extra: tuple = ()


def _paper(**values):
    return tuple((k, v) for k, v in values.items() if v is not None)


# Numbers printed in the paper. Tables 1 and 2 and the AttNS results of Figs. 3 and 4
# share one setting (RK4, 50% of the data, d = 20 for the chain).
_OURS = {"spring_mass": 2.58e-6, "klink_pendulum": 4.26e-9, "elastic_pendulum": 5.41e-7}
_TABLE1 = {  # variant: {benchmark: (MSE, relative inference speed)}
    "h = 3": {"spring_mass": (2.49e-6, "↓ 88.49%"), "klink_pendulum": (4.39e-9, "↓ 91.60%"),
              "elastic_pendulum": (5.28e-7, "↓ 90.89%")},
    "h = 4": {"spring_mass": (2.55e-6, "↓ 93.95%"), "klink_pendulum": (4.42e-9, "↓ 95.64%"),
              "elastic_pendulum": (5.58e-7, "↓ 95.33%")},
    "d1 = 512": {"spring_mass": (3.76e-5, "↑ 27.59%"), "klink_pendulum": (2.56e-8, "↑ 15.36%"),
                 "elastic_pendulum": (2.56e-6, "↑ 17.25%")},
    "d1 = 2048": {"spring_mass": (2.41e-6, "↓ 26.48%"), "klink_pendulum": (3.98e-9, "↓ 23.12%"),
                  "elastic_pendulum": (4.83e-7, "↓ 24.63%")},
}
_TABLE2 = {
    "w/ skip": {"spring_mass": 4.57e-4, "klink_pendulum": 6.36e-6, "elastic_pendulum": 1.39e-4},
    "input S·dt": {"spring_mass": 3.67e-6, "klink_pendulum": 4.18e-9, "elastic_pendulum": 1.65e-6},
    "LSTM": {"elastic_pendulum": 7.21e-6, "klink_pendulum": 1.35e-8},
    "Transformer": {"elastic_pendulum": 3.64e-4, "klink_pendulum": 2.65e-6},
}
_APPENDIX_D1 = {"elastic_pendulum": {"none": 4.33, "neurvec": 6.32e-5, "attns": 1.34e-6},
                "klink_pendulum": {"none": 3.56e-2, "neurvec": 3.54e-6, "attns": 8.54e-8}}
_PENDULUMS = ("klink_pendulum", "elastic_pendulum")
_ALL_BENCHMARKS = ("spring_mass", "klink_pendulum", "elastic_pendulum")
DEFAULT_VARIANT = "Ours (h = 2, d1 = 1024)"


def _n_masses(benchmark, scale):
    return scale.n_masses if benchmark == "spring_mass" else None


def _if_paper_chain(benchmark, scale, value):
    """``value`` unless the benchmark is a spring chain of other than the paper's 20 masses."""
    return None if benchmark == "spring_mass" and scale.n_masses != 20 else value


def _fig3_cells(scale):
    def paper(d, integrator, fraction, correction):
        same = (d, integrator, fraction, correction) == (20, "rk4", 0.5, "attns")
        return _paper(mse=_OURS["spring_mass"] if same else None)

    return [Cell("spring_mass", c, i, f, n_masses=d, paper=paper(d, i, f, c))
            for i in INTEGRATORS for d in scale.chain_sizes for f in (1.0, 0.5) for c in CORRECTIONS]


def _fig4_cells(scale):
    return [Cell(b, c, "rk4", 0.5, paper=_paper(mse=_OURS[b] if c == "attns" else None))
            for b in _PENDULUMS for c in CORRECTIONS]


def _fig5_cells(scale):
    return [Cell("elastic_pendulum", c, "rk4", f, params=(() if c == "none" else (("input_noise", 1e-5),)))
            for f in scale.data_sizes for c in ("none", "neurvec", "attns")]


def _table1_cells(scale):
    w = scale.width
    variants = [(DEFAULT_VARIANT, 2, w), ("h = 3", 3, w), ("h = 4", 4, w), ("d1 = 512", 2, w // 2),
                ("d1 = 2048", 2, 2 * w)]
    cells = []
    for b in _ALL_BENCHMARKS:
        for variant, depth, width in variants:
            mse, speed = _TABLE1[variant][b] if variant in _TABLE1 else (_OURS[b], None)
            cells.append(Cell(b, "attns", "rk4", 0.5, n_masses=_n_masses(b, scale), variant=variant,
                              params=(("depth", depth), ("width", width)), timed=True,
                              paper=_paper(mse=_if_paper_chain(b, scale, mse), rel_speed=speed)))
    return cells


def _table2_cells(scale):
    variants = [("Ours", ()), ("w/ skip", (("skip_connection", True),)),
                ("input S·dt", (("attention_input", "S*dt"),)),
                ("LSTM", (("module", "lstm"),)), ("Transformer", (("module", "transformer"),))]
    cells = []
    for variant, params in variants:
        for b in _ALL_BENCHMARKS:
            if variant in ("LSTM", "Transformer") and b == "spring_mass":
                continue
            mse = _TABLE2[variant].get(b) if variant in _TABLE2 else _OURS[b]
            cells.append(Cell(b, "attns", "rk4", 0.5, n_masses=_n_masses(b, scale), params=params,
                              variant=variant, paper=_paper(mse=_if_paper_chain(b, scale, mse))))
    return cells


def _appendix_d1_cells(scale):
    return [Cell(b, c, "rk4", 0.5, test="top10", t_end=10.0, paper=_paper(mse=_APPENDIX_D1[b][c]))
            for b in ("elastic_pendulum", "klink_pendulum") for c in ("none", "neurvec", "attns")]


def _demo_cells(scale):
    ours = _if_paper_chain("spring_mass", scale, _OURS["spring_mass"])
    return [Cell("spring_mass", c, "rk4", 0.5, n_masses=scale.n_masses,
                 paper=_paper(mse=ours if c == "attns" else None))
            for c in ("none", "neurvec", "attns")]


EXPERIMENTS = {
    "fig3": Experiment(
        "fig3", "Fig. 3: four integrators on spring-mass chains, 100% and 50% of the data", _fig3_cells,
        ("integrator", "d", "data", "method"),
        dict(kind="bars", panels=("integrator", "data"), groups="d", series="correction", xlabel="masses d"),
        "The paper draws Fig. 3 as a plot; the one number it prints for this setting is AttNS with RK4 at "
        "50% data on the 20-mass chain (Table 1).",
    ),
    "fig4": Experiment(
        "fig4", "Fig. 4: chaotic systems, RK4, dt = 0.1, 50% of the data", _fig4_cells,
        ("system", "method"), dict(kind="bars", panels=("system",), groups=None, series="method"),
        "Fig. 4 is a plot; the AttNS numbers are those of Table 1 (same setting).",
    ),
    "fig5": Experiment(
        "fig5", "Fig. 5: noise injection (σ = 1e-5) on the elastic pendulum, several data sizes", _fig5_cells,
        ("data", "method", "noise"),
        dict(kind="curves", panels="data", series="method"),
        "Fig. 5 is a plot without printed numbers. Training adds Gaussian noise of standard deviation "
        "1e-5 to the input states (the plain integrator is not trained).",
    ),
    "table1": Experiment(
        "table1", "Table 1: depth h and width d1 of the attention module (RK4, 50% data)", _table1_cells,
        ("system", "variant", "depth", "width"),
        dict(kind="bars", panels=("system",), groups=None, series="variant"),
        "Table 1. Relative inference speed: rollout time of the default network over that of the variant, "
        "minus one (↑ faster, ↓ slower), timing `predict` on the test set.",
        extra=("rel_speed", "paper_rel_speed"),
    ),
    "table2": Experiment(
        "table2", "Table 2: skip connection, S·dt input, and LSTM / Transformer modules (RK4, 50% data)",
        _table2_cells, ("system", "variant"),
        dict(kind="bars", panels=("system",), groups=None, series="variant"),
        "Table 2 (the paper's column 'w/o Δt_c' is the variant fed with S·dt: the paper's own method "
        "takes S). This library standardises the network's inputs, so S and S·dt differ only by rounding "
        "here.",
    ),
    "appendix-d1": Experiment(
        "appendix-d1",
        "Appendix D.1: the 10% of test trajectories with the largest |u''| (RK4, dt = 0.1, T = 10)",
        _appendix_d1_cells, ("system", "method", "test"),
        dict(kind="bars", panels=("system",), groups=None, series="method"),
        "Appendix D.1. |u''| is estimated by second differences of the test trajectories at dt = 0.1 "
        "over [0, 10]; the models train on 50% of the training split as in Fig. 4.",
    ),
}

DEMO = Experiment(
    "demo",
    "Limited data on the 20-mass spring chain: plain RK4, NeurVec and AttNS (RK4, dt = 0.2, 50% data)",
    _demo_cells, ("system", "d", "data", "method"),
    dict(kind="bars", panels=("system",), groups=None, series="method"),
    "Table 1 (AttNS, RK4, 50% of 5,000 trajectories).",
)

DEMO_SCALE = Scale(
    name="demo", data={"spring_mass": 0.1}, max_epochs=60, batch_size=1024, width=PAPER_WIDTH,
    chain_sizes=(20,), n_masses=20, data_sizes=(0.5,), reference_fine_dt=1e-3,
    note="500 training trajectories of which 50% (250) are used, 500 test trajectories (10% of Table 3's "
         "sizes); 60 epochs; the paper's network (h = 2, d1 = 1024); RK4 reference at fine step 1e-3.",
)


# --- Running and writing -------------------------------------------------------------------


def _record(experiment, scale, cell, result):
    """One flat row of the CSV."""
    params = dict(cell.params)
    noise = params.get("input_noise", 0.0)
    return {
        "experiment": experiment.name,
        "system": SYSTEM_NAMES[cell.benchmark],
        "d": cell.n_masses if cell.n_masses else "",
        "integrator": INTEGRATOR_NAMES[cell.integrator],
        "data": f"{cell.data_fraction * 100:g}%",
        "method": cell.method,
        "correction": METHOD_NAMES.get(cell.correction, "plain solver"),
        "variant": cell.variant,
        "depth": params.get("depth", 2) if cell.correction != "none" else "",
        "width": params.get("width", scale.width) if cell.correction != "none" else "",
        "noise": f"σ = {noise:g}".replace("e-0", "e-") if noise else "none",
        "test": "top 10% by max u''" if cell.test == "top10" else "all",
        "n_train": result["n_train"],
        "n_test": result["n_test"],
        "epochs": result["epochs"],
        "mse": result["mse"],
        "paper_mse": dict(cell.paper).get("mse", ""),
        "rel_speed": "",
        "paper_rel_speed": dict(cell.paper).get("rel_speed", ""),
        "fit_s": round(result["fit_s"], 3),
        "predict_s": round(result["predict_s"], 4),
        "blown_up": result["blown_up"],
        "warnings": " | ".join(result["warnings"]),
        # Curves for the figures; not written to the CSV.
        "mse_per_step": result["mse_per_step"],
        "loss_curve": result["loss_curve"],
        "dt": result["dt"],
    }


_CSV_FIELDS = ("experiment", "system", "d", "integrator", "data", "method", "correction", "variant", "depth",
               "width", "noise", "test", "n_train", "n_test", "epochs", "mse", "paper_mse", "rel_speed",
               "paper_rel_speed", "fit_s", "predict_s", "blown_up", "warnings")
_HEADERS = {"system": "System", "d": "d", "integrator": "Integrator", "data": "Data", "method": "Method",
            "correction": "Correction", "variant": "Variant", "depth": "h", "width": "d1 (ours)",
            "noise": "Noise", "test": "Test set", "rel_speed": "Rel. infer. speed (ours)",
            "paper_rel_speed": "Rel. infer. speed (paper)"}


def _relative_speeds(records):
    """Table 1: speed of each variant relative to the default network of its benchmark."""
    reference = {r["system"]: r["predict_s"] for r in records if r["variant"] == DEFAULT_VARIANT}
    for r in records:
        if r["system"] in reference and r["variant"] != DEFAULT_VARIANT and r["predict_s"] > 0:
            change = reference[r["system"]] / r["predict_s"] - 1
            r["rel_speed"] = f"{'↑' if change >= 0 else '↓'} {abs(change) * 100:.2f}%"
        elif r["variant"] == DEFAULT_VARIANT:
            r["rel_speed"] = "reference"


def format_mse(value):
    """``2.58e-6`` style, ``"blew up"`` for infinity and ``"—"`` for a missing value."""
    if value == "" or value is None:
        return "—"
    value = float(value)
    if not math.isfinite(value):
        return "blew up"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _markdown(experiment, scale, records, elapsed, missing=()):
    columns = list(experiment.columns)
    extras = list(experiment.extra)
    header = [_HEADERS[c] for c in columns] + ["MSE (ours)", "MSE (paper)"] + [_HEADERS[c] for c in extras]
    lines = [f"# {experiment.title}", "",
             f"Scale **{scale.name}**: {scale.note}", "",
             (f"Seed {scale.random_state}; {len(records)} cells; total fit time {elapsed:.0f} s. "
              "MSE: squared error over test trajectories, components and times dt..T."), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        row = [str(r[c]) for c in columns] + [format_mse(r["mse"]), format_mse(r["paper_mse"])]
        row += [str(r[c]) or "—" for c in extras]
        lines.append("| " + " | ".join(text.replace("|", "\\|") for text in row) + " |")
    lines += ["", f"Paper numbers: {experiment.paper_note}"]
    if missing:
        lines += ["", f"Not run yet ({len(missing)} of {len(records) + len(missing)} cells; the same command "
                      "without `--report` or `--only` runs them): " + "; ".join(missing) + "."]
    blown = [r for r in records if r["blown_up"]]
    if blown:
        lines.append(f"'blew up': some test rollouts became non-finite ({len(blown)} cell(s)).")
    return "\n".join(lines) + "\n"


def _load_cell(path):
    """A stored cell, or None if there is none (or it cannot be read: it is then run again)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_atomic(path, text):
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(experiment, scale, records, out, elapsed=0.0, plot=True, missing=()):
    """Write ``EXPERIMENT.csv``, ``EXPERIMENT.md`` and, with ``plot``, ``EXPERIMENT.png``.

    ``missing`` names cells not run yet; the Markdown file lists them under the table.

    Returns
    -------
    paths : dict
        ``"csv"``, ``"markdown"`` and (when plotted) ``"figure"`` to their paths.
    """
    out = Path(out)
    paths = {"csv": out / f"{experiment.name}.csv", "markdown": out / f"{experiment.name}.md"}
    tmp = paths["csv"].with_name(f".{paths['csv'].name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=_CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
    os.replace(tmp, paths["csv"])
    _write_atomic(paths["markdown"], _markdown(experiment, scale, records, elapsed, missing))
    if plot:
        from . import plotting

        spec = dict(experiment.figure)
        kind = spec.pop("kind")
        draw = plotting.bar_chart if kind == "bars" else plotting.curve_chart
        paths["figure"] = out / f"{experiment.name}.png"
        draw(records, paths["figure"], title=experiment.title, **spec)
    return paths


def run_experiment(experiment, scale="quick", out=None, device="auto", compile=False, resume=True, plot=True,
                   verbose=1, report_only=False, only=None):
    """Run (or resume) an experiment and write its CSV, Markdown table and figure.

    Parameters
    ----------
    experiment : str or Experiment
        A key of :data:`EXPERIMENTS` or an :class:`Experiment`.
    scale : str or Scale, default="quick"
        A key of :data:`SCALES` or a :class:`Scale`.
    out : str or path-like, default=None
        Output folder; ``results/EXPERIMENT`` if None.
    device : str, default="auto"
        Torch device of the solvers.
    compile : bool, default=False
        Run the networks through ``torch.compile``.
    resume : bool, default=True
        Reuse the cells finished earlier with the same settings (``OUT/cells/*.json``).
    plot : bool, default=True
        Draw the figure (needs matplotlib, the ``plot`` extra).
    verbose : int, default=1
        1 prints a line per cell and one per data split made (cached data sets are loaded
        silently); 2 also names each cell as it starts and prints a line per training
        epoch (for long cells); 0 prints nothing.
    report_only : bool, default=False
        Run no cell: write the outputs from the cells finished so far (by this or another
        process), listing the others as not run yet. A way to look at a long run midway.
    only : str or list of str, default=None
        Run only the cells whose key (the name of ``OUT/cells/KEY.json``, such as
        ``spring_mass20-rk4-attns-data50``) matches one of these shell-style patterns
        (``"spring_mass*"``, ``"*-rk4-*"``); the outputs still cover the whole experiment,
        with the other cells as in ``report_only``. A way to run a part that fits the
        machine, or to share an experiment between processes or machines.

    Returns
    -------
    records : list of dict
        One per cell, as in the CSV.
    paths : dict
        The files written.
    """
    if report_only and not resume:
        raise ValueError("report_only=True reads the finished cells; it needs resume=True.")
    if report_only and only is not None:
        raise ValueError("report_only=True runs no cell; only= would have nothing to choose.")
    if isinstance(experiment, str):
        if experiment not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {experiment!r}; choose one of {', '.join(EXPERIMENTS)}.")
        experiment = EXPERIMENTS[experiment]
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}.")
        scale = SCALES[scale]
    out = Path(out if out is not None else Path("results") / experiment.name)
    cell_dir = out / "cells"
    cell_dir.mkdir(parents=True, exist_ok=True)
    cells = experiment.cells(scale)
    chosen = _choose_cells(cells, only, experiment.name)
    data = _DataCache(scale, verbose)
    say = print if verbose else (lambda *args, **kwargs: None)
    say(f"{experiment.name}: {len(cells)} cells at scale {scale.name!r}, results in {out}", flush=True)
    records, missing, elapsed, start = [], [], 0.0, time.perf_counter()
    for i, cell in enumerate(cells, 1):
        path = cell_dir / f"{cell.key}.json"
        settings = _settings(cell, scale)
        stored = _load_cell(path)
        name = (f"{SYSTEM_NAMES[cell.benchmark]}" + (f" d={cell.n_masses}" if cell.n_masses else "")
                + f" {cell.integrator} {cell.method} {cell.data_fraction * 100:g}%"
                + (f" [{cell.variant}]" if cell.variant else "")
                + "".join(f" {k}={v}" for k, v in cell.params))
        label = f"[{i}/{len(cells)}] {name}"
        if resume and stored is not None and stored.get("settings") == settings:
            result = stored["result"]
            say(f"{label}: done earlier, MSE {format_mse(result['mse'])}", flush=True)
        elif report_only or cell.key not in chosen:
            say(f"{label}: not run yet", flush=True)
            missing.append(name)
            continue
        else:
            if verbose >= 2:
                say(f"{label}: running", flush=True)
            result = run_cell(cell, scale, data(cell), device=device, compile=compile, verbose=int(verbose >= 2))
            _write_atomic(path, json.dumps({"settings": settings, "result": result}, indent=1))
            say(f"{label}: MSE {format_mse(result['mse'])} (fit {result['fit_s']:.1f} s, "
                f"{time.perf_counter() - start:.0f} s elapsed)", flush=True)
        elapsed += result["fit_s"]
        records.append(_record(experiment, scale, cell, result))
    if "rel_speed" in experiment.extra:
        _relative_speeds(records)
    paths = write_outputs(experiment, scale, records, out, elapsed, plot=plot and bool(records), missing=missing)
    say("wrote " + ", ".join(str(p) for p in paths.values()), flush=True)
    return records, paths


def _choose_cells(cells, only, experiment_name):
    """Keys of the cells that ``only`` (None, a pattern or a list of them) lets run."""
    keys = [cell.key for cell in cells]
    if only is None:
        return set(keys)
    patterns = [only] if isinstance(only, str) else list(only)
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"only must be a pattern (str) or a non-empty list of them, got {only!r}.")
    chosen = {key for key in keys if any(fnmatch.fnmatchcase(key, p) for p in patterns)}
    if not chosen:
        raise ValueError(f"only={only!r} matches none of the {len(keys)} cells of {experiment_name}; "
                         f"their keys look like {keys[0]!r}.")
    return chosen


def with_overrides(scale, **changes):
    """A copy of ``scale`` with some fields changed (None values are ignored)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(scale, **changes) if changes else scale
