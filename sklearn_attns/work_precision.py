"""Does a hybrid solver pay? Work-precision comparisons against classical integrators.

A hybrid solver (a coarse step ``dt`` of a base integrator, corrected by a network) is
worth using only where it reaches a given accuracy in less time than a classical method
with a smaller step. :func:`work_precision` measures both on the same test trajectories
in one run: every method is timed on the same initial conditions, interleaved (one call
of each method per round, best of ``repeats`` rounds, so that slow spells of a shared
machine hit all of them alike), and scored with the paper's metric,
:func:`~sklearn_attns.metrics.trajectory_mse`. The result, a :class:`WorkPrecision`,
gives the **equal-accuracy speed-up** (the time a classical curve needs to reach the
hybrid's error over the hybrid's time, interpolated on the measured curve, never
extrapolated) and the cost model behind it, ``k / (1 + c_net / c_step)``.

For model selection, :func:`make_cost_aware_scoring` and :func:`cheapest_within` let
:class:`~sklearn.model_selection.GridSearchCV` pick the fastest candidate among those
accurate enough.

Dtype and device policy: classical baselines step in float64, on the CPU with NumPy by
default, or with torch (eager or compiled) on the CPU or a GPU; hybrid solvers run as they
were fitted, on their own device.
Timings are wall clock (``time.perf_counter``) with the thread settings of the calling
process.
"""

import math
import numbers
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ._timing import fastest_times
from ._validation import check_count, check_multiple, check_positive, check_trajectories
from .datasets import TrajectoryBlowUpError, make_trajectories
from .devices import resolve_device
from .integrators import get_integrator
from .metrics import trajectory_mse
from .systems import ODESystem, as_system, linear_operator_of

__all__ = [
    "SpeedUp",
    "WorkPrecision",
    "cheapest_within",
    "make_cost_aware_scoring",
    "neg_trajectory_mse",
    "PredictSeconds",
    "work_precision",
]

FAMILIES = ("hybrid", "classical", "reference")
BACKENDS = ("numpy", "torch", "torch-compile")
_DEFAULT_REFINEMENTS = (1, 2, 4, 8, 16, 32)
_DOP853_REFINEMENTS = (1, 2, 4)


# --- Measuring ---------------------------------------------------------------------------------


