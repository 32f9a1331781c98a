"""Running the experiments: cells one after the other, resumable, and their outputs.

:func:`run_experiment` runs the cells of an :class:`~sklearn_attns.experiments.Experiment`
one after the other, stores each finished cell as a JSON file under ``OUT/cells/`` (a
rerun with the same settings skips it), then writes three files into ``OUT``: a CSV of
every cell, a Markdown table with the paper's numbers beside ours where the paper gives
them, and a figure (log-scale MSE, needs matplotlib).
"""

import csv
import fnmatch
import json
import math
import os
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..datasets import load_elastic_pendulum, load_klink_pendulum, load_pde_trajectories, load_spring_mass
from ..estimator import HybridSolverRegressor
from ..metrics import mse_per_step, trajectory_mse
from .cells import (
    DEFAULT_VARIANT,
    EXPERIMENTS,
    PDE_SETTINGS,
    SCALES,
    SYSTEM_NAMES,
    integrator_name,
    method_name,
)

__all__ = ["format_mse", "run_cell", "run_experiment", "top_second_derivative", "write_outputs"]

_LOADERS = {"spring_mass": load_spring_mass, "elastic_pendulum": load_elastic_pendulum,
            "klink_pendulum": load_klink_pendulum}


def _settings(cell, scale):
    """Everything a cell's result depends on; a stored result is reused only if they match."""
    settings = {k: v for k, v in asdict(cell).items() if k != "paper"}
    settings.update(
        data=scale.data[cell.benchmark], max_epochs=scale.max_epochs, batch_size=scale.batch_size,
        width=scale.width, fine_dt=scale.fine_dt, reference_fine_dt=scale.reference_fine_dt,
        learning_rate=scale.learning_rate, random_state=scale.random_state,
        timing_repeats=scale.timing_repeats if cell.timed else None,
    )
    if cell.benchmark in PDE_SETTINGS:
        pde = PDE_SETTINGS[cell.benchmark]
        settings["pde"] = {"system": repr(pde.system), "system_params": pde.system.get_params(deep=True),
                           "dt": pde.dt, "t_end": pde.t_end, "fine_dt": pde.fine_dt,
                           "sizes": pde.sizes(scale.data[cell.benchmark])}
    return json.loads(json.dumps(settings, default=repr))


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
        if cell.benchmark in PDE_SETTINGS:
            return self._pde(cell.benchmark)
        train_method = cell.integrator if cell.benchmark == "spring_mass" else "rk4"
        key = (cell.benchmark, cell.n_masses, train_method)
        if key not in self.loaded:
            kwargs = {"n_masses": cell.n_masses} if cell.benchmark == "spring_mass" else {}
            self.loaded[key] = _LOADERS[cell.benchmark](
                scale=self.scale.data[cell.benchmark], train_method=train_method, fine_dt=self.scale.fine_dt,
                reference_fine_dt=self.scale.reference_fine_dt, n_jobs=self.scale.n_jobs,
                verbose=int(self.verbose > 0), **kwargs)
        return self.loaded[key]

    def _pde(self, name):
        if name not in self.loaded:
            pde = PDE_SETTINGS[name]
            n_train, n_test = pde.sizes(self.scale.data[name])
            self.loaded[name] = load_pde_trajectories(
                pde.system, n_train, n_test, pde.t_end, pde.dt, pde.fine_dt,
                random_state=self.scale.random_state, n_jobs=self.scale.n_jobs, verbose=int(self.verbose > 0))
        return self.loaded[name]


def _test_set(cell, data):
    X = data.test
    if cell.t_end is not None:
        X = X[:, : round(cell.t_end / data.dt) + 1]
    if cell.test == "top10":
        X = X[top_second_derivative(X, data.dt)]
    elif cell.test != "all":
        raise ValueError(f"test must be 'all' or 'top10', got {cell.test!r}.")
    return X


