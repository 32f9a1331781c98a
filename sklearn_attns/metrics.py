"""Trajectory error metrics (the paper's MSE and its profile over time)."""

import numpy as np

__all__ = ["trajectory_mse", "mse_per_step"]


def _check_pair(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim != 3 or y_true.shape != y_pred.shape:
        raise ValueError(
            "y_true and y_pred must be 3-D (n_trajectories, n_times, n_state) of equal shape, "
            f"got {y_true.shape} and {y_pred.shape}."
        )
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