def work_precision(X_test, dt, solvers=None, *, system=None, classical=None,
                   reference_tolerances=(1e-6, 1e-8, 1e-10), n_reference=8, repeats=3, backend="numpy",
                   device="cpu", linear_shortcut=True, verbose=0):
    """Time and score hybrid solvers and classical integrators on the same trajectories.

    Parameters
    ----------
    X_test : array-like of shape (n_trajectories, n_times, n_state)
        Accurate reference trajectories (float64), states ``dt`` apart. Every method
        starts from ``X_test[:, 0]`` and is scored against all of ``X_test``. Their own
        error must lie well below the errors measured (make them with a fine step, e.g.
        ``make_trajectories(..., method="dop853")``).
    dt : float
        Spacing of ``X_test``.
    solvers : dict of str to fitted estimator, default=None
        Hybrid solvers by label, typically fitted :class:`~sklearn_attns.HybridSolverRegressor`.
        Each is called through its public ``predict(X_test[:, 0], n_steps=..., save_every=m)``
        (so everything a user pays at predict time is counted); its own step ``solver.dt``
        must be ``dt / m`` for an integer ``m``.
    system : ODESystem, default=None
        The system of the classical baselines; None takes the solvers' common ``system``.
    classical : dict of str to sequence of int, default=None
        Classical fixed-step methods and their refinements ``r``: each method steps with
        ``dt / r``. None means the solvers' base integrator (``"rk4"`` without solvers)
        at ``r = 1, 2, 4, ..., 32`` and ``"dop853"`` at ``r = 1, 2, 4``. The base
        integrator is also run at each solver's own step, the plain step the hybrid
        corrects (the ``c_step`` of the cost model).
    reference_tolerances : sequence of float, default=(1e-6, 1e-8, 1e-10)
        Tolerances (``rtol = atol``) of scipy's adaptive ``solve_ivp(method="DOP853")``,
        run one trajectory at a time on the first ``n_reference`` trajectories as a
        reference point; its seconds are scaled to all ``n_trajectories``. Empty: none.
    n_reference : int, default=8
        Trajectories given to ``solve_ivp``.
    repeats : int, default=3
        Timed rounds after an untimed first call of every method (which compiles what
        needs compiling; its time is kept as ``first_call_seconds``). Each round calls
        every method once, in a rotating order; a method's time is its fastest round.
    backend : {"numpy", "torch", "torch-compile"} or sequence of them, default="numpy"
        How classical methods step the batch, always through
        :func:`~sklearn_attns.datasets.make_trajectories` with ``n_jobs=1`` (in this
        process): its NumPy steps (``compile=False``), its torch float64 steps on the CPU
        (``device="cpu", compile=False``; ``system.rhs`` must accept tensors), or its
        fused compiled torch steps (``device="cpu", compile=True``: several fine steps
        in one kernel, the library's fastest classical path; one compilation per method
        and step, paid in the untimed first call, as a hybrid solver with
        ``compile=True`` pays its own). With several, each classical
        method is measured on each, as curves named ``"rk4 (numpy)"``, ``"rk4
        (torch-compile)"``, ...; comparisons against "the base integrator" then take the
        fastest of them. Which is fastest depends on the system and the batch
        (``docs/user_guide/work_precision.md``): compare a hybrid solver compiled with
        ``compile=True`` with compiled classical steps, or it gains from the compiler what
        it is credited to its network.
    device : str or torch.device, default="cpu"
        Where the torch backends step (``"cpu"``, ``"cuda"``, ``"cuda:N"``), and, on a GPU,
        a linear system's propagator: compare hybrid solvers on a GPU with classical steps
        on the same GPU (``make_trajectories`` then steps as many rows at once as fit a
        quarter of its free memory).
    linear_shortcut : bool, default=True
        For a linear system (``du/dt = A u``), step classical methods as
        ``make_trajectories`` does: one product with the exact propagator of the
        ``r`` steps between outputs, ``R(h A)^r``. Its cost does not grow with ``r``, so
        it beats every stepping method, hybrid or not.
    verbose : int, default=0
        Print one line per method when positive.

    Returns
    -------
    WorkPrecision
        The measured rows; see :class:`WorkPrecision`.

    Examples
    --------
    >>> from sklearn_attns import make_trajectories
    >>> from sklearn_attns.systems import ElasticPendulum
    >>> from sklearn_attns.work_precision import work_precision
    >>> system = ElasticPendulum()
    >>> X = make_trajectories(system, 16, t_end=2.0, dt=0.2, fine_dt=0.01, method="dop853", random_state=0)
    >>> result = work_precision(X, 0.2, system=system, classical={"rk4": (1, 2, 4)},
    ...                         reference_tolerances=(), repeats=1)
    >>> [(row["method"], row["step"]) for row in result.rows]
    [('rk4', 0.2), ('rk4', 0.1), ('rk4', 0.05)]
    >>> errors = [row["error"] for row in result.rows]
    >>> bool(errors[0] > errors[1] > errors[2])
    True
    """
    X_test = check_trajectories(X_test, name="X_test")
    n, n_times, n_state = X_test.shape
    dt = check_positive(dt, "dt")
    solvers = _check_solvers(solvers, dt)
    system = _common_system(system, solvers, n_state)
    base = _common_base(solvers)
    classical = _check_classical(classical, base, solvers, dt)
    tolerances = [check_positive(tol, "reference_tolerances") for tol in reference_tolerances]
    n_reference = min(check_count(n_reference, "n_reference"), n)
    repeats = check_count(repeats, "repeats")
    backends = [backend] if isinstance(backend, str) else list(backend)
    if not backends or any(b not in BACKENDS for b in backends):
        raise ValueError(f"backend must be one of {list(BACKENDS)} or a sequence of them, got {backend!r}.")
    device = resolve_device(device)
    if not isinstance(linear_shortcut, (bool, np.bool_)):
        raise TypeError(f"linear_shortcut must be a bool, got {linear_shortcut!r}.")
    verbose = check_count(verbose, "verbose", minimum=0)

    u0, n_steps = X_test[:, 0], n_times - 1
    linear = linear_operator_of(system) is not None
    methods = []  # (row without timings, callable returning the paths)
    for label, (solver, m) in solvers.items():
        row = dict(method=label, family="hybrid", step=dt / m, base=_integrator_name(solver),
                   substeps=_substeps(solver))
        methods.append((row, lambda solver=solver, m=m: solver.predict(u0, n_steps=n_steps * m,
                                                                       save_every=m)))
    if linear and linear_shortcut:
        backends = ["propagator"]
    elif linear:  # the same equations, without the attribute that selects the propagator
        system = ODESystem(rhs=system.rhs, n_state=system.n_state, name=system.label)
    for name, refinements in classical.items():
        integrator = get_integrator(name, "classical")
        for backend_ in backends:
            method = integrator.name if len(backends) == 1 else f"{integrator.name} ({backend_})"
            if backend_ == "propagator":
                method = f"{integrator.name} [propagator]"
            stepper = _stepper(system, integrator, backend_, device)
            for r in refinements:
                row = dict(method=method, family="classical", step=dt / r, integrator=integrator.name,
                           backend=backend_)
                if _steps_on(backend_, device):
                    row["device"] = str(device)
                methods.append((row, lambda stepper=stepper, r=r: stepper(u0, dt, r, n_steps)))
    subset = X_test[:n_reference]
    for tolerance in tolerances:
        row = dict(method="solve_ivp DOP853", family="reference", step=float("nan"), tolerance=tolerance,
                   n_timed=n_reference)
        methods.append((row, lambda tolerance=tolerance: _solve_ivp_paths(system, subset, dt, tolerance)))

    rows = []
    for row, run in methods:
        start = time.perf_counter()
        paths = run()
        row["first_call_seconds"] = time.perf_counter() - start
        reference = subset if row["family"] == "reference" else X_test
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            row["error"] = trajectory_mse(reference, paths)
        rows.append(row)
    best = fastest_times([run for _, run in methods], repeats)
    for row, seconds in zip(rows, best):
        scale = n / row["n_timed"] if row["family"] == "reference" else 1.0
        row["seconds"] = seconds * scale
        if verbose:
            print(f"work_precision: {row['method']} step {row['step']:.4g}: {row['seconds']:.4g} s, "
                  f"error {row['error']:.3e}")
    on = f" on {device}" if any(_steps_on(b, device) for b in backends) else ""
    return WorkPrecision(rows, dt=dt, n_trajectories=n, n_times=n_times, system=system.label,
                         backend=", ".join(backends) + on)


