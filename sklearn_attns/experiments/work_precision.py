"""Does the hybrid pay? Work-precision diagrams of the benchmark systems, trained and drawn.

For each system of ``SETTINGS``: training and test trajectories (float64, fixed-step
DOP853 at a fine step), an AttNS solver fitted at each width (float32 network; the
estimator's default training budget, or ``LONG_TRAINING`` where the setting says so), or
at each degree of a polynomial correction fitted by least squares (``POLYNOMIAL``),
then :func:`sklearn_attns.work_precision.work_precision` on the test trajectories: each
fitted solver eager and with ``compile=True``, the base integrator at finer steps and
fixed-step DOP853 (each on the NumPy stepping path and compiled with torch), and scipy's
adaptive DOP853 on 8 trajectories, all timed in one run, interleaved.
:func:`run_work_precision` writes into ``out``:

* ``work_precision.md``: the command, the machine (and its load average), a summary table
  (per solver: both equal-accuracy speed-ups, the speed-up against the best curve were its
  network free, ``k``, ``c_net/c_step`` and the cost model's ``k / (1 + c_net/c_step)``),
  then per system its settings, the full table and the summary of
  :meth:`~sklearn_attns.work_precision.WorkPrecision.summary`;
* ``work_precision_<system>.png``: the diagram (needs matplotlib);
* ``work_precision_<system>.json``: the measured rows, from which
  ``WorkPrecision(rows)`` rebuilds the result.

Its command line is ``python -m sklearn_attns work-precision``.
"""

import copy
import dataclasses
import json
import os
import platform
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import AttNSSolver, make_trajectories
from ..persistence import load_model, save_model
from ..systems import ElasticPendulum, GravitationalNBody, KLinkPendulum, SpringMass
from ..work_precision import WorkPrecision, work_precision
from .cells import LOCAL_NETWORK, PDE_SETTINGS, PDE_TRAINING, SCALES

__all__ = ["QUICK", "SETTINGS", "FittedSolverMismatch", "SystemSetting", "load_rows", "machine_line",
           "run_system", "run_work_precision", "summary_table"]


@dataclass(frozen=True)
class SystemSetting:
    """How one benchmark system is trained and measured.

    ``dt`` is the hybrid's step and the training data's spacing; the training trajectories
    have ``train_steps`` such steps. The test trajectories have ``steps`` outputs
    ``spacing`` apart (keep ``steps * spacing`` within the training horizon); each hybrid
    step takes ``substeps`` base steps (the estimator's ``substeps``); the base
    integrator steps with ``spacing / r`` for ``r`` in ``refinements``, fixed-step DOP853
    with ``spacing / r`` for ``r`` in ``dop853``, and, where the base is not RK4, RK4 with
    ``spacing / r`` for ``r`` in ``rk4`` (the best fixed-step curve is one of the two).
    ``backends``: how the classical methods step (see
    :func:`~sklearn_attns.work_precision.work_precision`). ``params`` holds further
    parameters of the solver (``module``, ``state_input``, ``max_epochs``, ...); one solver
    is fitted per width of ``widths``, or, with ``module="polynomial"``, per degree of
    ``degrees`` (see :attr:`variants`); ``why`` says why this base integrator.

    Examples
    --------
    >>> import dataclasses
    >>> from sklearn_attns.experiments.work_precision import SETTINGS
    >>> setting = SETTINGS["grayscott"]
    >>> setting.integrator, setting.dt, setting.test_spacing
    ('rk4', 0.5, 0.5)
    >>> dataclasses.replace(setting, dt=0.05).dt  # a variant, for run_system
    0.05
    """

    make: object
    integrator: str
    dt: float
    fine: float
    why: str
    substeps: int = 1
    spacing: float = None
    steps: int = 20
    train_steps: int = 20
    refinements: tuple = (1, 2, 4, 8, 16, 32)
    dop853: tuple = (1, 2, 4)
    rk4: tuple = (1, 2, 4, 8)
    backends: tuple = ("numpy", "torch-compile")
    widths: tuple = (128,)
    depth: int = 2
    degrees: tuple = (3,)
    params: dict = field(default_factory=dict)
    n_train: int = 1000
    n_test: int = 1024

    @property
    def test_spacing(self):
        return self.dt if self.spacing is None else self.spacing

    @property
    def polynomial(self):
        return self.params.get("module") == "polynomial"

    @property
    def variants(self):
        """``{name: parameters}`` of the solvers fitted: one per width (``"w64"``), or one per
        polynomial degree (``"poly3"``)."""
        if self.polynomial:
            return {f"poly{degree}": {"degree": degree} for degree in self.degrees}
        return {f"w{width}": {"width": width} for width in self.widths}

    def describe_network(self):
        if self.polynomial:
            return f"polynomial degrees {list(self.degrees)}"
        return f"depth {self.depth}, widths {list(self.widths)}"


