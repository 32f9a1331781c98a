"""Input checks shared by every public entry point; each names the offending parameter."""

import numbers

import numpy as np

from ._array import is_tensor


def check_count(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)


def check_multiple(numerator, denominator, numerator_name, denominator_name, rtol=1e-6):
    """Return the integer ``numerator / denominator``, or raise if it is not one."""
    ratio = numerator / denominator
    count = int(round(ratio))
    if count < 1 or abs(ratio - count) > rtol * max(1.0, ratio):
        raise ValueError(
            f"{numerator_name}={numerator!r} must be a positive integer multiple of "
            f"{denominator_name}={denominator!r} (ratio {ratio:.6g})."
        )
    return count


def check_states(u, n_state, name="u", finite=False):
    """Check a batch of states of shape ``(n, n_state)``.

    NumPy input becomes a floating array (integers are promoted to float64); torch tensors
    pass through unchanged, so the dtype and device policy stays the caller's.
    """
    if not is_tensor(u):
        try:
            u = np.asarray(u)
        except Exception as exc:
            raise TypeError(f"{name} must be array-like of numbers: {exc}") from exc
        if u.dtype == object or not (np.issubdtype(u.dtype, np.number) or u.dtype == bool):
            raise TypeError(f"{name} must hold real numbers, got dtype {u.dtype}.")
        if np.iscomplexobj(u):
            raise TypeError(f"{name} must be real, got dtype {u.dtype}.")
        if not np.issubdtype(u.dtype, np.floating):
            u = u.astype(np.float64)
    if u.ndim != 2 or u.shape[1] != n_state:
        raise ValueError(f"{name} must have shape (n, {n_state}), got {tuple(u.shape)}.")
    if finite and not bool((u == u).all() and (abs(u) < float("inf")).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf).")
    return u


def check_trajectories(X, n_state=None, name="X", min_times=2):
    """Check trajectories ``(n_traj, n_times, n_state)``: float64 NumPy, finite."""
    try:
        X = np.asarray(X)
    except Exception as exc:
        raise TypeError(f"{name} must be array-like of numbers: {exc}") from exc
    if X.dtype == object or not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}.")
    if X.ndim != 3:
        raise ValueError(
            f"{name} must be 3-D (n_trajectories, n_times, n_state), got {X.ndim}-D with shape {X.shape}."
        )
    if X.shape[0] < 1 or X.shape[1] < min_times:
        raise ValueError(f"{name} must hold at least 1 trajectory of {min_times} times, got shape {X.shape}.")
    if n_state is not None and X.shape[2] != n_state:
        raise ValueError(f"{name} has n_state={X.shape[2]}, expected {n_state}.")
    X = X.astype(np.float64, copy=False)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or inf.")
    return X
