"""A system's right-hand side as the hybrid solvers call it: on batches of torch tensors.

A user's ``rhs`` written with torch-compatible operations runs as it is (on any device,
with gradients). One written for NumPy only is called through host round trips, with a
warning. The adapter calls ``rhs`` once on a probe batch first, so that a wrong output
shape or a bug in the user's code fails there, named, with its own traceback.
"""

import warnings

import numpy as np
import torch

__all__ = ["NumpyRHS", "torch_rhs"]


class NumpyRHS:
    """Call a NumPy-only right-hand side on torch tensors through host round trips (no
    gradients); the result takes the dtype and device of the state, argument ``state_at``."""

    def __init__(self, rhs, state_at=0):
        self.rhs, self.state_at = rhs, state_at

    def __call__(self, *args):
        u = args[self.state_at]
        du = self.rhs(*(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a for a in args))
        return torch.as_tensor(np.asarray(du), dtype=u.dtype, device=u.device)


def torch_rhs(system, n_state, *, needs_gradients=False, device="cpu"):
    """``system.rhs`` if it works on torch tensors, else a :class:`NumpyRHS` with a warning.

    For a conditioned system (time, parameters or inputs) this is its ``evaluate(t, u, p,
    w)``. The right-hand side counts as NumPy-only when it fails on (or does not return) a
    tensor but works on the same values as NumPy arrays. Any other error is the user's bug
    and propagates as it is; an output of another shape than the state is a ``ValueError``.

    Parameters
    ----------
    system : ODESystem
        The system whose ``rhs`` is adapted.
    n_state : int
        The state dimension (a plain rhs takes it from the data).
    needs_gradients : bool, default=False
        Training backpropagates through ``rhs`` (unrolled rollouts): a NumPy-only ``rhs``
        is then an error.
    device : str or torch.device, default="cpu"
        Where the probe batch is made.

    Examples
    --------
    >>> import torch
    >>> from sklearn_attns.rhs_adapter import torch_rhs
    >>> from sklearn_attns.systems import ODESystem
    >>> def decay(u):
    ...     return -u
    >>> rhs = torch_rhs(ODESystem(rhs=decay, n_state=2), 2)
    >>> rhs(torch.ones(3, 2, dtype=torch.float64)).shape
    torch.Size([3, 2])
    """
    def zeros(*shape):
        return torch.zeros(shape, dtype=torch.float64, device=device)

    conditioned = getattr(system, "conditioned", False)
    probe = zeros(2, n_state)
    if conditioned:
        function, state_at = system.evaluate, 1
        args = (zeros(2), probe, zeros(2, system.n_params),
                zeros(2, system.n_inputs) if system.n_inputs else None)
    else:
        function, state_at, args = system.rhs, 0, (probe,)
    try:
        du = function(*args)
        tensor_error = None
    except Exception as exc:  # noqa: BLE001 - decided below: NumPy-only, or the user's bug
        du, tensor_error = None, exc
    if isinstance(du, torch.Tensor):
        _check_shape(du.shape, probe.shape)
        return function
    try:
        du_numpy = np.asarray(function(*(a.cpu().numpy() if isinstance(a, torch.Tensor) else a
                                         for a in args)))
    except Exception:
        if tensor_error is not None:
            raise tensor_error from None  # the user's own error, not a guess that NumPy would do
        raise
    _check_shape(du_numpy.shape, probe.shape)
    if needs_gradients:
        raise ValueError("rollout_steps > 1 backpropagates through the integrator, so system.rhs must accept "
                         "torch tensors (use torch functions, or x.sin() style methods, in your rhs).")
    warnings.warn("system.rhs does not accept torch tensors; it is called through NumPy round trips, which "
                  "is slower (and copies to the host on a GPU). Write it with torch-compatible operations "
                  "to avoid this.",
                  UserWarning, stacklevel=4)
    return NumpyRHS(function, state_at)


def _check_shape(got, expected):
    if tuple(got) != tuple(expected):
        raise ValueError(f"system.rhs must return the shape of its input {tuple(expected)} (n, n_state), "
                         f"got {tuple(got)}.")