def _grid_setting(name, why):
    """A grid system of the PDE experiment: its step, horizon, fine step and training size
    (``cells.PDE_SETTINGS``), its local network fed the slope and the state, trained as there
    (``cells.LOCAL_NETWORK``, ``cells.PDE_TRAINING``, the epochs of its ``medium`` scale)."""
    pde = PDE_SETTINGS[name]
    network = dict(LOCAL_NETWORK)
    steps = round(pde.t_end / pde.dt)
    return SystemSetting(
        lambda: copy.deepcopy(pde.system), "rk4", dt=pde.dt, fine=pde.fine_dt, steps=steps, train_steps=steps,
        refinements=(1, 2, 4, 8), dop853=(1, 2), n_train=pde.n_train, n_test=256,
        widths=(network.pop("width"),), depth=network.pop("depth"),
        params={**network, "state_input": True, "max_epochs": SCALES["medium"].max_epochs,
                **dict(PDE_TRAINING)},
        why=why)


# Training to convergence: errors of 1e-9 and below need some 30,000 optimiser steps, three
# times the estimator's "auto" budget (elastic pendulum over Heun, width 128: 2.0e-8 with
# "auto", 1.1e-9 with these), and no stop on the training loss, which ends a long cosine
# schedule while its learning rate is still high (146 of 500 epochs: 1.6e-8).
LONG_TRAINING = {"max_epochs": 500, "n_iter_no_change": 500}
DOP853_TRAINING = {"max_epochs": 2000, "n_iter_no_change": 2000}
# A polynomial in the slope and the state, fitted by least squares in float64: on the
# pendulums it predicts RK4's residual some 1e3-1e5 times more closely than the networks'
# training ends (relative test MSE 8.7e-9 at degree 3 on the 2-link pendulum), and it is
# evaluated in one fused pass inside the compiled step.
POLYNOMIAL = {"module": "polynomial", "state_input": True, "dtype": "float64"}