def _check_solvers(solvers, dt):
    if solvers is None:
        return {}
    if not isinstance(solvers, dict):
        raise TypeError(f"solvers must be a dict of label to fitted solver, got {type(solvers).__name__}.")
    checked = {}
    for label, solver in solvers.items():
        if not isinstance(label, str):
            raise TypeError(f"solvers must have str labels, got {label!r}.")
        if not callable(getattr(solver, "predict", None)) or not isinstance(getattr(solver, "dt", None),
                                                                           numbers.Real):
            raise TypeError(f"solvers[{label!r}] must have a predict method and a numeric dt, "
                            f"got {type(solver).__name__}.")
        checked[label] = solver, check_multiple(dt, solver.dt, "dt", f"solvers[{label!r}].dt")
    return checked


def _common_system(system, solvers, n_state):
    if system is None:
        found = [getattr(solver, "system", None) for solver, _ in solvers.values()]
        found = [s for s in found if s is not None]
        if not found:
            raise ValueError("system is required (the classical baselines integrate it) when no solver "
                             "has one.")
        if any(repr(s) != repr(found[0]) for s in found):
            raise ValueError("the solvers have different systems; pass system= to choose the classical one.")
        system = found[0]
    system = as_system(system, n_state)
    if getattr(system, "conditioned", False):
        raise ValueError("work_precision compares solvers of autonomous systems; "
                         f"{system.label} is conditioned (parameters, inputs or time).")
    if system.n_state is not None and system.n_state != n_state:
        raise ValueError(f"X_test has n_state={n_state} but system has n_state={system.n_state}.")
    return system


def _integrator_name(solver):
    integrator = getattr(solver, "integrator", None)
    return None if integrator is None else get_integrator(integrator).name


def _substeps(solver):
    """Base steps per hybrid step: the estimator's ``substeps`` times its integrator's own."""
    substeps = int(getattr(solver, "substeps", 1))
    integrator = getattr(solver, "integrator", None)
    return substeps if integrator is None else get_integrator(integrator, substeps=substeps).substeps


def _base_step(hybrid):
    """The step of the base integrator inside a hybrid row's step (its substeps')."""
    return hybrid["step"] / hybrid.get("substeps", 1)


def _common_base(solvers):
    names = {_integrator_name(solver) for solver, _ in solvers.values()} - {None}
    return names.pop() if len(names) == 1 else "rk4"


def _check_classical(classical, base, solvers, dt):
    if classical is None:
        classical = {base: _DEFAULT_REFINEMENTS, "dop853": _DOP853_REFINEMENTS}
    if not isinstance(classical, dict):
        raise TypeError(f"classical must be a dict of method name to refinements, "
                        f"got {type(classical).__name__}.")
    checked = {}
    for name, refinements in classical.items():
        key = get_integrator(name, "classical").name
        if isinstance(refinements, numbers.Integral):
            refinements = (refinements,)
        checked[key] = sorted({check_count(r, f"classical[{name!r}]") for r in refinements})
    # The plain steps each hybrid corrects, for c_net / c_step.
    for solver, m in solvers.values():
        name = _integrator_name(solver)
        if name is not None:
            checked[name] = sorted({*checked.get(name, ()), m * _substeps(solver)})
    return checked


# How each backend asks make_trajectories to step: (given the device, compiled). The
# propagator's products run with torch on a GPU device, with NumPy on the CPU.
_MAKE_TRAJECTORIES_PATHS = {"numpy": (False, False), "propagator": (True, False),
                            "torch": (True, False), "torch-compile": (True, True)}


def _steps_on(backend, device):
    """Whether ``backend`` steps on ``device`` (a torch.device; else with NumPy on the CPU)."""
    return backend.startswith("torch") or (backend == "propagator" and device.type != "cpu")


def _stepper(system, integrator, backend, device):
    """``stepper(u0, dt, substeps, n_steps)``: paths ``(n, n_steps + 1, n_state)`` float64,
    ``substeps`` steps of ``dt / substeps`` per output, on ``backend``: make_trajectories' own
    paths (NumPy steps, the exact propagator, torch steps on ``device``, or its fused compiled
    torch steps there) in this process."""
    on_device, compile = _MAKE_TRAJECTORIES_PATHS[backend]
    device = device if on_device else None

    def stepper(u0, dt, substeps, n_steps):
        try:
            return make_trajectories(system, t_end=n_steps * dt, dt=dt, fine_dt=dt / substeps,
                                     method=integrator, initial_conditions=u0, n_jobs=1, device=device,
                                     compile=compile)
        except TrajectoryBlowUpError:  # an unstable step: an infinite error, not a failure
            return np.full((len(u0), n_steps + 1, u0.shape[1]), np.inf)

    return stepper


def _solve_ivp_paths(system, X, dt, tolerance):
    """scipy's adaptive DOP853, one trajectory at a time, its dense output at the times of ``X``."""
    from scipy.integrate import solve_ivp

    times = dt * np.arange(X.shape[1])
    paths = np.empty_like(X)

    def rhs(t, y):
        return system.rhs(y[None])[0]

    for i, u0 in enumerate(X[:, 0]):
        solution = solve_ivp(rhs, (0.0, times[-1]), u0, method="DOP853", t_eval=times, rtol=tolerance,
                             atol=tolerance)
        paths[i] = solution.y.T if solution.success else np.nan
    return paths