def run_cell(cell, scale, data, device="auto", compile=False, verbose=0, keep_paths=0):
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
    keep_paths : int, default=0
        Test trajectories whose states the result keeps (the first ones).

    Returns
    -------
    result : dict
        ``mse`` (inf if a rollout blew up), ``mse_per_step``, ``loss_curve``, ``fit_s``,
        ``predict_s``, ``epochs``, ``n_train``, ``n_test``, ``blown_up`` (number of
        trajectories), ``dt`` and ``warnings`` (distinct messages of runtime warnings:
        rollouts that blew up, a training loss that became non-finite); with
        ``keep_paths``, also ``paths``: ``{"true": ..., "predicted": ...}``, nested lists
        of shape ``(keep_paths, n_times, n_state)``.
    """
    params = dict(system=data.system, dt=data.dt, integrator=cell.integrator, correction=cell.correction,
                  data_fraction=cell.data_fraction, width=scale.width, max_epochs=scale.max_epochs,
                  batch_size=scale.batch_size, learning_rate=scale.learning_rate, device=device,
                  compile=compile, random_state=scale.random_state if cell.seed is None else cell.seed,
                  verbose=verbose)
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
    result = {
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
    if keep_paths:
        result["paths"] = {"true": X[:keep_paths].tolist(), "predicted": paths[:keep_paths].tolist()}
    return result


# --- Running and writing -------------------------------------------------------------------


def _record(experiment, scale, cell, result):
    """One flat row of the CSV."""
    params = dict(cell.params)
    noise = params.get("input_noise", 0.0)
    return {
        "experiment": experiment.name,
        "system": SYSTEM_NAMES[cell.benchmark],
        "d": cell.n_masses if cell.n_masses else "",
        "integrator": integrator_name(cell.integrator),
        "data": f"{cell.data_fraction * 100:g}%",
        "method": cell.method,
        "name": f"{cell.method}, {cell.variant}" if cell.variant else cell.method,
        "seed": "" if cell.seed is None else cell.seed,
        "correction": "plain solver" if cell.correction == "none" else method_name(cell.correction),
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
        "paths": result.get("paths"),
    }


_CSV_FIELDS = ("experiment", "system", "d", "integrator", "data", "method", "correction", "variant", "depth",
               "width", "noise", "test", "seed", "n_train", "n_test", "epochs", "mse", "paper_mse",
               "rel_speed", "paper_rel_speed", "fit_s", "predict_s", "blown_up", "warnings")
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
             scale.describe(), "",
             (f"Seed {scale.random_state}; {len(records)} cells; total fit time {elapsed:.0f} s. "
              "MSE: squared error over test trajectories, components and times dt..T."), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        row = [str(r[c]) for c in columns] + [format_mse(r["mse"]), format_mse(r["paper_mse"])]
        row += [str(r[c]) or "—" for c in extras]
        lines.append(_table_row(row))
    return _with_notes(lines, experiment, records, missing)


def _table_row(cells):
    """A Markdown table row; a ``|`` inside a cell is escaped."""
    return "| " + " | ".join(text.replace("|", "\\|") for text in cells) + " |"


def _with_notes(lines, experiment, records, missing):
    """The Markdown text: ``lines`` (heading and table), then where the paper's numbers come
    from, the cells not run yet and the cells that blew up."""
    lines = lines + ["", f"Paper numbers: {experiment.paper_note}"]
    if missing:
        lines += ["", f"Not run yet ({len(missing)} of {len(records) + len(missing)} cells; the same command "
                      "without `--report` or `--only` runs them): " + "; ".join(missing) + "."]
    blown = [r for r in records if r["blown_up"]]
    if blown:
        lines.append(f"'blew up': some test rollouts became non-finite ({len(blown)} cell(s)).")
    return "\n".join(lines) + "\n"


def _over_seeds(records):
    """One row per cell repeated over seeds: the cells' fields that do not vary with the seed,
    ``seeds``, the ``mse`` mean, ``mse_sd`` (sample standard deviation; 0 for one run),
    ``mse_min`` and ``mse_max``; with ``ratio`` (the plain integrator's MSE over the mean),
    ``ratio_min`` and ``ratio_max`` (over the seeds) where the plain integrator has a row of
    the same system and data. A seed that blew up makes the mean infinite."""
    groups = {}
    for r in records:
        groups.setdefault((r["system"], r["integrator"], r["data"], r["name"]), []).append(r)
    plain = {(r["system"], r["integrator"], r["data"]): r["mse"]
             for r in records if r["correction"] == "plain solver"}
    rows = []
    for (system, integrator, data, _), group in groups.items():
        mse = np.array([float(r["mse"]) for r in group])
        finite = np.isfinite(mse).all()
        row = dict(group[0], seeds=len(group) if group[0]["seed"] != "" else "—", mse=float(mse.mean()),
                   mse_sd=(float(mse.std(ddof=1)) if len(mse) > 1 else 0.0) if finite else math.nan,
                   mse_min=float(mse.min()), mse_max=float(mse.max()),
                   n_train=" / ".join(str(n) for n in dict.fromkeys(r["n_train"] for r in group)),
                   blown_up=sum(r["blown_up"] for r in group), mse_per_step=None, loss_curve=None, paths=None)
        reference = plain.get((system, integrator, data))
        if reference is not None:
            ratios = reference / mse
            row.update(ratio=reference / row["mse"], ratio_min=float(ratios.min()),
                       ratio_max=float(ratios.max()))
        rows.append(row)
    return rows


def _format_ratio(value):
    return f"{value:.3g}" if math.isfinite(value) else "—"


def _seed_markdown(experiment, scale, records, rows, elapsed, missing):
    """The Markdown text of an experiment over seeds: ``rows`` are ``_over_seeds(records)``."""
    columns = list(experiment.columns)
    header = [_HEADERS[c] for c in columns] + ["n_train", "Seeds", "Test MSE, mean ± sd", "min – max",
                                               "× below plain (of the mean)", "min – max over seeds"]
    lines = [f"# {experiment.title}", "", scale.describe(), "",
             (f"{len(records)} cells; total fit time {elapsed:.0f} s. Test MSE: squared error over the "
              f"{', '.join(sorted({str(r['n_test']) for r in records}))} test trajectories, components and "
              "times dt..T; mean and sample standard deviation over the training seeds (each seed draws its "
              "own data subset, initial weights and shuffling). '× below plain': the plain integrator's test "
              "MSE over the method's (above 1 is better than the plain integrator)."), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        single = r["seeds"] in ("—", 1)  # nothing to spread over
        spread = "—" if single else f"{format_mse(r['mse_min'])} – {format_mse(r['mse_max'])}"
        mean = format_mse(r["mse"]) + ("" if single or not math.isfinite(r["mse_sd"])
                                       else f" ± {format_mse(r['mse_sd'])}")
        ratio = _format_ratio(r["ratio"]) if "ratio" in r else "—"
        ratio_spread = ("—" if "ratio" not in r or single
                        else f"{_format_ratio(r['ratio_min'])} – {_format_ratio(r['ratio_max'])}")
        row = [str(r[c]) for c in columns] + [str(r["n_train"]), str(r["seeds"]), mean, spread, ratio,
                                               ratio_spread]
        lines.append(_table_row(row))
    return _with_notes(lines, experiment, records, missing)


def _reusable(stored, settings, experiment):
    """A stored cell made with the same settings, holding all that the experiment draws."""
    return (stored is not None and stored.get("settings") == settings
            and (not experiment.keep_paths or "paths" in stored.get("result", {})))


def _load_cell(path):
    """A stored cell, or None if there is none (or it cannot be read: it is then run again)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_atomic(path, write):
    """``write(handle)`` into a temporary file that replaces ``path`` once complete: an
    interrupted write leaves the old file or none, never a partial one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_outputs(experiment, scale, records, out, elapsed=0.0, plot=True, missing=()):
    """Write ``EXPERIMENT.csv``, ``EXPERIMENT.md`` and, with ``plot``, ``EXPERIMENT.png``.

    ``missing`` names cells not run yet; the Markdown file lists them under the table.
    Where the records keep test trajectories (``Experiment.keep_paths``), ``plot``
    also draws ``EXPERIMENT_error.png`` (test MSE against time) and
    ``EXPERIMENT_trajectories.png`` (the kept trajectories against the reference).

    Returns
    -------
    paths : dict
        ``"csv"``, ``"markdown"`` and (when plotted) ``"figure"``, ``"error_figure"`` and
        ``"trajectories_figure"`` to their paths.
    """
    out = Path(out)
    paths = {"csv": out / f"{experiment.name}.csv", "markdown": out / f"{experiment.name}.md"}

    def write_csv(handle):
        writer = csv.DictWriter(handle, fieldnames=_CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)

    _write_atomic(paths["csv"], write_csv)
    rows = _over_seeds(records) if experiment.over_seeds else records
    if experiment.over_seeds:
        markdown = _seed_markdown(experiment, scale, records, rows, elapsed, missing)
    else:
        markdown = _markdown(experiment, scale, records, elapsed, missing)
    _write_atomic(paths["markdown"], lambda handle: handle.write(markdown))
    if plot:
        from . import figures

        spec = dict(experiment.figure)
        kind = spec.pop("kind")
        draw = figures.bar_chart if kind == "bars" else figures.curve_chart
        paths["figure"] = out / f"{experiment.name}.png"
        if experiment.over_seeds:
            spec.update(low="mse_min", high="mse_max")
        draw(rows, paths["figure"], title=experiment.title, **spec)
        kept = [r for r in records if r.get("paths")]
        if kept:
            paths["error_figure"] = out / f"{experiment.name}_error.png"
            figures.error_over_time_chart(kept, paths["error_figure"], title=experiment.title)
            paths["trajectories_figure"] = out / f"{experiment.name}_trajectories.png"
            figures.trajectories_chart(kept, paths["trajectories_figure"], title=experiment.title)
    return paths


def run_experiment(experiment, scale="quick", out=None, device="auto", compile=False, resume=True, plot=True,
                   verbose=1, report_only=False, only=None):
    """Run (or resume) an experiment and write its CSV, Markdown table and figure.

    Parameters
    ----------
    experiment : str or Experiment
        A key of ``EXPERIMENTS`` or an :class:`Experiment`.
    scale : str or Scale, default="quick"
        A key of ``SCALES`` or a :class:`Scale`.
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
                + "".join(f" {k}={v}" for k, v in cell.params)
                + (f" seed {cell.seed}" if cell.seed is not None else ""))
        label = f"[{i}/{len(cells)}] {name}"
        if resume and _reusable(stored, settings, experiment):
            result = stored["result"]
            say(f"{label}: done earlier, MSE {format_mse(result['mse'])}", flush=True)
        elif report_only or cell.key not in chosen:
            say(f"{label}: not run yet", flush=True)
            missing.append(name)
            continue
        else:
            if verbose >= 2:
                say(f"{label}: running", flush=True)
            result = run_cell(cell, scale, data(cell), device=device, compile=compile,
                              verbose=int(verbose >= 2), keep_paths=experiment.keep_paths)
            stored = json.dumps({"settings": settings, "result": result}, indent=1)
            _write_atomic(path, lambda handle, text=stored: handle.write(text))
            say(f"{label}: MSE {format_mse(result['mse'])} (fit {result['fit_s']:.1f} s, "
                f"{time.perf_counter() - start:.0f} s elapsed)", flush=True)
        elapsed += result["fit_s"]
        records.append(_record(experiment, scale, cell, result))
    if "rel_speed" in experiment.extra:
        _relative_speeds(records)
    paths = write_outputs(experiment, scale, records, out, elapsed, plot=plot and bool(records),
                          missing=missing)
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