# One line per system: change a setting here and every report follows.
SETTINGS = {
    "elastic": SystemSetting(
        ElasticPendulum, "rk4", dt=0.2, fine=0.01, widths=(32, 128), params=LONG_TRAINING,
        why="RK4, the paper's base: the hybrid reaches 1e-10 at dt 0.2"),
    # The paper's comparison over a low-order base: Heun's MSE falls as dt^4 only, so the
    # network's error reduction buys many Heun steps (dt 0.2 is past Heun's stability here).
    "elastic_heun": SystemSetting(
        ElasticPendulum, "heun", dt=0.1, fine=0.01, spacing=0.2, train_steps=40,
        refinements=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), widths=(128, 256), params=LONG_TRAINING,
        why="Heun, the paper's improved Euler: k is large over a second-order base"),
    "klink": SystemSetting(
        lambda: KLinkPendulum(n_links=2), "rk4", dt=0.1, fine=0.005, spacing=0.2, steps=10,
        refinements=(1, 2, 4, 8, 16), widths=(64, 128), params=LONG_TRAINING,
        why="RK4, the paper's base; test outputs 0.2 apart let DOP853 take its efficient steps"),
    "klink_heun": SystemSetting(
        lambda: KLinkPendulum(n_links=2), "heun", dt=0.1, fine=0.005, spacing=0.2, steps=10,
        refinements=(1, 2, 4, 8, 16, 32, 64, 128), widths=(128, 256), params=LONG_TRAINING,
        why="Heun, as on the elastic pendulum"),
    # Over Euler (MSE falling as dt^2) the 2-link hybrid's 5e-9 is worth thousands of steps;
    # plain Euler needs 0.2/16384 for it (measured), so the refinements reach past that.
    "klink_euler": SystemSetting(
        lambda: KLinkPendulum(n_links=2), "euler", dt=0.05, fine=0.005, spacing=0.2, steps=10,
        train_steps=40, refinements=tuple(4**i for i in range(8)) + (32768,), widths=(256,),
        params=LONG_TRAINING, n_test=256, backends=("torch-compile",),
        why="Euler, the base of the paper's convergence theorem: k in the thousands (at dt 0.1 the "
            "hybrid stays at 2.8e-8)"),
    # Against the best fixed-step curve the base itself is the strongest: over DOP853 the
    # network's error reduction (5e8-2e9 in MSE on the elastic pendulum) is worth only k 3.5-3.8
    # per DOP853 step (MSE falling as dt^16). Four DOP853 steps of 0.1 per network call make
    # the network's cost small beside them (c_net/c_step 0.12-0.19 at width 64, against
    # 0.26-0.43 for one step of 0.4); the errors stay some 1e2-4e2 above float64's rounding
    # (MSE 1.2e-27). Many states, so that the rollouts' per-call costs weigh less; 2,000
    # epochs (width 128, 4 substeps: 1.3e-25).
    "elastic_dop853": SystemSetting(
        ElasticPendulum, "dop853", dt=0.4, fine=0.01, substeps=4, steps=10, train_steps=10,
        refinements=(1, 2, 4, 8, 16, 32), widths=(64, 128), params=DOP853_TRAINING, n_test=8192,
        why="DOP853 in 4 substeps, the best fixed-step curve itself: k is small, but one network call per "
            "four 12-stage steps costs little"),
    "klink_dop853": SystemSetting(
        lambda: KLinkPendulum(n_links=2), "dop853", dt=0.4, fine=0.005, steps=10, train_steps=10,
        refinements=(1, 2, 4, 8), widths=(64, 128), params=DOP853_TRAINING, n_test=8192,
        why="DOP853, as on the elastic pendulum; one step per network call (substeps leave k per DOP853 "
            "step at 1.7-2.0 here, measured)"),
    # One correction per two RK4 steps of 0.4 (dt 0.8): half the correction's cost per base
    # step of one per step, and the error RK4 makes over 0.8 is still smooth enough for a
    # polynomial of degree 3-4. Test outputs 0.8 apart, so that DOP853 may take steps of 0.4.
    # RK4's refinements reach the polynomials' errors (1e-15 on the 2-link pendulum, 1e-19 to
    # 1e-22 on the elastic one, where DOP853 too needs steps of 0.025).
    "klink_poly": SystemSetting(
        lambda: KLinkPendulum(n_links=2), "rk4", dt=0.8, fine=0.005, substeps=2, steps=5, train_steps=5,
        refinements=(2, 4, 8, 16, 32, 64, 128), dop853=(2, 4, 8, 16), params=POLYNOMIAL, degrees=(3, 4),
        n_test=8192,
        why="RK4 in 2 substeps of 0.4, corrected once per 0.8 by a least-squares polynomial: accurate "
            "enough that k is large, and cheap beside two RK4 steps"),
    "elastic_poly": SystemSetting(
        ElasticPendulum, "rk4", dt=0.8, fine=0.01, substeps=2, steps=5, train_steps=5,
        refinements=(2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), dop853=(2, 4, 8, 16, 32), params=POLYNOMIAL,
        degrees=(3, 4), n_test=8192, why="RK4 in 2 substeps, as on the 2-link pendulum"),
    "chain": SystemSetting(
        lambda: SpringMass(n_masses=20), "rk4", dt=0.2, fine=0.002, widths=(64,),
        why="RK4, the paper's base (linear: the exact propagator beats any stepping method)"),
    # The network divides the plain step's MSE by some 60 (200 trajectories, dt 0.25): k ~ 19
    # over Euler, whose MSE falls as dt^2, but k ~ 1.6 over Heun (dt^4) and ~1.2 over RK4.
    # Test outputs 0.5 apart, so that RK4 may take steps of 0.5. The NumPy path (a right-hand
    # side of 256 states: 50 ms) is 4-11x slower than the compiled one and is left out.
    "nbody": SystemSetting(
        lambda: GravitationalNBody(n_bodies=16), "euler", dt=0.25, fine=0.05, spacing=0.5, steps=10,
        refinements=(1, 2, 4, 8, 16, 32, 64, 128), dop853=(1, 2), widths=(32, 64), n_train=1000, n_test=256,
        backends=("torch-compile",),
        why="Euler: a costly rhs makes c_net/c_step small, so the speed-up is about k, and k is large only "
            "over a low-order base (Heun and RK4 measured: k 1.6 and 1.2)"),
    "burgers": _grid_setting(
        "burgers",
        why="RK4: 0.08x its base, at most 0.06x the best fixed-step curve with Euler (measured: k 30 over "
            "Euler but c_net/c_step 29, 0.78x Euler); the network costs some 27 RK4 stencil steps"),
    # Gray-Scott's RK4 error is the decay of its initial noise in the first steps (see the
    # local-correction benchmark); the stencil is cheap, as on Burgers.
    "grayscott": _grid_setting(
        "grayscott", why="RK4, as on Burgers (a cheap stencil: no base order pays for the network)"),
}