# --- The result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedUp:
    """An equal-accuracy speed-up: classical seconds at the hybrid's error over the hybrid's.

    ``float(speedup)`` is ``value``.

    Attributes
    ----------
    value : float
        The speed-up, NaN when the hybrid's error lies outside the range measured on the
        classical curve (see ``status``).
    hybrid : str
        Label of the hybrid solver.
    against : str
        The classical curve (method name) it was measured against: the one needing the
        least time, when several were asked for.
    status : {"ok", "below range", "above range", "no curve"}
        "below range": the hybrid is more accurate than any step measured on the curve
        (``bound`` is then a lower bound: the curve's most accurate point is still
        less accurate); "above range": the curve's cheapest step is already more
        accurate (``bound`` is an upper bound: a coarser step might be cheaper still).
    bound : float
        Where ``value`` is NaN, the bound the measured points do give (NaN for "no curve").
    error : float
        The hybrid's error.
    hybrid_seconds, classical_seconds : float
        The hybrid's time and the interpolated classical time (NaN when out of range).
    message : str
        One sentence saying what was compared, or why there is no value.
    """

    value: float
    hybrid: str
    against: str
    status: str
    bound: float
    error: float
    hybrid_seconds: float
    classical_seconds: float
    message: str

    def __float__(self):
        return float(self.value)


