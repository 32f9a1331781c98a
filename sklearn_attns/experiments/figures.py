"""Figures of the reproduced experiments: log-scale MSE, in the manner of the paper's plots.

matplotlib is an optional dependency (``pip install "sklearn-attns[plot]"``); it is
imported when a figure is drawn, not when this module is. Figures are drawn through
``matplotlib.figure.Figure`` directly, so no interactive backend is touched. The error
over time and the trajectories are drawn by the library's own
:func:`~sklearn_attns.plotting.plot_error_over_time` and
:func:`~sklearn_attns.plotting.plot_trajectories`.
"""

import math
import textwrap

from ..plotting import _require, plot_error_over_time, plot_trajectories

__all__ = ["bar_chart", "curve_chart", "error_over_time_chart", "trajectories_chart"]


def _figure_class():
    return _require("matplotlib.figure").Figure


def _unique(values):
    return list(dict.fromkeys(values))


def _panel_key(record, panels):
    return " · ".join(str(record[p]) for p in panels)


def _grid(n):
    cols = min(n, 4)
    return math.ceil(n / cols), cols


def _finite(value):
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _finish(figure, handles, labels, title, path):
    """Legend on the right, title on top, fixed margins (cheaper than a layout engine);
    the saved image grows to hold a legend wider than its margin."""
    width, height = figure.get_size_inches()
    title = textwrap.fill(title, width=max(40, int(width * 11)))
    head = 0.55 + 0.2 * title.count("\n") + 0.2
    right = 1 - 1.7 / width
    figure.subplots_adjust(left=1.0 / width, right=right, bottom=0.55 / height, top=1 - head / height,
                           wspace=0.35, hspace=0.55)
    figure.legend(handles, labels, loc="upper left", bbox_to_anchor=(right + 0.01, 1 - head / height),
                  fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
    figure.savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.1)


def bar_chart(records, path, *, panels, series, groups=None, title="", xlabel="", value="mse",
              paper_value="paper_mse", low=None, high=None):
    """Grouped bars of a value on a log scale, one panel per combination of ``panels``.

    Bars that are infinite (a rollout that blew up) reach the top of the panel, hatched
    and marked "∞". Where a record has a paper value, a black diamond marks it on its bar;
    with ``low`` and ``high``, a black line spans each bar's range (over seeds, say).

    Parameters
    ----------
    records : list of dict
        Rows of an experiment (see :func:`~sklearn_attns.experiments.run_experiment`).
    path : str or path-like
        Where the PNG goes.
    panels : tuple of str
        Record fields whose combinations make the panels.
    series : str
        Field whose values are the bars of a group (the legend).
    groups : str, default=None
        Field whose values are the groups along the x axis; None for one group.
    title : str, default=""
        Title of the figure.
    xlabel : str, default=""
        Label of the x axis.
    value, paper_value : str
        Fields holding our value and the paper's.
    low, high : str, default=None
        Fields holding the ends of a range drawn on each bar (both or neither).

    Returns
    -------
    path : str or path-like
        ``path``.
    """
    Figure = _figure_class()
    panels = tuple(panels) if isinstance(panels, (tuple, list)) else (panels,)
    panel_names = _unique(_panel_key(r, panels) for r in records)
    series_names = _unique(r[series] for r in records)
    rows, cols = _grid(len(panel_names))
    figure = Figure(figsize=(4.2 * cols + 1.8, 3.6 * rows + 1.0))
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    colors = [f"C{i % 10}" for i in range(len(series_names))]
    width = 0.8 / max(1, len(series_names))
    for ax, panel in zip(axes, panel_names, strict=False):
        chosen = [r for r in records if _panel_key(r, panels) == panel]
        group_names = _unique(r[groups] for r in chosen) if groups else [""]
        # With one group, each bar gets its value as its tick label.
        ticks, tick_labels = [], []
        finite = [float(r[key]) for r in chosen for key in (value, paper_value)
                  if _finite(r.get(key, "")) and float(r[key]) > 0]
        top = max(finite) * 300 if finite else 1.0
        bottom = min(finite) / 10 if finite else 1e-12
        for s, (name, color) in enumerate(zip(series_names, colors, strict=False)):
            for g, group in enumerate(group_names):
                match = [r for r in chosen if r[series] == name and (not groups or r[groups] == group)]
                if not match:
                    continue
                x = g + (s - (len(series_names) - 1) / 2) * width
                y = float(match[0][value]) if _finite(match[0][value]) else math.inf
                label = name
                if not groups:
                    ticks.append(x)
                    tick_labels.append(f"{y:.1e}".replace("e-0", "e-").replace("e+0", "e") if math.isfinite(y)
                                       else "∞")
                if math.isfinite(y) and y > 0:
                    ax.bar(x, y, width, color=color, label=label)

                else:
                    ax.bar(x, top, width, color=color, label=label, hatch="//", alpha=0.5)
                    ax.text(x, top, "∞", ha="center", va="bottom", fontsize=8)
                ends = [match[0].get(key) for key in (low, high) if key]
                if len(ends) == 2 and all(_finite(end) and end > 0 for end in ends) and ends[0] < ends[1]:
                    ax.plot([x, x], ends, color="black", linewidth=1)
                paper = match[0].get(paper_value, "")
                if _finite(paper):
                    ax.plot(x, float(paper), "D", color="black", markersize=5)
        ax.set_yscale("log")
        ax.set_ylim(bottom, top * 3)
        if groups:
            ax.set_xticks(range(len(group_names)), [str(g) for g in group_names])
        else:
            ax.set_xticks(ticks, tick_labels, fontsize=7, rotation=45 if len(ticks) > 4 else 0)
        ax.set_title(panel, fontsize=10)
        ax.set_ylabel("test MSE")
        if xlabel:
            ax.set_xlabel(xlabel)
        ax.grid(axis="y", which="major", alpha=0.3)
    for ax in axes[len(panel_names):]:
        ax.set_visible(False)
    # One legend entry per series, also for a series missing from the first panel.
    entries = {}
    for ax in axes[: len(panel_names)]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    labels, handles = list(entries), list(entries.values())
    if any(_finite(r.get(paper_value, "")) for r in records):
        handles.append(axes[0].plot([], [], "D", color="black", markersize=5)[0])
        labels.append("paper")
    _finish(figure, handles, labels, title, path)
    return path