# The benchmark systems' states are of order 1: an MSE above this is a lost solution (a step
# past its stability limit), drawn at the top of the diagrams rather than stretching them.
PLOT_MAX_ERROR = 1e3

# --quick: a smoke run of seconds per system (tiny data and networks, no compilation).
QUICK = {"n_train": 8, "n_test": 8, "widths": (8,), "max_epochs": 2, "steps": 4, "repeats": 1,
         "reference_tolerances": (1e-6,), "n_reference": 2, "backends": ("numpy",), "refinements": 3,
         "dop853": 1}


def machine_line(threads, device="cpu"):
    """CPU model, cores, load average, torch and Python versions, and the GPU of a CUDA
    ``device``: what timings depend on.

    Examples
    --------
    >>> from sklearn_attns.experiments.work_precision import machine_line
    >>> "1 torch thread(s)" in machine_line(1)
    True
    """
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line for line in out.splitlines() if line.startswith("Model name"))
        model = model.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError, StopIteration):  # no lscpu: what Python knows
        model = platform.processor() or platform.machine()
    gpu = ""
    if torch.device(device).type == "cuda":
        gpu = f"; GPU: {torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    return (f"{model}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the start: shared "
            f"with other work when above 0), torch {torch.__version__}, {threads} torch thread(s), "
            f"Python {platform.python_version()}{gpu}")


def _resolved(setting, quick, overrides):
    """The setting with the command's overrides (None: keep) and, with ``quick``, the smoke sizes."""
    changes = {key: value for key, value in overrides.items() if value is not None}
    if "dt" in changes and setting.spacing is None:
        changes.setdefault("spacing", setting.dt)  # the test outputs stay where they were
    if quick:
        changes.setdefault("degrees", setting.degrees[:1])
        changes.update(n_train=QUICK["n_train"], n_test=QUICK["n_test"], widths=QUICK["widths"],
                       steps=min(setting.steps, QUICK["steps"]), train_steps=min(setting.train_steps, 4),
                       refinements=setting.refinements[:QUICK["refinements"]],
                       dop853=setting.dop853[:QUICK["dop853"]],
                       rk4=setting.rk4[:QUICK["refinements"]])
    new_base = "integrator" in changes and changes["integrator"] != setting.integrator
    if new_base and "refinements" not in changes:
        changes["refinements"] = tuple(2**i for i in range(_FINEST[changes["integrator"]].bit_length()))
        if quick:
            changes["refinements"] = changes["refinements"][:QUICK["refinements"]]
    return dataclasses.replace(setting, **changes)


# Finest refinement of a base integrator other than the setting's own: low orders need far
# finer steps to reach a hybrid's error.
_FINEST = {"euler": 4096, "heun": 256, "improved_euler": 256, "rk3": 64, "rk4": 32, "dop853": 8}