@dataclass
class WorkPrecision:
    """Measured error and time of hybrid and classical methods on the same trajectories.

    Made by :func:`work_precision`, or from rows directly (to analyse stored figures).

    Parameters
    ----------
    rows : list of dict
        One per method and step, with keys ``method``, ``family`` ("hybrid", "classical"
        or "reference"), ``step`` (NaN for the adaptive reference), ``seconds`` and
        ``error`` (trajectory MSE); hybrid rows also ``base``, the name of their base
        integrator, and optionally ``substeps``, its steps per hybrid step (default 1).
        Classical rows of the same ``method`` form one curve.
    dt, n_trajectories, n_times, system, backend : optional
        What was measured, for the record.

    Examples
    --------
    Classical rows on ``error = 1e-2 / seconds**4``; a hybrid at error 1e-10 in 0.01 s.
    The classical curve needs ``(1e-2 / 1e-10) ** (1 / 4) = 100`` s there:

    >>> from sklearn_attns.work_precision import WorkPrecision
    >>> rows = [dict(method="rk4", family="classical", step=0.1 / k, seconds=float(k), error=1e-2 / k**4)
    ...         for k in (1, 10, 1000)]
    >>> rows.append(dict(method="AttNS", family="hybrid", step=0.1, base="rk4", seconds=0.01, error=1e-10))
    >>> speedup = WorkPrecision(rows).speedup("AttNS")
    >>> round(float(speedup), 6), speedup.status
    (10000.0, 'ok')
    >>> round(WorkPrecision(rows).cost_model("AttNS")["k"], 6)  # dt / step of rk4 at the same error
    100.0
    """

    rows: list
    dt: float = None
    n_trajectories: int = None
    n_times: int = None
    system: str = None
    backend: str = None

    def __post_init__(self):
        required = ("method", "family", "step", "seconds", "error")
        for i, row in enumerate(self.rows):
            missing = [key for key in required if key not in row]
            if missing:
                raise ValueError(f"rows[{i}] lacks {missing}; each row needs {list(required)}.")
            if row["family"] not in FAMILIES:
                raise ValueError(f"rows[{i}]['family'] must be one of {list(FAMILIES)}, "
                                 f"got {row['family']!r}.")

    # -- access -------------------------------------------------------------------------------

    def _hybrid(self, label):
        for row in self.rows:
            if row["family"] == "hybrid" and row["method"] == label:
                return row
        hybrids = [row["method"] for row in self.rows if row["family"] == "hybrid"]
        raise ValueError(f"no hybrid solver labelled {label!r}; measured: {hybrids}.")

    def curves(self):
        """Classical rows by method, each sorted by step (coarsest first)."""
        curves = {}
        for row in self.rows:
            if row["family"] == "classical":
                curves.setdefault(row["method"], []).append(row)
        return {name: sorted(rows, key=lambda r: -r["step"]) for name, rows in curves.items()}

    # -- the comparisons ----------------------------------------------------------------------

    def speedup(self, label, against="base"):
        """Equal-accuracy speed-up of the hybrid ``label`` over a classical curve.

        The classical time at the hybrid's error is interpolated linearly in
        ``(log error, log seconds)`` on the curve's lower envelope (for each error, the
        least time measured to reach it), never extrapolated.

        Parameters
        ----------
        label : str
            The hybrid solver.
        against : str, default="base"
            "base": the hybrid's own base integrator at finer steps (the paper's
            comparison; the fastest of its curves when several backends were measured);
            "best": the classical fixed-step curve needing the least time at that error;
            or a curve name such as "dop853". Where a curve's cheapest step is already
            more accurate than the hybrid and faster than the others need, the result is
            that curve's upper bound (status "above range").

        Returns
        -------
        SpeedUp
        """
        return self._speedup(self._hybrid(label), against)

    def free_network_speedup(self, label, against="best"):
        """The speed-up ``label`` would have at its error if its network cost nothing.

        :meth:`speedup` with the hybrid's time replaced by that of its plain base steps
        (the same number of steps of the same size on the same batch, on the fastest
        classical path measured), or kept where it is less. This is the most a cheaper
        network of the same accuracy can reach on the paths measured; where it falls short
        of a target, a more accurate network is needed (or base steps that cost less: a
        faster path, another batch size or step).

        Parameters
        ----------
        label : str
            The hybrid solver.
        against : str, default="best"
            As in :meth:`speedup`.

        Returns
        -------
        SpeedUp
            Labelled ``"<label> (free network)"``; NaN with status "no curve" when the plain
            base step was not measured at the hybrid's step.

        Examples
        --------
        RK4 at the hybrid's step 0.1 takes 0.01 s; DOP853 reaches the hybrid's error 1e-10
        in 0.03 s. However cheap its network, this hybrid is at most 3x faster than DOP853:

        >>> from sklearn_attns.work_precision import WorkPrecision
        >>> rows = [dict(method="rk4", family="classical", step=0.1, seconds=0.01, error=1e-4),
        ...         dict(method="dop853", family="classical", step=0.1, seconds=0.03, error=1e-10),
        ...         dict(method="AttNS", family="hybrid", step=0.1, base="rk4", seconds=0.05, error=1e-10)]
        >>> result = WorkPrecision(rows)
        >>> best, free = result.speedup("AttNS", "best"), result.free_network_speedup("AttNS")
        >>> round(best.value, 6), round(free.value, 6)
        (0.6, 3.0)
        """
        hybrid = self._hybrid(label)
        free = dict(hybrid, method=f"{label} (free network)", seconds=self._free_seconds(hybrid))
        if math.isnan(free["seconds"]):
            return SpeedUp(float("nan"), free["method"], against, "no curve", float("nan"), hybrid["error"],
                           float("nan"), float("nan"),
                           f"no plain {hybrid['base']} step of {_base_step(hybrid):.4g} was measured.")
        return self._speedup(free, against)

    def error_for_speedup(self, label, speedup):
        """The error the hybrid ``label`` would need, with a network that cost nothing, to be
        ``speedup`` times faster than the best classical fixed-step curve.

        The time it would have is that of its plain base steps (see
        :meth:`free_network_speedup`); the answer is the least error any classical curve
        reaches in ``speedup`` times that time (against the best curve only), interpolated
        on the curves' lower envelopes in log-log, never extrapolated. Compare it with the
        errors a network reaches: a network that costs something needs an error lower still.

        Parameters
        ----------
        label : str
            The hybrid solver.
        speedup : float
            The speed-up asked for, positive.

        Returns
        -------
        error : float
            NaN when a curve reaching below its measured range or nothing measured in that
            time leaves it unknown (see ``status``).
        status : {"ok", "below range", "above range", "no curve"}
            "below range": a curve's most accurate point takes less time and is more
            accurate than what the other curves reach, so the error needed is below that
            point's (``bound``); "above range": no classical step measured finishes in that
            time; "no curve": the plain base step was not measured.
        bound : float
            With "below range", an upper bound on the error needed; NaN otherwise.

        Examples
        --------
        Plain RK4 at the hybrid's step 0.1 takes 0.01 s; DOP853 reaches 1e-10 in 0.03 s and
        1e-14 in 0.06 s. In 4.5 times RK4's time, 0.045 s, DOP853 reaches 4.6e-13 (halfway
        between its points in log-log), RK4 something below its 1e-8 at 0.04 s:

        >>> from sklearn_attns.work_precision import WorkPrecision
        >>> rows = [dict(method="rk4", family="classical", step=0.1, seconds=0.01, error=1e-4),
        ...         dict(method="rk4", family="classical", step=0.05, seconds=0.02, error=1e-6),
        ...         dict(method="rk4", family="classical", step=0.025, seconds=0.04, error=1e-8),
        ...         dict(method="dop853", family="classical", step=0.1, seconds=0.03, error=1e-10),
        ...         dict(method="dop853", family="classical", step=0.05, seconds=0.06, error=1e-14),
        ...         dict(method="AttNS", family="hybrid", step=0.1, base="rk4", seconds=0.05, error=1e-9)]
        >>> error, status, _ = WorkPrecision(rows).error_for_speedup("AttNS", 4.5)
        >>> status, f"{error:.1e}"
        ('ok', '4.6e-13')
        """
        speedup = check_positive(speedup, "speedup")
        budget = speedup * self._free_seconds(self._hybrid(label))
        if math.isnan(budget):
            return float("nan"), "no curve", float("nan")
        found = [_error_at_cost([(r["error"], r["seconds"]) for r in curve], budget)
                 for curve in self.curves().values()]
        reached = [error for error, status, _ in found if status == "ok"]
        below = [bound for _, status, bound in found if status == "below range"]
        # A curve whose most accurate point takes less time reaches an unknown error below
        # it; it decides only if that point is already below what the others reach (as a
        # curve below range is passed over in speedup when another covers the error).
        if below and min(below) <= min(reached, default=math.inf):
            return float("nan"), "below range", min(below)
        if reached:
            return min(reached), "ok", float("nan")
        status = "above range" if any(status == "above range" for _, status, _ in found) else "no curve"
        return float("nan"), status, float("nan")

    def _plain_seconds(self, hybrid):
        """The least time measured for the hybrid's plain base steps (NaN: not measured)."""
        curves = self.curves()
        plain = [r["seconds"] for name in _base_curves(hybrid, curves) for r in curves.get(name, [])
                 if math.isclose(r["step"], _base_step(hybrid), rel_tol=1e-9) and _positive(r["seconds"])]
        return min(plain) if plain else float("nan")

    def _free_seconds(self, hybrid):
        """The hybrid's time were its network free: its plain base steps' time, or its own
        where that is less (a compiled hybrid can step faster than the classical path)."""
        plain = self._plain_seconds(hybrid)
        return plain if math.isnan(plain) else min(plain, hybrid["seconds"])

    def _speedup(self, hybrid, against):
        label = hybrid["method"]
        curves = self.curves()
        if against == "base":
            names = _base_curves(hybrid, curves)
        elif against == "best":
            names = sorted(curves)
        else:
            names = [against]
        results = [self._speedup_on(hybrid, name, curves.get(name, [])) for name in names]
        if len(results) == 1:
            return results[0]
        finite = [r for r in results if r.status == "ok"]
        # A curve whose cheapest step is already more accurate bounds the time needed from
        # above (a measurement, not an extrapolation): it may undercut the interpolated ones.
        above = [r for r in results if r.status == "above range"]
        fastest = min(finite, key=lambda r: r.value) if finite else None
        if above and (fastest is None or min(r.bound for r in above) < fastest.value):
            return min(above, key=lambda r: r.bound)
        if fastest is not None:
            return fastest
        # No curve covers the error: the weakest bound over the curves is what holds.
        against = "best" if against == "best" else ", ".join(names)
        statuses = {r.status for r in results}
        status = statuses.pop() if len(statuses) == 1 else "mixed"
        # Each curve's lower bound holds for it; the fastest curve's speed-up is at least the least.
        bounds = [r.bound for r in results if not math.isnan(r.bound)]
        bound = min(bounds) if bounds else float("nan")
        message = "; ".join(f"{r.against}: {r.message}" for r in results)
        return SpeedUp(float("nan"), label, against, status, bound, hybrid["error"], hybrid["seconds"],
                       float("nan"), message)

    def _speedup_on(self, hybrid, name, curve):
        points = [(r["error"], r["seconds"]) for r in curve]
        seconds, status, bound = _cost_at_error(points, hybrid["error"])
        t = hybrid["seconds"]
        label, error = hybrid["method"], hybrid["error"]
        if status == "ok":
            message = f"{name} needs {seconds:.3g} s for {label}'s error {error:.3g} ({label}: {t:.3g} s)."
        elif status == "below range":
            message = (f"{label}'s error {error:.3g} is below every error measured on {name} (its least: "
                       f"{min(e for e, _ in points):.3g}); the speed-up is at least {bound / t:.3g}.")
        elif status == "above range":
            message = (f"{label}'s error {error:.3g} is above every error measured on {name}: its cheapest "
                       f"step is already more accurate; the speed-up is at most {bound / t:.3g}.")
        elif math.isnan(error):
            message = f"{label}'s error is NaN: nothing to compare."
        else:
            message = f"no finite classical error measured on {name!r}."
        value = seconds / t if status == "ok" else float("nan")
        return SpeedUp(value, label, name, status, bound / t, error, t, seconds, message)

    def cost_model(self, label):
        """The cost model of the hybrid ``label`` against its base integrator.

        Returns
        -------
        dict
            ``c_net_over_c_step``: the hybrid's extra cost per step, ``t_hybrid / t_plain - 1``,
            with ``t_plain`` the time of the same plain base steps on the same batch
            (measured in the same rounds; negative where the hybrid's step, compiled, runs
            faster than the classical path; with ``substeps``, all of a hybrid step's).
            ``k``: how many steps of the base integrator one of the hybrid's base steps
            replaces at equal error (its step, over ``substeps``, over the base step
            interpolated at its error, in log-log; NaN out of range). ``bound``:
            ``k / (1 + c_net_over_c_step)``, the speed-up over the base integrator the model
            predicts if classical time is proportional to the number of steps.
            ``speedup``: the measured one, for comparison.
        """
        hybrid = self._hybrid(label)
        curves = self.curves()
        names = _base_curves(hybrid, curves)
        curve = [row for name in names for row in curves.get(name, [])]
        ratio = hybrid["seconds"] / self._plain_seconds(hybrid) - 1
        # Steps per unit time play the role of seconds: k is their ratio at equal error.
        steps = [(r["error"], 1.0 / r["step"]) for r in curve]
        steps_needed, status, _ = _cost_at_error(steps, hybrid["error"])
        k = steps_needed * _base_step(hybrid) if status == "ok" else float("nan")
        return {"base": ", ".join(names), "c_net_over_c_step": ratio, "k": k, "bound": k / (1 + ratio),
                "speedup": float(self.speedup(label, "base"))}

    # -- reports ------------------------------------------------------------------------------

    def table(self):
        """The rows as a Markdown table (hybrids, then classical curves, then the reference)."""
        lines = ["| family | method | step | seconds | error (MSE) | first call, s |",
                 "|---|---|---|---|---|---|"]
        order = {family: i for i, family in enumerate(FAMILIES)}
        for row in sorted(self.rows, key=lambda r: (order[r["family"]], r["method"], -_nan_to(r["step"], 0))):
            step = f"{row['step']:.4g}"
            if row["family"] == "reference" and "tolerance" in row:
                step = f"rtol {row['tolerance']:.0e}"
            first = row.get("first_call_seconds")
            first = "" if first is None else f"{first:.3g}"
            lines.append(f"| {row['family']} | {row['method']} | {step} | {row['seconds']:.4g} | "
                         f"{row['error']:.3e} | {first} |")
        return "\n".join(lines)

    def summary(self):
        """One paragraph per hybrid: both speed-ups and the cost model, as text."""
        lines = []
        for row in self.rows:
            if row["family"] != "hybrid":
                continue
            label = row["method"]
            base, best = self.speedup(label, "base"), self.speedup(label, "best")
            model = self.cost_model(label)
            lines.append(f"{label}: error {row['error']:.3e} in {row['seconds']:.4g} s")
            free = self.free_network_speedup(label, "best")
            for name, s in ((f"vs {base.against} at finer steps", base),
                            ("vs best classical fixed-step", best),
                            ("vs best, were the network free", free)):
                shown = f"{s.value:.3g}x (against {s.against})" if s.status == "ok" else (
                    f"n/a ({s.status}; bound {s.bound:.3g}x)")
                lines.append(f"  speed-up {name}: {shown}")
            lines.append(f"  c_net/c_step = {model['c_net_over_c_step']:.3g}, k = {model['k']:.3g}, "
                         f"k / (1 + c_net/c_step) = {model['bound']:.3g}")
        return "\n".join(lines)

    def plot(self, ax=None, max_error=None, free_network=False):
        """Error (y) against seconds (x), log-log: a curve per classical method and for
        the adaptive reference, a marker per hybrid solver.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; None makes a new figure (``matplotlib.figure.Figure``, no
            interactive backend).
        max_error : float, default=None
            Top of the error axis: errors above it (a method that lost the solution, such
            as a step past its stability limit) are drawn at it, as upward triangles, so
            that they do not squeeze the other points. None: every error where it is.
        free_network : bool, default=False
            Also draw each hybrid where it would be were its network free (hollow, at the
            time of its plain base steps, see :meth:`free_network_speedup`), joined to it
            by a dotted line: how far that point stays from the best curve is what no
            cheaper network can close.

        Returns
        -------
        ax : matplotlib Axes
        """
        top = math.inf if max_error is None else check_positive(max_error, "max_error")
        if ax is None:
            try:
                from matplotlib.figure import Figure
            except ImportError as exc:
                raise ImportError("WorkPrecision.plot needs matplotlib, the optional 'plot' dependency: "
                                  "pip install 'sklearn-attns[plot]' (or pip install matplotlib)") from exc
            ax = Figure(figsize=(6.4, 4.6)).add_subplot()

        def draw(rows, style, label, **kwargs):
            rows = [r for r in rows if _positive(r["error"])]
            seconds, errors = [r["seconds"] for r in rows], [min(r["error"], top) for r in rows]
            line, = ax.plot(seconds, errors, style, label=label, **kwargs)
            over = [(t, e) for t, e, r in zip(seconds, errors, rows) if r["error"] > top]
            if over:
                ax.plot(*zip(*over), "^", color=line.get_color(), markersize=9, markeredgecolor="k")

        curves = dict(self.curves())
        for i, (name, rows) in enumerate(sorted(curves.items())):
            draw(rows, "o-", name, color=f"C{i}")
        reference = sorted((r for r in self.rows if r["family"] == "reference"), key=lambda r: r["seconds"])
        if any(_positive(r["error"]) for r in reference):
            draw(reference, "s--", f"{reference[0]['method']} (adaptive)", color="0.5")
        markers = "*DP^vX"
        hybrids = [r for r in self.rows if r["family"] == "hybrid" and _positive(r["error"])]
        free_label = "hollow: were the network free"
        for i, row in enumerate(hybrids):
            color, marker = f"C{(len(curves) + i) % 10}", markers[i % len(markers)]
            draw([row], marker, row["method"], markersize=11, color=color, markeredgecolor="k")
            free = self._free_seconds(row) if free_network else math.nan
            if _positive(free) and free < row["seconds"]:
                error = min(row["error"], top)
                ax.plot([free, row["seconds"]], [error, error], ":", color=color, linewidth=1)
                ax.plot([free], [error], marker, markersize=11, markerfacecolor="none", markeredgecolor=color,
                        label=free_label)
                free_label = "_nolegend_"  # one legend entry says what the hollow markers are
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("seconds")
        ax.set_ylabel("trajectory MSE" + (f" (above {top:g}: drawn at it, ^)" if math.isfinite(top) else ""))
        title = "work-precision" + (f": {self.system}" if self.system else "")
        if self.n_trajectories:
            title += f", {self.n_trajectories} trajectories"
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
        return ax


