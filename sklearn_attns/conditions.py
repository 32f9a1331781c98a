"""What a step depends on besides the state: time, parameters and input signals.

A conditioned system (see :class:`~sklearn_attns.systems.ODESystem`) is evaluated at
``rhs(t, u, p[, w])``. :class:`Conditions` holds, for a batch of rows and one step, the
start times, the parameters and the input samples that span the step; it gives the
integrator the right-hand side at each stage's time node, and the correction network
what it sees of the conditioning. :class:`ConditionSequence` yields them step after step
for a rollout. The same code serves NumPy arrays (data generation, float64) and torch
tensors (training and prediction, float64 on the model's device).
"""

from dataclasses import dataclass

import numpy as np

from ._array import namespace

__all__ = ["Conditions", "ConditionSequence", "input_at", "n_conditioning"]


def input_at(samples, position, interpolation):
    """The input signal at a fractional ``position`` along ``samples`` (n, m + 1, n_inputs):
    linear between neighbouring samples, or held at the earlier one (``"hold"``)."""
    last = samples.shape[1] - 1
    k = min(int(np.floor(position)), last - 1) if last > 0 else 0
    if interpolation == "hold" or last == 0:
        return samples[:, k]
    fraction = position - k
    return samples[:, k] + fraction * (samples[:, k + 1] - samples[:, k])


@dataclass
class Conditions:
    """The conditioning of one step for a batch of rows.

    Parameters
    ----------
    t : array of shape (n,) or None
        Time at the start of the step (None for systems that do not depend on time).
    params : array of shape (n, n_params) or None
        Parameters of each row.
    inputs : array of shape (n, m + 1, n_inputs) or None
        Input samples spanning the step at ``m + 1`` equally spaced times, the first at
        the start of the step and the last at its end.
    """

    t: object = None
    params: object = None
    inputs: object = None

    def rhs(self, evaluate, dt, interpolation="linear"):
        """``f(c, u)``: ``evaluate(t, u, p, w)`` (a system's :meth:`~ODESystem.evaluate`) at
        time ``t + c dt`` with the inputs there, for ``Integrator.increment(..., at_nodes=True)``."""
        def at_node(c, u):
            t = None if self.t is None else self.t + c * dt
            w = None if self.inputs is None else input_at(self.inputs, c * (self.inputs.shape[1] - 1),
                                                          interpolation)
            return evaluate(t, u, self.params, w)

        return at_node

    def features(self, system):
        """What a correction network sees: the time features, the parameters, and the
        inputs at the start and the end of the step, as ``(n, n_conditioning)``."""
        parts = []
        if system.time_dependent:
            parts.append(system.time_feature_values(self.t))
        if self.params is not None and self.params.shape[1]:
            parts.append(self.params)
        if self.inputs is not None:
            parts += [self.inputs[:, 0], self.inputs[:, -1]]
        if not parts:
            return None
        xp = namespace(parts[0])
        return xp.concatenate([part if part.ndim == 2 else part[:, None] for part in parts], 1)

    def rows(self, index):
        """These conditions for the rows ``index`` (a slice or an index array)."""
        return self._map(lambda value: value[index])

    def to(self, device):
        """These conditions as float64 torch tensors on ``device``."""
        return self._map(lambda value: _tensor(value, device))

    def _map(self, function):
        return Conditions(*(None if value is None else function(value)
                            for value in (self.t, self.params, self.inputs)))


def n_conditioning(system):
    """Columns of :meth:`Conditions.features` for ``system``."""
    if not system.conditioned:
        return 0
    time = 0
    if system.time_dependent:
        time = np.asarray(system.time_feature_values(np.zeros(1))).reshape(1, -1).shape[1]
    return time + system.n_params + 2 * system.n_inputs


@dataclass
class ConditionSequence:
    """The conditions of steps ``0, 1, 2, ...`` of a rollout.

    Parameters
    ----------
    t0 : array of shape (n,)
        Start times.
    params : array of shape (n, n_params) or None
        Parameters, fixed along each trajectory.
    inputs : array of shape (n, n_samples, n_inputs) or None
        Input samples every ``dt / stride``, from ``t0`` on.
    dt : float
        The step.
    stride : int
        Input samples per step.
    """

    t0: object
    params: object
    inputs: object
    dt: float
    stride: int

    def to(self, device):
        """This sequence with float64 torch tensors on ``device``."""
        return ConditionSequence(*(None if value is None else _tensor(value, device)
                                   for value in (self.t0, self.params, self.inputs)), self.dt, self.stride)

    def step(self, n, rows=slice(None)):
        """The :class:`Conditions` of step ``n`` (from ``t0 + n dt`` to ``t0 + (n + 1) dt``)."""
        inputs = None
        if self.inputs is not None:
            inputs = self.inputs[rows, n * self.stride : (n + 1) * self.stride + 1]
        return Conditions(self.t0[rows] + n * self.dt, None if self.params is None else self.params[rows],
                          inputs)


def _tensor(value, device):
    import torch  # only where the conditions go to a model: data generation stays NumPy

    return torch.as_tensor(value, dtype=torch.float64, device=device)
