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
        if getattr(X, "ndim", None) == 2 or (
            not hasattr(X, "ndim") and not sparse.issparse(X) and np.ndim(X) == 2
        ):
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


# --- Declarative parameter constraints ------------------------------------------------------
# An estimator lists, per parameter, the constraints a value may satisfy (any one will do),
# in the manner of scikit-learn's ``_parameter_constraints``; ``validate_params`` checks
# them all and names the first offending parameter with what was expected.


class InvalidParameterError(ValueError, TypeError):
    """A parameter has a wrong type or value (a ``ValueError`` and a ``TypeError``, as in
    scikit-learn, so either ``except`` clause catches it)."""


class Interval:
    """A real (``kind=numbers.Real``) or integer (``numbers.Integral``) number in an interval.

    ``left`` or ``right`` None means unbounded; ``closed`` is "both", "left", "right" or
    "neither". Booleans, NaN and infinities never satisfy it.
    """

    def __init__(self, kind, left, right, closed="both"):
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def is_satisfied_by(self, value):
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        # Python ints of any size are finite (np.isfinite cannot convert those beyond int64).
        if not isinstance(value, numbers.Integral) and not np.isfinite(value):
            return False
        if self.left is not None and (value < self.left or (value == self.left and self.closed in ("right",
                                                                                                    "neither"))):
            return False
        return self.right is None or not (value > self.right or (value == self.right and self.closed in (
            "left", "neither")))

    def __str__(self):
        kind = "an int" if self.kind is numbers.Integral else "a float"
        low = "-inf" if self.left is None else f"{self.left:g}"
        high = "inf" if self.right is None else f"{self.right:g}"
        opening = "[" if self.left is not None and self.closed in ("both", "left") else "("
        closing = "]" if self.right is not None and self.closed in ("both", "right") else ")"
        return f"{kind} in {opening}{low}, {high}{closing}"


class Options:
    """One of a set of strings (compared case-insensitively with ``ignore_case``)."""

    def __init__(self, options, ignore_case=False):
        self.options, self.ignore_case = sorted(options), ignore_case

    def is_satisfied_by(self, value):
        if not isinstance(value, str):
            return False
        return (value.lower() if self.ignore_case else value) in self.options

    def __str__(self):
        return f"one of {self.options}"


class InstanceOf:
    """An instance of ``types`` (a type or a tuple of types), described as ``description``."""

    def __init__(self, types, description):
        self.types, self.description = types, description

    def is_satisfied_by(self, value):
        return isinstance(value, self.types)

    def __str__(self):
        return self.description


class Boolean:
    """``True`` or ``False`` (Python or NumPy booleans, not 0 and 1)."""

    def is_satisfied_by(self, value):
        return isinstance(value, (bool, np.bool_))

    def __str__(self):
        return "a bool"


class NoneValue:
    def is_satisfied_by(self, value):
        return value is None

    def __str__(self):
        return "None"


class CallableValue:
    def __init__(self, description="a callable"):
        self.description = description

    def is_satisfied_by(self, value):
        return callable(value)

    def __str__(self):
        return self.description


class RandomStateValue:
    """None, an int in ``[0, 2**32)`` or a ``numpy.random.RandomState``."""

    def is_satisfied_by(self, value):
        if isinstance(value, np.random.RandomState) or value is None:
            return True
        return Interval(numbers.Integral, 0, 2**32 - 1).is_satisfied_by(value)

    def __str__(self):
        return "None, an int in [0, 2**32) or a numpy RandomState"


def validate_parameter(constraints, name, value):
    """Raise :class:`InvalidParameterError` unless ``value`` satisfies one of
    ``constraints[name]``; the message names the parameter and what was expected.

    Examples
    --------
    >>> import numbers
    >>> from sklearn_attns._validation import Interval, validate_parameter
    >>> constraints = {"max_epochs": [Interval(numbers.Integral, 0, None)]}
    >>> validate_parameter(constraints, "max_epochs", 3)
    >>> validate_parameter(constraints, "max_epochs", -1)
    Traceback (most recent call last):
    ...
    sklearn_attns._validation.InvalidParameterError: max_epochs must be an int in [0, inf), got -1.
    """
    allowed = constraints[name]
    if any(constraint.is_satisfied_by(value) for constraint in allowed):
        return
    expected = " or ".join(str(constraint) for constraint in allowed)
    raise InvalidParameterError(f"{name} must be {expected}, got {value!r}.")


def validate_params(constraints, params):
    """:func:`validate_parameter` for every ``name: value`` of ``params`` in ``constraints``."""
    for name, value in params.items():
        if name in constraints:
            validate_parameter(constraints, name, value)