def _base_curves(hybrid, curves):
    """Names of the curves of the hybrid's base integrator (one per backend measured)."""
    base = hybrid.get("base")
    if base is None:
        raise ValueError(f"hybrid row {hybrid['method']!r} names no base integrator ('base').")
    names = [name for name, rows in curves.items() if rows[0].get("integrator", name.split(" ")[0]) == base]
    return names or [base]


def _positive(value):
    return math.isfinite(value) and value > 0


def _nan_to(value, default):
    return default if math.isnan(value) else value


def _cost_at_error(points, error):
    """Interpolated cost at ``error`` on measured ``(error, cost)`` points.

    Returns ``(cost, status, bound)``: the lower envelope (for each error, the least cost
    measured to reach it) interpolated linearly in log-log, or NaN with status "below
    range" / "above range" and the cost of the nearest envelope point as a bound, or
    "no curve" when no point has a finite positive error or ``error`` is NaN.
    """
    points, envelope = _envelope(points)
    if not points or math.isnan(error):
        return float("nan"), "no curve", float("nan")
    if error < envelope[0][0]:
        return float("nan"), "below range", envelope[0][1]
    if error > points[-1][0]:
        return float("nan"), "above range", envelope[-1][1]
    if error >= envelope[-1][0]:
        return envelope[-1][1], "ok", float("nan")  # measured: the cheapest point reaches it
    log_e = np.log([e for e, _ in envelope])
    log_c = np.log([c for _, c in envelope])
    return float(np.exp(np.interp(math.log(error), log_e, log_c))), "ok", float("nan")


