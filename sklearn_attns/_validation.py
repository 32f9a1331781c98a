"""Input checks shared by every public entry point; each names the offending parameter."""

import numbers
import re

import numpy as np
from scipy import sparse
from sklearn.utils import check_array
from sklearn.utils import check_random_state as _sklearn_check_random_state

from ._array import is_tensor

# Above this ratio every float is an integer, so "an integer multiple" means nothing (and
# the step counts it gives could not be stored anyway).
_MAX_RATIO = 2.0**53


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


def check_non_negative(value, name):
    """A finite real number ``>= 0`` (a physical constant that may vanish, such as gravity)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}.")
    return float(value)


def check_random_state(random_state, name="random_state"):
    """scikit-learn's ``check_random_state``, with errors that name the parameter."""
    if isinstance(random_state, bool):
        raise TypeError(f"{name} must be None, an int or a numpy RandomState, got bool.")
    try:
        return _sklearn_check_random_state(random_state)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={random_state!r} cannot seed a random generator: {exc}") from exc


def check_multiple(numerator, denominator, numerator_name, denominator_name, rtol=1e-6):
    """Return the integer ``numerator / denominator``, or raise if it is not one."""
    ratio = numerator / denominator
    if not ratio < _MAX_RATIO:
        raise ValueError(f"{numerator_name}={numerator!r} is too many multiples of "
                         f"{denominator_name}={denominator!r} (ratio {ratio:.6g}).")
    count = int(round(ratio))
    if count < 1 or abs(ratio - count) > rtol * max(1.0, ratio):
        raise ValueError(
            f"{numerator_name}={numerator!r} must be a positive integer multiple of "
            f"{denominator_name}={denominator!r} (ratio {ratio:.6g})."
        )
    return count


def _state_mismatch(name, got, expected, owner):
    who = owner or "the system"
    return ValueError(f"{name} has {got} features, but {who} is expecting {expected} features as input "
                      f"(the state dimension n_state).")


def check_states(u, n_state, name="u", finite=False, owner=None):
    """Check a batch of states of shape ``(n, n_state)``.

    NumPy input becomes a floating array (integers are promoted to float64); torch tensors
    pass through unchanged, so the dtype and device policy stays the caller's.
    """
    if not is_tensor(u):
        try:
            u = np.asarray(u)
        except Exception as exc:
            raise TypeError(f"{name} must be array-like of numbers: {exc}") from exc
        if np.iscomplexobj(u):
            raise TypeError(f"{name} must be real, got dtype {u.dtype}.")
        if u.dtype.kind not in "biuf":  # object, strings, dates and time spans are no states
            raise TypeError(f"{name} must hold real numbers, got dtype {u.dtype}.")
        if not np.issubdtype(u.dtype, np.floating):
            u = u.astype(np.float64)
    elif u.is_complex():
        raise TypeError(f"{name} must be real, got dtype {u.dtype}.")
    elif not u.is_floating_point():
        # As for NumPy: integer or boolean states are promoted, not computed in integers.
        u = u.double()
    if u.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (n, {n_state}), got shape {tuple(u.shape)}.")
    if u.shape[1] != n_state:
        raise _state_mismatch(name, u.shape[1], n_state, owner)
    if finite and not bool((u == u).all() and (abs(u) < float("inf")).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf).")
    return u


def check_trajectories(X, n_state=None, name="X", min_times=2, owner=None):
    """Check trajectories ``(n_traj, n_times, n_state)``: finite float64 NumPy.

    A 2-D array is one trajectory ``(n_times, n_state)``, as in tslearn, so that
    scikit-learn's tooling (and its estimator checks) can pass ordinary 2-D data.
    """
    try:
        if getattr(X, "ndim", None) == 2 or (not hasattr(X, "ndim") and not sparse.issparse(X) and np.ndim(X) == 2):
            X = check_array(X, dtype=np.float64, ensure_min_samples=min_times, input_name=name)[None]
        X = check_array(X, dtype=np.float64, allow_nd=True, input_name=name)
    except (TypeError, ValueError) as exc:
        if re.search(rf"\b{re.escape(name)}\b", str(exc)):
            raise
        # scikit-learn's message (kept whole, for those who match it) does not always say which input.
        raise (TypeError if isinstance(exc, TypeError) else ValueError)(f"{name}: {exc}") from exc
    if X.ndim != 3:
        raise ValueError(
            f"{name} must be 3-D (n_trajectories, n_times, n_state), got {X.ndim}-D with shape {X.shape}."
        )
    if X.shape[1] < min_times or X.shape[2] < 1:
        raise ValueError(f"{name} must hold trajectories of at least {min_times} times and 1 state, "
                         f"got shape {X.shape}.")
    if n_state is not None and X.shape[2] != n_state:
        raise _state_mismatch(name, X.shape[2], n_state, owner)
    return X
