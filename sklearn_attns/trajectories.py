"""Training and test data as the solvers take it: trajectories with their conditioning.

:func:`check_trajectory_set` is the one place where user input becomes a
:class:`TrajectorySet`: trajectories as one array ``(n_trajectories, n_times, n_state)``
or as a list of ``(n_times_i, n_state)`` arrays of different lengths, with, for a
conditioned system, one row of parameters per trajectory, input signals sampled along each
trajectory, and start times. Every check names the offending argument.

Dtype policy: everything becomes float64 NumPy.
"""

from dataclasses import dataclass

import numpy as np

from ._validation import check_trajectories

__all__ = ["TrajectorySet", "check_trajectory_set", "check_conditions", "from_solve_ivp"]


@dataclass
class TrajectorySet:
    """Trajectories sampled every ``data_dt`` with what each depends on.

    Parameters
    ----------
    X : list of ndarray of shape (n_times_i, n_state)
        The trajectories.
    params : ndarray of shape (n_trajectories, n_params) or None
    inputs : list of ndarray of shape (n_times_i, n_inputs) or None
        Input samples at the times of ``X``.
    t0 : ndarray of shape (n_trajectories,)
        Time of each trajectory's first state.
    """

    X: list
    params: object = None
    inputs: object = None
    t0: object = None

    def __len__(self):
        return len(self.X)

    @property
    def lengths(self):
        return np.array([len(x) for x in self.X])

    def take(self, indices):
        """The trajectories ``indices`` (an integer array)."""
        return TrajectorySet([self.X[i] for i in indices],
                             None if self.params is None else self.params[indices],
                             None if self.inputs is None else [self.inputs[i] for i in indices],
                             self.t0[indices])

    def groups(self):
        """``(indices, X, params, inputs, t0)`` per length: equal-length trajectories stacked."""
        lengths = self.lengths
        for length in np.unique(lengths):
            index = np.flatnonzero(lengths == length)
            yield (index, np.stack([self.X[i] for i in index]),
                   None if self.params is None else self.params[index],
                   None if self.inputs is None else np.stack([self.inputs[i] for i in index]), self.t0[index])


def check_trajectory_set(X, system, params=None, inputs=None, t0=None, n_state=None, min_times=2, owner=None):
    """Check ``X`` and its conditioning against ``system``; return a :class:`TrajectorySet`.

    Parameters
    ----------
    X : array-like of shape (n_trajectories, n_times, n_state) or list of (n_times_i, n_state)
        A 2-D array is one trajectory.
    system : ODESystem
        Says which of ``params``, ``inputs`` and ``t0`` it needs.
    params : array-like of shape (n_trajectories, n_params), default=None
    inputs : array-like of shape (n_trajectories, n_times, n_inputs) or list, default=None
    t0 : float or array-like of shape (n_trajectories,), default=None
        None is 0.
    n_state : int, default=None
        The expected state dimension.
    min_times : int, default=2
    owner : str, default=None
        The estimator's name, for messages.
    """
    if isinstance(X, (list, tuple)) and len(X) and all(np.ndim(x) == 2 for x in X):
        trajectories = [check_trajectories(np.asarray(x), n_state, name=f"X[{i}]", min_times=min_times,
                                           owner=owner)[0] for i, x in enumerate(X)]
        widths = {x.shape[1] for x in trajectories}
        if len(widths) > 1:
            raise ValueError(f"X: the trajectories have different state dimensions {sorted(widths)}.")
    else:
        trajectories = list(check_trajectories(X, n_state, min_times=min_times, owner=owner))
    n = len(trajectories)
    lengths = [len(x) for x in trajectories]
    return TrajectorySet(trajectories, _check_params(params, system, n),
                         _check_inputs(inputs, system, lengths), _check_t0(t0, n))


def check_conditions(system, n, n_times, params=None, inputs=None, t0=None):
    """Check the conditioning of ``n`` rollouts of ``n_times`` input samples each; return
    ``(params, inputs, t0)`` as float64 arrays (``inputs`` of shape ``(n, n_times,
    n_inputs)``), None where the system takes none."""
    params = _check_params(params, system, n)
    inputs = _check_inputs(inputs, system, [n_times] * n)
    return params, None if inputs is None else np.stack(inputs), _check_t0(t0, n)