def _envelope(points):
    """The valid ``(error, cost)`` points by increasing error, and their lower envelope: by
    increasing error, the points cheaper than every more accurate one."""
    points = sorted((e, c) for e, c in points if _positive(e) and _positive(c))
    envelope = []
    for e, c in points:
        if not envelope or c < envelope[-1][1]:
            envelope.append((e, c))
    return points, envelope


def _error_at_cost(points, cost):
    """The inverse of :func:`_cost_at_error`: the error the envelope reaches at ``cost``.

    Returns ``(error, status, bound)``: "ok" (interpolated in log-log), "below range" (the
    envelope's most accurate point costs less: the error reached is below it, ``bound``
    is its error, an upper bound), "above range" (every point costs more: nothing is
    known) or "no curve".
    """
    points, envelope = _envelope(points)
    if not points:
        return float("nan"), "no curve", float("nan")
    if cost > envelope[0][1]:
        return float("nan"), "below range", envelope[0][0]
    if cost < envelope[-1][1]:
        return float("nan"), "above range", float("nan")
    # Costs fall as errors grow along the envelope: interpolate on the reversed arrays.
    log_e = np.log([e for e, _ in envelope])[::-1]
    log_c = np.log([c for _, c in envelope])[::-1]
    return float(np.exp(np.interp(math.log(cost), log_c, log_e))), "ok", float("nan")


