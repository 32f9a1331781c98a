"""Backend helpers: the same numerical code serves NumPy arrays and torch tensors."""

import numpy as np
import torch


def is_tensor(u):
    return isinstance(u, torch.Tensor)


def namespace(u):
    """Return the array module (``numpy`` or ``torch``) that ``u`` belongs to."""
    return torch if is_tensor(u) else np


def like(array, u):
    """Return a constant NumPy ``array`` as the type, dtype and device of ``u``."""
    if is_tensor(u):
        return torch.as_tensor(array, dtype=u.dtype, device=u.device)
    return np.asarray(array, dtype=u.dtype if np.issubdtype(u.dtype, np.floating) else np.float64)
