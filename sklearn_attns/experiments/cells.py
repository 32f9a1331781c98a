"""What the paper's experiments run: sizes (:class:`Scale`), cells (:class:`Cell`) and the paper's numbers.

The corrections and integrators come from the library's registries
(``sklearn_attns.corrections.CORRECTIONS``, ``sklearn_attns.integrators.INTEGRATORS``);
this module only puts them in the paper's order and gives them the paper's names.
"""

import re
from dataclasses import dataclass, field, fields, replace

from ..corrections import CORRECTIONS as _CORRECTION_REGISTRY
from ..integrators import INTEGRATORS as _INTEGRATOR_REGISTRY
from ..systems import Burgers, FitzHughNagumo, GrayScott

__all__ = ["CORRECTIONS", "DEFAULT_VARIANT", "DEMO", "DEMO_SCALE", "EXPERIMENTS", "INTEGRATORS",
           "PDE_SETTINGS", "SCALES", "Cell", "Experiment", "PDESetting", "Scale", "with_overrides"]


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
        to the ``scale`` given to its loader: a fraction of Table 3's sizes, or "paper";
        for the PDE systems (``"burgers"``, ``"fhn"``, ``"grayscott"``), a fraction of the sizes of
        ``PDE_SETTINGS``.
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
    seeds : tuple of int, default=(0,)
        Training seeds of the experiments that repeat their cells over seeds (``pde``):
        each seed draws its own data subset, initial weights and shuffling.
    n_jobs : int or None
        Processes that make the data sets (see :func:`~sklearn_attns.make_trajectories`).
    note : str
        What differs from the paper, printed in the Markdown header.
    changes : tuple of (str, object, object), default=()
        Fields changed from the named scale by :func:`with_overrides`, as ``(field, the
        scale's value, the value used)``; the Markdown header names them.
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
    seeds: tuple = (0,)
    n_jobs: int = None
    note: str = ""
    changes: tuple = ()

    def describe(self):
        """The scale's name, what was changed from it, and its note: the Markdown header's words.

        Examples
        --------
        >>> from sklearn_attns.experiments import SCALES, with_overrides
        >>> with_overrides(SCALES["tiny"], max_epochs=1).describe()[:60]
        'Scale **tiny**, with 1 training epoch instead of its 2: a sm'
        """
        text = f"Scale **{self.name}**"
        if self.changes:
            text += ", with " + "; ".join(_change_text(*change) for change in self.changes)
        return f"{text}: {self.note}"


def _change_text(name, before, after):
    if name == "max_epochs" and isinstance(after, int):
        return f"{after} training epoch{'s' if after != 1 else ''} instead of its {before}"
    return f"{name} = {after!r} instead of its {before!r}"


def with_overrides(scale, **changes):
    """A copy of ``scale`` with some fields changed (None values are ignored).

    The copy records what changed (its ``changes``), so that the outputs say it.

    Examples
    --------
    >>> from sklearn_attns.experiments import SCALES, with_overrides
    >>> scale = with_overrides(SCALES["quick"], max_epochs=5, batch_size=None)
    >>> scale.max_epochs, scale.changes
    (5, (('max_epochs', 30, 5),))
    """
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return scale
    unknown = sorted((set(changes) - {f.name for f in fields(Scale)}) | (set(changes) & {"name", "changes"}))
    if unknown:
        raise TypeError(f"with_overrides cannot change {unknown}; it changes the other fields of a Scale.")
    original = {name: before for name, before, _ in scale.changes}
    original.update({k: getattr(scale, k) for k in changes if k not in original})
    current = {name: after for name, _, after in scale.changes} | changes
    recorded = tuple((k, original[k], v) for k, v in current.items() if v != original[k])
    return replace(scale, **changes, changes=recorded)


PAPER_WIDTH = 1024

SCALES = {
    "paper": Scale(
        name="paper", data={"spring_mass": "paper", "elastic_pendulum": "paper", "klink_pendulum": "paper",
                            "burgers": 1.0, "fhn": 1.0, "grayscott": 1.0},
        max_epochs=100, batch_size=8192, width=PAPER_WIDTH, chain_sizes=(10, 20, 30), n_masses=20,
        data_sizes=(0.1, 0.25, 0.5, 1.0), seeds=(0, 1, 2), n_jobs=-1,
        note="Table 3's sizes; 100 epochs of Adam (cosine schedule), batch 8192; the network of Eq. (8) "
             "with d1 = 1024 (Table 1: 512 / 1024 / 2048). The chain sizes of Fig. 3 are not given in the "
             "paper's text; d = 20 is the chain of Tables 1 and 2.",
    ),
    "quick": Scale(
        name="quick", data={"spring_mass": 0.05, "elastic_pendulum": 0.005, "klink_pendulum": 0.01,
                            "burgers": 0.1, "fhn": 0.1, "grayscott": 0.1},
        max_epochs=30, batch_size=512, width=256, chain_sizes=(10, 20), n_masses=20,
        data_sizes=(0.25, 0.5, 1.0), reference_fine_dt=1e-3, seeds=(0, 1),
        note="a reduced run for two CPU cores: training splits of 250 (spring-mass), 100 (elastic) and "
             "200 (2-link) trajectories before the data fraction is applied, test splits of 250 / 50 / 100 "
             "(5%, 0.5% and 1% of Table 3); 30 epochs; width d1 = 256 stands for the paper's 1024 "
             "(Table 1: 128 / 256 / 512 for 512 / 1024 / 2048); RK4 reference at fine step 1e-3 (it "
             "differs from 1e-4 by an MSE below 1e-17). PDE systems: 10% of their training and test "
             "sizes, seeds 0 and 1.",
    ),
    "medium": Scale(
        name="medium", data={"spring_mass": 0.2, "elastic_pendulum": 0.02, "klink_pendulum": 0.04,
                             "burgers": 1.0, "fhn": 1.0, "grayscott": 1.0},
        max_epochs=30, batch_size=1024, width=PAPER_WIDTH, chain_sizes=(10, 20), n_masses=20,
        data_sizes=(0.1, 0.25, 0.5, 1.0), reference_fine_dt=1e-3, seeds=(0, 1, 2),
        note="the paper's network (d1 = 1024; Table 1: 512 / 1024 / 2048) on part of its data: training "
             "splits of 1,000 (spring-mass), 400 (elastic) and 800 (2-link) trajectories before the data "
             "fraction is applied, test splits of 1,000 / 200 / 400 (20%, 2% and 4% of Table 3); 30 epochs, "
             "batch 1024; RK4 reference at fine step 1e-3 (it differs from 1e-4 by an MSE below 1e-17). "
             "PDE systems: their full training and test sizes, seeds 0, 1 and 2.",
    ),
    "tiny": Scale(
        name="tiny", data={"spring_mass": 0.002, "elastic_pendulum": 0.0002, "klink_pendulum": 0.0005,
                           "burgers": 0.04, "fhn": 0.04, "grayscott": 0.04},
        max_epochs=2, batch_size=256, width=16, chain_sizes=(2,), n_masses=2, data_sizes=(0.5, 1.0),
        fine_dt=1e-2, reference_fine_dt=1e-2, timing_repeats=1,
        note="a smoke-test size: a handful of trajectories, 2 epochs, width 16; the numbers mean nothing.",
    ),
}


# --- Cells ---------------------------------------------------------------------------------

SYSTEM_NAMES = {"spring_mass": "Spring-mass", "elastic_pendulum": "Elastic pendulum",
                "klink_pendulum": "2-link pendulum", "burgers": "Burgers", "fhn": "FitzHugh-Nagumo",
                "grayscott": "Gray-Scott"}
INTEGRATOR_NAMES = {"euler": "Euler", "heun": "Improved Euler", "rk3": "RK3", "rk4": "RK4"}
METHOD_NAMES = {"attns": "AttNS", "attns-m": "AttNS-m", "neurvec": "NeurVec", "csm": "CSM", "fsnet": "FSNet"}
# The paper's order of the corrections (Fig. 3's legend); names it does not know come after.
_PAPER_CORRECTION_ORDER = ("none", "attns", "attns-m", "neurvec", "csm", "fsnet")


def _in_order(names, first):
    """``names`` (without repeats), those in ``first`` in its order, then the others sorted."""
    names = set(names)
    return tuple(n for n in first if n in names) + tuple(sorted(names - set(first)))


#: Every correction of the library, ``"none"`` (the plain integrator) first, in the paper's order.
CORRECTIONS = _in_order((c.name for c in _CORRECTION_REGISTRY.values()), _PAPER_CORRECTION_ORDER)
#: The paper's base methods (Table 5), by order of accuracy as in Fig. 3: the library's
#: integrators up to order 4 (it has higher-order ones, such as "dop853", as classical
#: references), each once, aliases left out.
INTEGRATORS = tuple(dict.fromkeys(
    i.name for i in sorted(_INTEGRATOR_REGISTRY.values(), key=lambda integrator: integrator.order)
    if i.order <= 4))


def method_name(correction):
    """The paper's name of a correction (its registry name where the paper has none)."""
    return METHOD_NAMES.get(correction, correction)


def integrator_name(integrator):
    """The paper's name of an integrator (its registry name where the paper has none)."""
    return INTEGRATOR_NAMES.get(integrator, integrator)


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
    seed : int or None, default=None
        Seed of the fit (data subset, initial weights, shuffling); None is the scale's
        ``random_state``.
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
    seed: int = None
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
        if self.seed is not None:
            parts.append(f"seed{self.seed}")
        return re.sub(r"[^A-Za-z0-9.=_-]+", "", "-".join(parts).replace("*", "x"))

    @property
    def method(self):
        if self.correction == "none":
            return f"{integrator_name(self.integrator)} (plain)"
        return method_name(self.correction)


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
    keep_paths : int, default=0
        Test trajectories whose reference and predicted states each cell keeps; with
        them the outputs add a figure of those trajectories and one of the test MSE
        over time.
    over_seeds : bool, default=False
        The cells repeat over training seeds (``Cell.seed``): the Markdown table and
        the figure show, per row, the mean and spread over the seeds and the ratio to the
        plain integrator's cell of the same system and data (the CSV keeps every cell).
    """

    name: str
    title: str
    cells: object
    columns: tuple
    figure: dict
    paper_note: str
    extra: tuple = ()
    keep_paths: int = 0
    over_seeds: bool = False


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


# --- PDE systems (method of lines; not in the paper) ---------------------------------------


@dataclass(frozen=True)
class PDESetting:
    """The data of a PDE system: coarse step ``dt``, horizon ``t_end``, fine RK4 step
    ``fine_dt`` of all its trajectories, and the training and test sizes before a scale's
    fraction (``Scale.data``) is applied."""

    system: object
    dt: float
    t_end: float
    fine_dt: float
    n_train: int
    n_test: int

    def sizes(self, fraction):
        """``(n_train, n_test)`` at a scale's fraction (at least one each)."""
        return max(1, round(self.n_train * fraction)), max(1, round(self.n_test * fraction))


#: The PDE experiment's data, one line per system.
PDE_SETTINGS = {
    "burgers": PDESetting(Burgers(), dt=0.05, t_end=4.0, fine_dt=1e-3, n_train=100, n_test=50),
    "fhn": PDESetting(FitzHughNagumo(), dt=0.1, t_end=5.0, fine_dt=1e-3, n_train=100, n_test=50),
    "grayscott": PDESetting(GrayScott(), dt=0.5, t_end=50.0, fine_dt=1e-2, n_train=100, n_test=50),
}
PDE_FRACTIONS = (0.25, 0.5, 1.0)
# The networks of the PDE experiment: the paper's global MLP (width 256) and the local
# convolution (depth 4, width 32, kernel 5), trained alike (Adam lr 1e-2, batch 128), as in
# benchmarks/bench_local_correction.py; the work-precision command uses the same local network.
PDE_TRAINING = (("batch_size", 128), ("learning_rate", 1e-2))
LOCAL_NETWORK = (("module", "conv"), ("depth", 4), ("width", 32), ("kernel_size", 5))
# (variant, correction, estimator parameters)
_PDE_METHODS = (
    ("global (MLP)", "attns", (("module", "mlp"), ("depth", 2), ("width", 256))),
    ("local (conv), slope + state", "attns", LOCAL_NETWORK + (("state_input", True),)),
    ("local (conv)", "neurvec", LOCAL_NETWORK),
    ("local (conv)", "csm", LOCAL_NETWORK),
)


def _pde_cells(scale):
    cells = []
    for system in PDE_SETTINGS:
        for fraction in PDE_FRACTIONS:
            cells.append(Cell(system, "none", "rk4", fraction))
            cells += [Cell(system, correction, "rk4", fraction, params=params + PDE_TRAINING,
                           variant=variant, seed=seed)
                      for variant, correction, params in _PDE_METHODS for seed in scale.seeds]
    return cells


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
    "pde": Experiment(
        "pde", "PDE systems: global and local corrections on Burgers, FitzHugh-Nagumo and Gray-Scott (RK4), "
               "several data sizes and seeds",
        _pde_cells, ("system", "data", "method", "variant"),
        dict(kind="bars", panels=("system",), groups="data", series="name", xlabel="training data"),
        "none: the PDE systems are not in the paper. Data (PDE_SETTINGS, RK4 at the fine step; training "
        "and test sizes before the scale's fraction): " + "; ".join(
            f"{SYSTEM_NAMES[name]}: {s.system!r}, dt = {s.dt:g}, T = {s.t_end:g}, fine step {s.fine_dt:g}, "
            f"{s.n_train} / {s.n_test} trajectories" for name, s in PDE_SETTINGS.items()) + ".",
        over_seeds=True,
    ),
}

DEMO = Experiment(
    "demo",
    "Limited data on the 20-mass spring chain: plain RK4, NeurVec and AttNS (RK4, dt = 0.2, 50% data)",
    _demo_cells, ("system", "d", "data", "method"),
    dict(kind="bars", panels=("system",), groups=None, series="method"),
    "Table 1 (AttNS, RK4, 50% of 5,000 trajectories).",
    keep_paths=1,
)

DEMO_SCALE = Scale(
    name="demo", data={"spring_mass": 0.1}, max_epochs=60, batch_size=1024, width=PAPER_WIDTH,
    chain_sizes=(20,), n_masses=20, data_sizes=(0.5,), reference_fine_dt=1e-3,
    note="500 training trajectories of which 50% (250) are used, 500 test trajectories (10% of Table 3's "
         "sizes); 60 epochs; the paper's network (h = 2, d1 = 1024); RK4 reference at fine step 1e-3.",
)


