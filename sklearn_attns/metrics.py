"""Trajectory error metrics (the paper's MSE and its profile over time)."""

import numpy as np

__all__ = ["trajectory_mse", "mse_per_step"]


def _as_real(values, name):
    try:
        array = np.asarray(values)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{name} must be an array of shape (n_trajectories, n_times, n_state): "
                         f"{exc}") from exc
    if array.dtype.kind not in "biuf":  # complex (whose imaginary part would be dropped), text, objects
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}.")
    return array.astype(np.float64, copy=False)


def _check_pair(y_true, y_pred):
    y_true, y_pred = _as_real(y_true, "y_true"), _as_real(y_pred, "y_pred")
    if y_true.ndim != 3 or y_true.shape != y_pred.shape:
        raise ValueError(
            "y_true and y_pred must be 3-D (n_trajectories, n_times, n_state) of equal shape, "
            f"got {y_true.shape} and {y_pred.shape}."
        )
    if y_true.size == 0:
        raise ValueError(f"y_true and y_pred must hold at least one trajectory, time and state, "
                         f"got {y_true.shape}.")
    # Blown-up predictions are a result (an infinite error); a non-finite reference is a mistake.
    if not np.isfinite(y_true).all():
        raise ValueError("y_true must be finite (no NaN or inf).")
    return y_true, y_pred


def mse_per_step(y_true, y_pred):
    """Mean squared error at each time, averaged over trajectories and state components.

    Returns
    -------
    ndarray of shape (n_times,)

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.metrics import mse_per_step
    >>> mse_per_step(np.zeros((2, 3, 1)), np.ones((2, 3, 1)))
    array([1., 1., 1.])
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    with np.errstate(over="ignore", invalid="ignore"):  # blown-up rollouts give inf, as they should
        return ((y_pred - y_true) ** 2).mean(axis=(0, 2))


def trajectory_mse(y_true, y_pred):
    """The paper's metric: squared error averaged over trajectories, times 1..N and states.

    The initial state (time 0) is given, not predicted, so it is left out of the mean.
    Non-finite predictions give ``inf``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.metrics import trajectory_mse
    >>> trajectory_mse(np.zeros((2, 3, 1)), np.ones((2, 3, 1)))
    1.0
    """
    per_step = mse_per_step(y_true, y_pred)
    if per_step.shape[0] < 2:
        raise ValueError("trajectory_mse needs at least 2 times (the initial state and one step).")
    value = float(per_step[1:].mean())
    return value if np.isfinite(value) else float("inf")