def _declared(value, name, count, what):
    """Whether ``value`` (argument ``name``) is to be checked: refused where the system
    declares ``n_name = 0``, required where it declares some."""
    if count == 0:
        if value is not None:
            raise ValueError(f"{name} was given, but the system has n_{name}=0; declare n_{name} on the "
                             f"system (ODESystem(..., n_{name}=...)) or leave {name} out.")
        return False
    if value is None:
        raise ValueError(f"{name} is required: the system has n_{name}={count} ({what}).")
    return True


def _check_params(params, system, n):
    n_params = getattr(system, "n_params", 0)
    if not _declared(params, "params", n_params, "one row per trajectory"):
        return None
    params = _real_array(params, "params")
    if params.shape != (n, n_params):
        raise ValueError(f"params must have shape (n_trajectories, n_params) = {(n, n_params)}, "
                         f"got {params.shape}.")
    return params


def _check_inputs(inputs, system, lengths):
    n_inputs = getattr(system, "n_inputs", 0)
    if not _declared(inputs, "inputs", n_inputs, "one signal sample per state"):
        return None
    if isinstance(inputs, (list, tuple)):
        inputs = [_real_array(w, f"inputs[{i}]") for i, w in enumerate(inputs)]
    else:
        inputs = list(_real_array(inputs, "inputs"))
    if len(inputs) != len(lengths):
        raise ValueError(f"inputs must hold one signal per trajectory ({len(lengths)}), got {len(inputs)}.")
    for i, (w, length) in enumerate(zip(inputs, lengths)):
        if w.shape != (length, n_inputs):
            raise ValueError(f"inputs[{i}] must have shape (n_times, n_inputs) = {(length, n_inputs)}, "
                             f"got {w.shape}.")
    return inputs


def _check_t0(t0, n):
    if t0 is None:
        return np.zeros(n)
    t0 = _real_array(t0, "t0")
    if t0.ndim == 0:
        return np.full(n, float(t0))
    if t0.shape != (n,):
        raise ValueError(f"t0 must be a number or have shape (n_trajectories,) = ({n},), got {t0.shape}.")
    return t0


def _real_array(value, name):
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers: {exc}") from exc
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite (no NaN or inf).")
    return array


def from_solve_ivp(solutions):
    """Turn ``scipy.integrate.solve_ivp`` results into training data in one line.

    Each solution must have been asked for states at equally spaced times (``t_eval``)
    with the same spacing; they may have different lengths.

    Parameters
    ----------
    solutions : OdeResult or list of OdeResult

    Returns
    -------
    X : list of ndarray of shape (n_times_i, n_state)
        The trajectories, ready for ``fit(X, t0=t0)``.
    t0 : ndarray of shape (n_trajectories,)
        Their start times.
    data_dt : float
        The spacing, for the solver's ``data_dt``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.integrate import solve_ivp
    >>> from sklearn_attns.trajectories import from_solve_ivp
    >>> def decay(t, y):
    ...     return -y
    >>> runs = [solve_ivp(decay, (0, T), [1.0, 2.0], t_eval=np.arange(0, T + 1e-9, 0.1)) for T in (1.0, 2.0)]
    >>> X, t0, data_dt = from_solve_ivp(runs)
    >>> [x.shape for x in X], round(data_dt, 12)
    ([(11, 2), (21, 2)], 0.1)
    """
    if not isinstance(solutions, (list, tuple)):
        solutions = [solutions]
    X, t0, spacings = [], [], []
    for i, solution in enumerate(solutions):
        t, y = np.asarray(solution.t, dtype=np.float64), np.asarray(solution.y, dtype=np.float64)
        if not getattr(solution, "success", True):
            raise ValueError(f"solutions[{i}] failed: {getattr(solution, 'message', '')}")
        if len(t) < 2:
            raise ValueError(f"solutions[{i}] holds {len(t)} times; ask solve_ivp for t_eval with "
                             "at least 2.")
        steps = np.diff(t)
        if not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
            raise ValueError(f"solutions[{i}] is not equally spaced in time: "
                             "pass t_eval=np.arange(t0, t1, dt) to solve_ivp.")
        X.append(y.T)
        t0.append(t[0])
        spacings.append(steps[0])
    if not np.allclose(spacings, spacings[0], rtol=1e-6, atol=0):
        raise ValueError(f"the solutions have different time spacings {sorted(set(spacings))}.")
    return X, np.array(t0), float(spacings[0])