def run_system(name, setting, *, device="cpu", max_epochs="auto", repeats=3, n_jobs=1, quick=False,
               models=None, fitted=None, say=print):
    """Train and measure one system (a :class:`SystemSetting`).

    ``device`` is where the networks run and the classical torch steps step (on a GPU
    every classical method steps there, compiled). Each fitted solver is saved (by
    :func:`~sklearn_attns.persistence.save_model`) as ``models/<name>_<variant>.npz`` (a
    key of :attr:`SystemSetting.variants`: ``w64``, ``poly3``) when ``models`` is a
    folder; a file of that name in ``fitted`` is loaded instead of fitting (on ``device``),
    to measure solvers fitted elsewhere (on a CPU, say) on this machine.

    Returns
    -------
    result : WorkPrecision
    settings : str
        One line: the hybrid, the data and why this base.
    timings : str
        Lines: data, fits, measurement.
    """
    system = setting.make()
    spacing = setting.test_spacing
    start = time.perf_counter()
    variants = setting.variants
    stored = {key: Path(fitted) / f"{name}_{key}.npz" for key in variants} if fitted else {}
    stored = {key: path for key, path in stored.items() if path.is_file()}
    X_test = make_trajectories(system, setting.n_test, t_end=setting.steps * spacing, dt=spacing,
                               fine_dt=setting.fine, method="dop853", random_state=1, n_jobs=n_jobs)
    if len(stored) < len(variants):
        X_train = make_trajectories(system, setting.n_train, t_end=setting.train_steps * setting.dt,
                                    dt=setting.dt, fine_dt=setting.fine, method="dop853", random_state=0,
                                    n_jobs=n_jobs)
    log = [f"data (DOP853, fine step {setting.fine:g}): {time.perf_counter() - start:.1f} s"]
    say(log[-1])
    solvers = {}
    for key, variant in variants.items():
        start = time.perf_counter()
        if key in stored:
            solver = _load_fitted(stored[key], setting, variant, device)
            log.append(f"{key}: loaded from {stored[key]} ({solver.n_iter_} epochs, training loss "
                       f"{solver.loss_curve_[-1]:.3g})")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                params = {"max_epochs": max_epochs, **setting.params}
                if quick or max_epochs != "auto":  # the command's epochs win over the setting's
                    params["max_epochs"] = QUICK["max_epochs"] if quick else max_epochs
                solver = AttNSSolver(system=system, dt=setting.dt, integrator=setting.integrator,
                                     substeps=setting.substeps, depth=setting.depth, device=device,
                                     random_state=0, **variant, **params)
                solver.fit(X_train)
            log.append(f"fit {key}: {time.perf_counter() - start:.1f} s, {solver.n_iter_} epochs, "
                       f"training loss {solver.loss_curve_[-1]:.3g}")
            if models is not None:
                Path(models).mkdir(parents=True, exist_ok=True)
                save_model(solver, Path(models) / f"{name}_{key}.npz")
        say(log[-1])
        solvers[f"AttNS {key}"] = solver
        if not quick:
            solvers[f"AttNS {key} compiled"] = copy.deepcopy(solver).set_params(compile=True)
    start = time.perf_counter()
    classical = {"rk4": setting.rk4, "dop853": setting.dop853}
    classical[setting.integrator] = setting.refinements  # RK4's own refinements where it is the base
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = work_precision(
            X_test, spacing, solvers, classical=classical, device=device,
            backend=QUICK["backends"] if quick else _backends(setting, device),
            repeats=QUICK["repeats"] if quick else repeats,
            reference_tolerances=QUICK["reference_tolerances"] if quick else (1e-6, 1e-8, 1e-10),
            n_reference=QUICK["n_reference"] if quick else 8)
    log.append(f"work_precision: {time.perf_counter() - start:.0f} s (first calls compile; load average now "
               f"{os.getloadavg()[0]:.1f})")
    say(log[-1])
    network = "".join(f", {key}={value!r}" for key, value in setting.params.items())
    settings = (f"hybrid: AttNS + {setting.integrator}, dt {setting.dt:g}{_in_substeps(setting.substeps)}, "
                f"{setting.describe_network()}{network}, {setting.params.get('dtype', 'float32')} network; "
                f"{setting.n_train} training trajectories "
                f"of {setting.train_steps} steps; test: {setting.n_test} trajectories of {setting.steps} "
                f"outputs {spacing:g} apart; base: {setting.why}")
    return result, settings, "\n".join(log)


