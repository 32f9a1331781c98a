"""Figures of predicted trajectories: the error over time and a few trajectories.

matplotlib is an optional dependency (``pip install "sklearn-attns[plot]"``); it is
imported when a figure is drawn, not when this module is. Without ``ax``/``axes`` the
functions draw into a new :mod:`matplotlib.pyplot` figure; pass axes of your own to draw
anywhere else.
"""

import importlib
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np

from .metrics import _check_pair, mse_per_step

__all__ = ["plot_error_over_time", "plot_trajectories"]


def _require(module):
    """Import a part of matplotlib, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError("drawing figures needs matplotlib, the optional 'plot' dependency: "
                          "pip install 'sklearn-attns[plot]' (or pip install matplotlib)") from exc


def _check_dt(dt):
    if isinstance(dt, bool) or not isinstance(dt, Real) or not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number (the time between stored states), got {dt!r}.")
    return float(dt)


def _check_predictions(predictions):
    if not isinstance(predictions, Mapping) or not predictions:
        raise TypeError("predictions must be a non-empty dict of label -> predicted trajectories, "
                        f"got {type(predictions).__name__}.")
    return predictions


def _as_3d(values):
    """The project's data layout: a 2-D array is one trajectory."""
    values = np.asarray(values)
    return values[None] if values.ndim == 2 else values


def plot_error_over_time(y_true, predictions, dt, ax=None):
    """Mean squared error at each time, one line per prediction, on a log scale.

    The error at time ``k dt`` is :func:`~sklearn_attns.metrics.mse_per_step`: the squared
    error averaged over trajectories and state components. Time 0 (the given initial
    state, error 0) is left out; a rollout that blew up ends its line where its error
    stops being finite.

    Parameters
    ----------
    y_true : array-like of shape (n_trajectories, n_times, n_state) or None
        Reference trajectories (a 2-D array is one trajectory). None when the values of
        ``predictions`` are per-step errors already computed by ``mse_per_step``.
    predictions : dict of str to array-like
        Label to predicted trajectories of the shape of ``y_true`` (or, with
        ``y_true=None``, to an error curve of shape ``(n_times,)``).
    dt : float
        Time between stored states.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure if None.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn into: one line per label, in the order of ``predictions``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_attns.plotting import plot_error_over_time
    >>> t = np.linspace(0.0, 1.0, 11)
    >>> y_true = np.cos(t)[None, :, None]
    >>> ax = plot_error_over_time(y_true, {"drifting": y_true + 0.1 * t[None, :, None]}, dt=0.1)
    >>> ax.get_yscale(), ax.get_xlabel()
    ('log', 'time')
    >>> print(f"{ax.lines[0].get_ydata()[-1]:.3g}")  # (0.1 * 1.0) ** 2 at t = 1
    0.01
    >>> import matplotlib.pyplot as plt
    >>> plt.close("all")
    """
    dt = _check_dt(dt)
    predictions = _check_predictions(predictions)
    if y_true is None:
        curves = {label: np.asarray(curve, dtype=np.float64) for label, curve in predictions.items()}
        bad = [label for label, curve in curves.items() if curve.ndim != 1 or len(curve) < 2]
        if bad:
            raise ValueError(f"with y_true=None, predictions must map labels to per-step errors of shape "
                             f"(n_times,) with n_times >= 2; {bad[0]!r} is not.")
    else:
        curves = {label: mse_per_step(_as_3d(y_true), _as_3d(paths)) for label, paths in predictions.items()}
    if ax is None:
        _, ax = _require("matplotlib.pyplot").subplots(figsize=(5.5, 3.5))
    for label, curve in curves.items():
        times = dt * np.arange(len(curve))
        shown = np.where(np.isfinite(curve), curve, np.nan)
        ax.plot(times[1:], shown[1:], label=str(label))
    ax.set_yscale("log")
    ax.set_xlabel("time")
    ax.set_ylabel("MSE (over trajectories and components)")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_trajectories(y_true, predictions, dt, components=(0,), n_trajectories=3, axes=None):
    """A few predicted trajectories against the reference, one panel per state component.

    Each panel shows the first ``n_trajectories`` reference trajectories as solid black
    lines and each prediction of the same trajectories as dashed lines of one color.

    Parameters
    ----------
    y_true : array-like of shape (n_trajectories, n_times, n_state)
        Reference trajectories (a 2-D array is one trajectory).
    predictions : dict of str to array-like
        Label to predicted trajectories of the shape of ``y_true``.
    dt : float
        Time between stored states.
    components : int or sequence of int, default=(0,)
        State components to show, one panel each.
    n_trajectories : int, default=3
        How many trajectories (the first ones) to show.
    axes : matplotlib Axes or sequence of Axes, default=None
        One per component; a new figure with a row of panels if None.

    Returns
    -------
    axes : ndarray of matplotlib Axes
        One per component.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_attns.plotting import plot_trajectories
    >>> t = np.linspace(0.0, 1.0, 11)
    >>> y_true = np.stack([np.cos(t), -np.sin(t)], axis=-1)[None]  # one trajectory, 2 components
    >>> axes = plot_trajectories(y_true, {"model": y_true + 0.01}, dt=0.1, components=[0, 1])
    >>> len(axes), axes[1].get_title()
    (2, 'component 1')
    >>> import matplotlib.pyplot as plt
    >>> plt.close("all")
    """
    dt = _check_dt(dt)
    predictions = _check_predictions(predictions)
    paths = {}
    for label, values in predictions.items():
        y_true, paths[label] = _check_pair(_as_3d(y_true), _as_3d(values))
    components = [components] if isinstance(components, Integral) else list(components)
    n_state = y_true.shape[2]
    if not components or not all(isinstance(c, Integral) and 0 <= c < n_state for c in components):
        raise ValueError(f"components must be state indices in [0, {n_state}), got {components!r}.")
    if isinstance(n_trajectories, bool) or not isinstance(n_trajectories, Integral) or n_trajectories < 1:
        raise ValueError(f"n_trajectories must be a positive int, got {n_trajectories!r}.")
    if axes is None:
        _, axes = _require("matplotlib.pyplot").subplots(
            1, len(components), figsize=(4.5 * len(components), 3.5), squeeze=False)
    axes = np.asarray(axes, dtype=object).ravel()
    if len(axes) != len(components):
        raise ValueError(f"axes must hold one Axes per component ({len(components)}), got {len(axes)}.")
    times = dt * np.arange(y_true.shape[1])
    shown = range(min(n_trajectories, len(y_true)))
    for ax, component in zip(axes, components, strict=True):
        for i in shown:
            ax.plot(times, y_true[i, :, component], color="black", linewidth=1.5,
                    label="reference" if i == 0 else None)
            for k, (label, values) in enumerate(paths.items()):
                ax.plot(times, values[i, :, component], color=f"C{k}", linestyle="--", linewidth=1.2,
                        label=str(label) if i == 0 else None)
        ax.set_title(f"component {component}")
        ax.set_xlabel("time")
        ax.set_ylabel("state")
        ax.grid(alpha=0.3)
    axes[0].legend()
    return axes