def curve_chart(records, path, *, panels, series, title=""):
    """Training loss per epoch (top) and test MSE over time (bottom), one column per panel.

    Parameters
    ----------
    records : list of dict
        Rows with ``loss_curve``, ``mse_per_step`` and ``dt``.
    path : str or path-like
        Where the PNG goes.
    panels : str
        Field whose values make the columns (e.g. the data size).
    series : str
        Field whose values are the lines (the legend).
    title : str, default=""
        Title of the figure.

    Returns
    -------
    path : str or path-like
        ``path``.
    """
    Figure = _figure_class()
    panel_names = _unique(r[panels] for r in records)
    series_names = _unique(r[series] for r in records)
    colors = {name: f"C{i % 10}" for i, name in enumerate(series_names)}
    figure = Figure(figsize=(4.2 * len(panel_names) + 1.8, 7.0))
    axes = figure.subplots(2, len(panel_names), squeeze=False)
    for j, panel in enumerate(panel_names):
        loss_ax, mse_ax = axes[0, j], axes[1, j]
        for r in (r for r in records if r[panels] == panel):
            color = colors[r[series]]
            if r["loss_curve"]:
                epochs = range(1, len(r["loss_curve"]) + 1)
                loss_ax.plot(epochs, r["loss_curve"], color=color, label=r[series])
            mse = [v if _finite(v) and v > 0 else float("nan") for v in r["mse_per_step"]]
            times = [k * r["dt"] for k in range(len(mse))]
            mse_ax.plot(times[1:], mse[1:], color=color, label=r[series])
            blown = next((t for t, v in zip(times, r["mse_per_step"], strict=False) if not _finite(v)), None)
            if blown is not None:
                mse_ax.axvline(blown, color=color, linestyle=":", linewidth=1)
        loss_ax.set_title(f"{panel} of the training data", fontsize=10)
        loss_ax.set_xlabel("epoch")
        loss_ax.set_ylabel("training loss (scaled MSE)")
        mse_ax.set_xlabel("time")
        mse_ax.set_ylabel("test MSE")
        for ax in (loss_ax, mse_ax):
            low, high = ax.dataLim.y0, ax.dataLim.y1
            # Log scale unless everything lies within one decade (then it only crowds the ticks).
            if ax.has_data() and low > 0 and high / low > 10:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
    handles, labels = axes[1, 0].get_legend_handles_labels()
    _finish(figure, handles, labels, title, path)
    return path


def error_over_time_chart(records, path, *, title=""):
    """Test MSE against time, one line per record (its ``method``), on a log scale.

    Parameters
    ----------
    records : list of dict
        Rows with ``mse_per_step``, ``dt`` and ``method``, all with the same ``dt``.
    path : str or path-like
        Where the PNG goes.
    title : str, default=""
        Title of the figure.

    Returns
    -------
    path : str or path-like
        ``path``.
    """
    figure = _figure_class()(figsize=(7.5, 4.2))
    ax = figure.subplots()
    plot_error_over_time(None, {r["method"]: r["mse_per_step"] for r in records}, records[0]["dt"], ax=ax)
    ax.set_ylabel("test MSE")
    ax.get_legend().remove()
    _finish(figure, *ax.get_legend_handles_labels(), f"{title}: test MSE over time", path)
    return path


def trajectories_chart(records, path, *, title="", components=None):
    """The test trajectories kept in the records (``paths``) against the reference.

    Parameters
    ----------
    records : list of dict
        Rows with ``paths`` (``{"true": ..., "predicted": ...}``, the same reference in
        every row), ``dt`` and ``method``.
    path : str or path-like
        Where the PNG goes.
    title : str, default=""
        Title of the figure.
    components : sequence of int, default=None
        State components to show; None shows the first and the one halfway (for the
        spring chain's state ``(q, p)``, the first mass's position and momentum).

    Returns
    -------
    path : str or path-like
        ``path``.
    """
    true = records[0]["paths"]["true"]
    n_state = len(true[0][0])
    if components is None:
        components = (0, n_state // 2) if n_state > 1 else (0,)
    figure = _figure_class()(figsize=(4.2 * len(components) + 1.8, 4.2))
    axes = figure.subplots(1, len(components), squeeze=False).ravel()
    predictions = {r["method"]: r["paths"]["predicted"] for r in records}
    plot_trajectories(true, predictions, records[0]["dt"], components=components, n_trajectories=len(true),
                      axes=axes)
    axes[0].get_legend().remove()
    _finish(figure, *axes[0].get_legend_handles_labels(),
            f"{title}: {'a test trajectory' if len(true) == 1 else f'{len(true)} test trajectories'} "
            "(reference solid, predictions dashed)", path)
    return path