# --- Cost-aware model selection -----------------------------------------------------------------


def neg_trajectory_mse(estimator, X, y=None):
    """Scorer: the negative trajectory MSE of ``estimator.score(X)`` (greater is better)."""
    return estimator.score(X)


class PredictSeconds:
    """Scorer: minus the seconds ``predict`` takes on a fold's trajectories.

    The rollouts start at ``X[:, 0]`` and cover the fold's time span, as ``score`` does.
    One untimed call comes first (it pays one-time costs such as ``compile=True``), then
    the fastest of ``repeats`` timed calls counts.

    Parameters
    ----------
    repeats : int, default=1
        Timed calls.
    """

    def __init__(self, repeats=1):
        self.repeats = check_count(repeats, "repeats")

    def __call__(self, estimator, X, y=None):
        X = check_trajectories(X, name="X")
        stride = getattr(estimator, "stride_", 1)
        n_steps = (X.shape[1] - 1) // stride
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # blow-up warnings belong to the accuracy score
            estimator.predict(X[:, 0], n_steps=n_steps)
            (best,) = fastest_times([lambda: estimator.predict(X[:, 0], n_steps=n_steps)], self.repeats)
        return -best

    def __repr__(self):
        return f"PredictSeconds(repeats={self.repeats})"


def make_cost_aware_scoring(repeats=1):
    """A multi-metric ``scoring`` for :class:`~sklearn.model_selection.GridSearchCV`.

    Parameters
    ----------
    repeats : int, default=1
        Timed ``predict`` calls per fold (see :class:`PredictSeconds`).

    Returns
    -------
    dict
        ``{"mse": neg_trajectory_mse, "seconds": PredictSeconds(repeats)}``: the negative
        trajectory MSE and minus the measured predict time, both greater-is-better. Pair
        it with ``refit=cheapest_within(tolerance)``.

    Examples
    --------
    >>> import warnings
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_attns import HybridSolverRegressor, make_trajectories
    >>> from sklearn_attns.systems import SpringMass
    >>> from sklearn_attns.work_precision import cheapest_within, make_cost_aware_scoring
    >>> system = SpringMass(n_masses=2)
    >>> X = make_trajectories(system, 12, t_end=1.0, dt=0.1, random_state=0)
    >>> search = GridSearchCV(HybridSolverRegressor(system=system, dt=0.1, correction="none", device="cpu"),
    ...                       {"integrator": ["euler", "rk4"]}, cv=2,
    ...                       scoring=make_cost_aware_scoring(), refit=cheapest_within(1e-3))
    >>> search.fit(X).best_params_  # Euler's MSE is about 0.1 here: only RK4 meets 1e-3
    {'integrator': 'rk4'}
    """
    return {"mse": neg_trajectory_mse, "seconds": PredictSeconds(repeats)}


class _CheapestWithin:
    def __init__(self, tolerance, mse, seconds):
        self.tolerance, self.mse, self.seconds = tolerance, mse, seconds

    def __call__(self, cv_results):
        mse = -np.asarray(cv_results[f"mean_test_{self.mse}"], dtype=float)
        seconds = -np.asarray(cv_results[f"mean_test_{self.seconds}"], dtype=float)
        within = np.flatnonzero(mse <= self.tolerance)
        if len(within) == 0:
            best = int(np.nanargmin(mse))
            warnings.warn(f"no candidate reaches a mean test MSE of {self.tolerance:g} (the best: "
                          f"{mse[best]:.3g}); refitting the most accurate one.", UserWarning, stacklevel=2)
            return best
        return int(within[np.argmin(seconds[within])])

    def __repr__(self):
        return f"cheapest_within({self.tolerance!r}, mse={self.mse!r}, seconds={self.seconds!r})"


def cheapest_within(tolerance, mse="mse", seconds="seconds"):
    """A ``refit`` callable: the fastest candidate whose mean test MSE is at most ``tolerance``.

    For ``GridSearchCV(..., scoring=make_cost_aware_scoring(), refit=cheapest_within(tol))``.
    Cost is measured (the mean predict time on the test folds), not counted in stages or
    parameters. Without any candidate within ``tolerance`` it warns and picks the most
    accurate one.

    Parameters
    ----------
    tolerance : float
        Largest acceptable mean test MSE.
    mse, seconds : str, default="mse", "seconds"
        Names of the two scorers in ``scoring``.

    Returns
    -------
    callable
        ``refit(cv_results) -> best_index``; it pickles.

    Examples
    --------
    >>> from sklearn_attns.work_precision import cheapest_within
    >>> cv_results = {"mean_test_mse": [-1e-9, -1e-7, -1e-8], "mean_test_seconds": [-3.0, -1.0, -2.0]}
    >>> cheapest_within(1e-8)(cv_results)  # candidates 0 and 2 qualify; 2 is faster
    2
    """
    tolerance = check_positive(tolerance, "tolerance")
    for name, value in (("mse", mse), ("seconds", seconds)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be the str name of a scorer, got {value!r}.")
    return _CheapestWithin(tolerance, mse, seconds)
