"""Backend helpers: the same numerical code serves NumPy arrays and torch tensors.

torch is imported only when a tensor is seen, so worker processes that step NumPy
trajectories start without paying for it.
"""

import sys

import numpy as np


def is_tensor(u):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(u, torch.Tensor)


def namespace(u):
    """Return the array module (``numpy`` or ``torch``) that ``u`` belongs to."""
    return sys.modules["torch"] if is_tensor(u) else np


def like(array, u):
    """Return a constant NumPy ``array`` as the type, dtype and device of ``u``."""
    if is_tensor(u):
        return sys.modules["torch"].as_tensor(array, dtype=u.dtype, device=u.device)
    return np.asarray(array, dtype=u.dtype if np.issubdtype(u.dtype, np.floating) else np.float64)
