"""Helpers shared by the test modules."""

import numpy as np

from sklearn_attns.systems import ODESystem


def param_id(value):
    """Readable, deterministic test ids (no memory addresses from function reprs)."""
    if type(value) is ODESystem:
        return f"ODESystem({value.rhs.__name__})"
    if isinstance(value, dict):
        return ",".join(f"{key}={param_id(item)}" for key, item in value.items())
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return repr(value)