def _backends(setting, device):
    """The setting's classical paths; on a GPU its compiled torch steps there, the classical
    path that a GPU user would run (NumPy's steps stay on one CPU core)."""
    return setting.backends if torch.device(device).type == "cpu" else ("torch-compile",)


class FittedSolverMismatch(ValueError):
    """A saved solver (``--fitted``) was fitted for another setting than the one it would be measured in."""


def _load_fitted(path, setting, variant, device):
    """A solver saved by an earlier run, on ``device``, checked against the setting it is measured in
    (and ``variant``, its parameters of :attr:`SystemSetting.variants`)."""
    solver = load_model(path, device=device)
    expected = {"dt": setting.dt, "integrator": setting.integrator, "substeps": setting.substeps,
                "depth": setting.depth, "module": setting.params.get("module", "mlp"), **variant}
    found = {key: solver.get_params()[key] for key in expected}
    if found != expected:
        raise FittedSolverMismatch(f"{path} was fitted with {found}, but this setting needs {expected}; "
                                   "remove it or give another folder of fitted solvers.")
    return solver


def _in_substeps(substeps):
    return f" in {substeps} substeps" if substeps > 1 else ""


def summary_table(results):
    """Markdown: one row per hybrid solver of ``results`` (system name to WorkPrecision).

    Examples
    --------
    A hybrid at error 1e-10 in 0.01 s; RK4 needs 100 s there (``error = 1e-2 / seconds**4``):

    >>> from sklearn_attns.experiments.work_precision import summary_table
    >>> from sklearn_attns.work_precision import WorkPrecision
    >>> rows = [dict(method="rk4", family="classical", step=0.1 / k, seconds=float(k), error=1e-2 / k**4)
    ...         for k in (1, 10, 1000)]
    >>> rows.append(dict(method="AttNS", family="hybrid", step=0.1, base="rk4", seconds=0.01, error=1e-10))
    >>> cells = summary_table({"toy": WorkPrecision(rows)}).splitlines()[2].split(" | ")
    >>> cells[:5]
    ['| toy', 'AttNS', 'rk4, dt 0.1', '1e-10', '0.01']
    >>> cells[5:]
    ['1e+04x (rk4)', '1e+04x (rk4)', '1e+04x (rk4)', '-0.99', '100', '1e+04 |']
    """
    lines = [("| system | solver | base | test MSE | seconds | speed-up vs base at finer steps | "
              "vs best fixed-step | vs best, free network | c_net/c_step | k | k/(1+c_net/c_step) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, result in results.items():
        for row in result.rows:
            if row["family"] != "hybrid":
                continue
            label = row["method"]
            model = result.cost_model(label)
            base = f"{row['base']}, dt {row['step']:g}{_in_substeps(row.get('substeps', 1))}"
            cells = [name, label, base, f"{row['error']:.3g}",
                     f"{row['seconds']:.4g}", _speedup_cell(result.speedup(label, "base")),
                     _speedup_cell(result.speedup(label, "best")),
                     _speedup_cell(result.free_network_speedup(label, "best")),
                     f"{model['c_net_over_c_step']:.3g}", f"{model['k']:.3g}", f"{model['bound']:.3g}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _speedup_cell(speedup):
    if speedup.status == "ok":
        return f"{speedup.value:.3g}x ({speedup.against})"
    sign = {"above range": "<= ", "below range": ">= "}.get(speedup.status, "")
    return f"{sign}{speedup.bound:.3g}x ({speedup.against}, {speedup.status})"


def run_work_precision(systems, out, *, command, threads=1, device="cpu", max_epochs="auto", repeats=3,
                       n_jobs=1, quick=False, overrides=None, fitted=None, log=None, say=print):
    """Run :func:`run_system` for each of ``systems`` and write the report, figures and rows.

    Parameters
    ----------
    systems : sequence of str
        Keys of ``SETTINGS``.
    out : path-like
        Output folder (made if missing).
    command : str
        The command line, for the report.
    threads : int
        Torch threads (set by the caller; reported).
    device, max_epochs, repeats, n_jobs, quick
        The networks' and the classical torch steps' device, the training epochs, timed
        rounds, processes making the data, and the smoke sizes of ``QUICK``.
    overrides : dict, default=None
        Fields of :class:`SystemSetting` to replace in every system (None values keep).
    fitted : path-like, default=None
        A folder of solvers saved by an earlier run (its ``out/models``): those found there
        are measured instead of fitted again.
    log : path-like, default=None
        Also append the report to this file.

    Returns
    -------
    dict
        ``{"report": Path, "figures": {system: Path}, "rows": {system: Path}, "results":
        {system: WorkPrecision}}``.

    Examples
    --------
    A smoke run (tiny data and network; its numbers mean nothing):

    >>> import tempfile
    >>> from sklearn_attns.experiments.work_precision import run_work_precision
    >>> with tempfile.TemporaryDirectory() as out:  # doctest: +ELLIPSIS
    ...     paths = run_work_precision(["chain"], out, command="example", quick=True, say=lambda *a: None)
    ...     print(paths["report"].name, sorted(paths["results"]))
    work_precision.md ['chain']
    """
    unknown = [name for name in systems if name not in SETTINGS]
    if not systems or unknown:
        raise ValueError(f"systems must be one or more of {list(SETTINGS)}, got {list(systems)!r}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header = ["# Work-precision: does the hybrid pay?", "", f"command: `{command}`", "",
              f"machine: {machine_line(threads, device)}", ""]
    sections, results, figures, rows = [], {}, {}, {}
    for name in systems:
        setting = _resolved(SETTINGS[name], quick, overrides or {})
        say(f"== {name}: {setting.make()!r} ==")
        # Each system starts with empty compiler caches: the compiled hybrid steps of every
        # solver share their code, and what earlier systems compiled would count against
        # torch's limit of recompilations per function (past it, steps run eagerly).
        torch.compiler.reset()
        result, settings, timings = run_system(name, setting, device=device, max_epochs=max_epochs,
                                               repeats=repeats, n_jobs=n_jobs, quick=quick,
                                               models=out / "models", fitted=fitted, say=say)
        results[name] = result
        rows[name] = out / f"work_precision_{name}.json"
        rows[name].write_text(json.dumps(result.rows, indent=1), encoding="utf-8")
        section = [f"## {name}: {setting.make()!r}", "", settings, "", timings, "", result.table(), "",
                   "```", result.summary(), "```", ""]
        try:
            ax = result.plot(max_error=PLOT_MAX_ERROR, free_network=True)
        except ImportError as exc:
            section.append(f"(no figure: {exc})")
        else:
            figures[name] = out / f"work_precision_{name}.png"
            ax.figure.savefig(figures[name], dpi=110, bbox_inches="tight")
            section.append(f"figure: {figures[name]}")
        sections.append("\n".join([*section, ""]))
        say(result.summary())
        # Rewritten after each system, so that a run stopped later keeps what it measured.
        text = "\n".join(header + ["## Summary", "", summary_table(results), ""] + sections) + "\n"
        report = out / "work_precision.md"
        report.write_text(text, encoding="utf-8")
    if log is not None:
        with open(log, "a", encoding="utf-8") as file:
            file.write("\n" + text)
    return {"report": report, "figures": figures, "rows": rows, "results": results}


def load_rows(path):
    """The :class:`~sklearn_attns.work_precision.WorkPrecision` of a ``work_precision_<system>.json``.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from sklearn_attns.experiments.work_precision import load_rows
    >>> row = dict(method="rk4", family="classical", step=0.1, seconds=1.0, error=1e-6)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     path = Path(out) / "work_precision_toy.json"
    ...     _ = path.write_text(json.dumps([row]))
    ...     load_rows(path).curves()["rk4"][0]["error"]
    1e-06
    """
    return WorkPrecision(json.loads(Path(path).read_text(encoding="utf-8")))
