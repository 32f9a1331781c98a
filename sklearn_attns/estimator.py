"""The hybrid solver as a scikit-learn estimator: AttNS and its baselines.

This module holds the parameters, ``fit``, ``predict`` and ``score``. Rollouts live in
:mod:`sklearn_attns.rollout`, devices in :mod:`sklearn_attns.devices`, the adapter of a
user's right-hand side in :mod:`sklearn_attns.rhs_adapter` and training in
:mod:`sklearn_attns.training`.
"""

import copy
import inspect
import numbers
import threading
import time
import warnings
from collections import namedtuple

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from ._validation import (
    Boolean,
    CallableValue,
    InstanceOf,
    Interval,
    NoneValue,
    Options,
    RandomStateValue,
    check_count,
    check_multiple,
    check_random_state,
    check_states,
    validate_params,
)
from .conditions import ConditionSequence, n_conditioning
from .corrections import (
    ACTIVATIONS,
    CORRECTIONS,
    MODULES,
    HybridStep,
    build_network,
    get_correction,
    with_state,
)
from .devices import DEVICE_NAMES, is_device_name, loadable_device, resolve_device, rows_in_memory
from .grids import GridLayout, expand_fields, fit_field_scaling
from .integrators import ALIASES, INTEGRATORS, Integrator, get_integrator
from .metrics import trajectory_mse
from .rhs_adapter import torch_rhs
from .rollout import RolloutWarning, rollout
from .systems import ODESystem, as_system, linear_operator_of
from .training import EarlyStopping, RolloutData, TeacherForcedData, fit_least_squares, train_epochs
from .trajectories import check_conditions, check_trajectory_set

__all__ = [
    "HybridSolverRegressor",
    "AttNSSolver",
    "AttNSMultiplicativeSolver",
    "NeurVecSolver",
    "CSMSolver",
    "FSNetSolver",
]

# An MSE is capped here in `score`, so that a blown-up rollout ranks below every finite
# one while averages over folds stay finite.
MAX_SCORE_ERROR = 1e100

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# The training budget of batch_size="auto" and max_epochs="auto": about AUTO_BATCHES
# batches per epoch and AUTO_STEPS optimiser steps, within the ranges (see
# docs/user_guide/training.md for the measurements behind them).
AUTO_BATCHES, AUTO_BATCH_RANGE = 64, (128, 4096)
AUTO_STEPS, AUTO_EPOCH_RANGE = 10_000, (30, 300)
AUTO_ROLLOUT_BATCH = 4096
# A fit that ends its epochs while the best training loss of the last n_iter_no_change
# epochs still beats the best before them by this share warns that it has not converged.
CONVERGED_IMPROVEMENT = 0.01


def _still_improving(losses, window):
    """Whether the best of the last ``window`` losses beats the best before them by more
    than ``CONVERGED_IMPROVEMENT`` (True when there is no "before")."""
    if len(losses) <= window:
        return True
    return min(losses[-window:]) < (1 - CONVERGED_IMPROVEMENT) * min(losses[:-window])


class _DeviceName:
    def is_satisfied_by(self, value):
        return is_device_name(value)

    def __str__(self):
        return DEVICE_NAMES


# What fit resolves from the parameters.
_Config = namedtuple("_Config", "system dt stride integrator correction")
# torch draws initial weights from its one process-wide generator: a build seeds it under
# this lock and restores it, so fits in threads side by side neither interleave their
# draws nor move the caller's random state.
_GLOBAL_RNG_LOCK = threading.Lock()


class HybridSolverRegressor(RegressorMixin, BaseEstimator):
    """A coarse-step integrator corrected by a small network trained on fine-step data.

    One hybrid step is ``u_{n+1} = u_n + dt S(u_n) + delta``, where ``S`` is the slope of
    the base ``integrator`` and ``delta`` the learned ``correction`` (see
    :mod:`sklearn_attns.corrections`; ``"attns"`` is the AttNS method of Huang et al.,
    ICML 2024). Training follows the paper's Alg. 1 with teacher-forced single steps by
    default, or unrolled ``rollout_steps`` with gradients through the integrator.

    Parameters
    ----------
    system : ODESystem or callable, default=None
        The ODE: a system from :mod:`sklearn_attns.systems` (autonomous, or depending on
        time, parameters or inputs; see :class:`~sklearn_attns.systems.ODESystem`), or a
        plain picklable ``rhs(u)`` that accepts ``(n, n_state)`` torch tensors (its
        ``n_state`` is then taken from the data).
    dt : float, default=0.2
        Coarse step of the solver; a multiple of the data's spacing ``data_dt``.
    integrator : {"euler", "heun", "improved_euler", "rk3", "rk4", "dop853"}, default="rk4"
        Base method (``"dop853"``: Dormand and Prince's 12-stage 8th-order method, with a
        fixed step), or an :class:`~sklearn_attns.integrators.Integrator`.
    substeps : int, default=1
        Base steps of ``dt / substeps`` per hybrid step: the network corrects their
        composition once per ``dt`` (multiplies an ``Integrator``'s own ``substeps``). Over
        a many-stage method this spreads the network's cost over more of the base's work;
        see the user guide's "Does it pay?".
    correction : {"attns", "attns-m", "neurvec", "csm", "fsnet", "none"}, default="attns"
        The learned correction; ``"none"`` is the plain integrator.
    data_fraction : float in (0, 1], default=1.0
        Train on a reproducible subset of ``floor(data_fraction * n_trajectories)``
        trajectories (the paper's limited-data scenario).
    data_dt : float, default=None
        Time between consecutive states of the training data; ``None`` means ``dt``.
    depth : int, default=2
        Linear layers of the network (the paper's ``h``).
    width : int, default=256
        Hidden width (the paper's ``d1``, 1024 in its experiments). 256 trains as well or
        better on small data sets and costs a quarter of the inference.
    activation : str, default=None
        Hidden activation: "rational" (safe denominator), "rational-original", "sine",
        "relu", "tanh", "gelu"; ``None`` is the correction's own ("sine" for fsnet,
        "rational" otherwise).
    skip_connection : bool, default=False
        Add a learnable multiple of the network input to its output (Table 2).
    module : {"mlp", "lstm", "transformer", "conv", "polynomial"}, default="mlp"
        The network: the paper's Eq. (8), Table 2's LSTM / Transformer modules that
        read the state components as a sequence (hidden size ``width``), or, for a system
        on a grid (``system.layout``), a local, weight-shared convolutional network
        (:class:`~sklearn_attns.corrections.LocalConvNet`: ``depth`` convolutions of
        ``kernel_size`` points, ``width`` channels) that also rolls out on a longer
        periodic domain with the same spacing. "polynomial" is a polynomial of total
        ``degree`` in the standardised input (:class:`~sklearn_attns.corrections.Polynomial`),
        fitted in one linear least-squares solve on the teacher-forced steps, not by Adam
        (the training parameters ``learning_rate``, ``max_epochs``, ``n_iter_no_change``
        and ``tol`` then do not apply, nor ``depth``, ``width``, ``activation`` and
        ``skip_connection``). On small state spaces with a smooth residual it is far more
        accurate and cheaper than the networks: it is the correction that pays on the
        pendulums in the user guide's "Does it pay?". Use it with ``dtype="float64"`` and
        ``state_input=True`` there, and ``compile=True`` (the compiled step evaluates it in
        one fused pass).
    attention_input : {"S", "S*dt"}, default="S"
        What the attention of attns / attns-m sees (Table 2). The inputs are
        standardised, so the two differ only by rounding unless the scale is degenerate.
    condition_network : bool, default=True
        For a time-dependent, parametric or forced system, the network also sees what
        the step depends on: the time features, the parameters and the inputs at the
        step's start and end (see :class:`~sklearn_attns.conditions.Conditions`).
        False is the ablation: the correction's own input alone.
    state_input : bool, default=False
        The network also sees the state ``u`` beside its own input (for AttNS: the
        slope ``S`` and the state together; see
        :func:`~sklearn_attns.corrections.with_state`).
    kernel_size : int, default=5
        Points per convolution of ``module="conv"`` (odd); its receptive field is
        ``depth * (kernel_size - 1) + 1`` points.
    degree : int, default=3
        Total degree of ``module="polynomial"``: ``comb(n_inputs + degree, degree)``
        coefficients per state component (165 at degree 3 in the 8 inputs of a 4-state
        system with ``state_input=True``), at most 5,000.
    rollout_steps : int, default=1
        Coarse steps unrolled per training sample; 1 is teacher forcing.
    input_noise : float, default=0.0
        Standard deviation of Gaussian noise added to the input states in training (the
        paper's robustness experiment uses 1e-5).
    learning_rate : float, default=1e-3
        Adam's initial learning rate, annealed to 0 by a cosine schedule per iteration.
    max_epochs : int or "auto", default="auto"
        Passes over the training samples. "auto" sets a budget of about 10,000 optimiser
        steps (between 30 and 300 epochs), so that small data sets train as long as
        large ones. Errors far below the base method's (1e-8 and less on the pendulums)
        need about three times that, with ``n_iter_no_change`` at least ``max_epochs``
        (user guide, "Training settings").
    batch_size : int or "auto", default="auto"
        Samples per gradient step; also trajectories per batch in ``predict``. "auto" is
        a 64th of the training samples (between 128 and 4096), and rollouts of 4096
        trajectories on the CPU or, on a GPU, of as many as fit a quarter of its free
        memory (a GPU is fastest on one large batch).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the trajectories, score rollouts on them after
        every epoch, stop when more than ``n_iter_no_change`` epochs in a row did not
        improve the best score by ``tol`` (scikit-learn's rule), and restore the best
        weights. Without it, training stops by the same rule on the training loss and
        keeps the last weights.
    validation_fraction : float in (0, 1), default=0.1
        Share of trajectories held out when ``early_stopping``.
    n_iter_no_change : int, default=10
        Patience, in epochs. Set it to ``max_epochs`` or more to run every epoch of a long
        schedule: early on, while the learning rate is high, the training loss can miss a
        new best for 10 epochs by chance.
    tol : float, default=0.0
        Least improvement of the score (negative loss or validation score) that counts.
    warm_start : bool, default=False
        Continue from the fitted network (and its scaling) instead of a fresh one. The
        network's parameters (``correction``, ``depth``, ``width``, ``activation``,
        ``skip_connection``, ``module``, ``degree``, ``attention_input``, ``dtype``) must
        then be those of the fitted one: a change raises ``ValueError`` naming it. A
        polynomial (``module="polynomial"``) keeps its scaling and is fitted again on the new
        data (its least-squares solution does not depend on where it starts).
    device : str or torch.device, default="auto"
        "auto" (CUDA when available), "cpu", "cuda", "cuda:N" or a ``torch.device``.
    dtype : {"float32", "float64"}, default="float32"
        Dtype of the network. States and the base integrator always run in float64.
    compile : bool, default=False
        Run the network through ``torch.compile`` for training and prediction. It fuses
        the rational activation (several times faster on CPU and GPU) at the price of a
        compilation of some tens of seconds per process, cached on disk afterwards.
        Prediction then compiles several whole steps (base step and network) into one
        call, on states held a component at a time across the rows as in the fused steps
        of :func:`~sklearn_attns.datasets.make_trajectories`, checked once against the
        eager steps (1.3-3.4x faster than one compiled call per step on the pendulums,
        ``benchmarks/bench_compiled_rollout.py``; a conditioned system or a NumPy-only
        right-hand side keeps one call per step). Every speed-up over classical solvers
        at equal accuracy in the user guide's "Does it pay?" needs it: uncompiled, the
        same hybrids ran 1.4-6.0 times slower there.
    random_state : int, RandomState instance or None, default=None
        Seeds the data subset, the split, the initial weights and the shuffling; with an
        int, CPU fits are repeatable, also when run in threads side by side.
    verbose : int, default=0
        Print one line per epoch when positive.

    Attributes
    ----------
    n_features_in_ : int
        State dimension seen in ``fit``.
    model_ : HybridStep
        The fitted step (integrator, network and scaling).
    model_params_ : dict
        The parameters that shaped ``model_`` (integrator, dt, correction and network):
        what a pickle or :func:`~sklearn_attns.persistence.save_model` rebuilds, and what
        ``warm_start`` continues.
    loss_curve_ : list of float
        Mean training loss (the scaled MSE) of each epoch.
    validation_scores_ : list of float or None
        Validation score (negative rollout MSE) of each epoch, with ``early_stopping``.
    best_validation_score_ : float or None
        Best of ``validation_scores_``.
    best_loss_ : float or None
        Lowest training loss (without ``early_stopping``).
    n_iter_ : int
        Epochs run.
    device_ : torch.device
        Device the model lives on.
    train_indices_ : ndarray
        Trajectories of ``X`` used for training.

    Notes
    -----
    Fitted attributes are set only when ``fit`` returns: a fit that fails leaves the
    estimator as it was. Ctrl-C (``KeyboardInterrupt``) propagates out of ``fit``, as in
    scikit-learn, after the estimator is left usable with the best weights so far (with
    a warning), for whoever catches it.

    Examples
    --------
    >>> from sklearn_attns import AttNSSolver, make_trajectories
    >>> from sklearn_attns.systems import SpringMass
    >>> system = SpringMass(n_masses=2)
    >>> X = make_trajectories(system, n_trajectories=20, t_end=4.0, dt=0.2, random_state=0)
    >>> solver = AttNSSolver(system=system, dt=0.2, width=32, max_epochs=3, device="cpu",
    ...                      random_state=0).fit(X)
    >>> solver.predict(X[:3, 0], n_steps=10).shape
    (3, 11, 4)
    """


    # Parameters, inputs and start times go with the trajectories through scikit-learn's
    # metadata routing (GridSearchCV, cross_val_score), once it is enabled.
    __metadata_request__fit = {"params": True, "inputs": True, "t0": True}
    __metadata_request__score = {"params": True, "inputs": True, "t0": True}
    __metadata_request__predict = {"params": True, "inputs": True, "t0": True}

    _parameter_constraints = {
        "system": [InstanceOf(ODESystem, "an ODESystem"), CallableValue("a picklable rhs(u) callable")],
        "dt": [Interval(numbers.Real, 0, None, closed="neither")],
        "integrator": [Options([*INTEGRATORS, *ALIASES], ignore_case=True),
                       InstanceOf(Integrator, "an Integrator")],
        "substeps": [Interval(numbers.Integral, 1, None, closed="left")],
        "correction": [Options(CORRECTIONS, ignore_case=True)],
        "data_fraction": [Interval(numbers.Real, 0, 1, closed="right")],
        "data_dt": [NoneValue(), Interval(numbers.Real, 0, None, closed="neither")],
        "depth": [Interval(numbers.Integral, 1, None, closed="left")],
        "width": [Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [NoneValue(), Options(ACTIVATIONS)],
        "skip_connection": [Boolean()],
        "module": [Options(MODULES)],
        "attention_input": [Options(["S", "S*dt"])],
        "condition_network": [Boolean()],
        "state_input": [Boolean()],
        "kernel_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "degree": [Interval(numbers.Integral, 1, None, closed="left")],
        "rollout_steps": [Interval(numbers.Integral, 1, None, closed="left")],
        "input_noise": [Interval(numbers.Real, 0, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_epochs": [Options(["auto"]), Interval(numbers.Integral, 0, None, closed="left")],
        "batch_size": [Options(["auto"]), Interval(numbers.Integral, 1, None, closed="left")],
        "early_stopping": [Boolean()],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "warm_start": [Boolean()],
        "device": [_DeviceName()],
        "dtype": [Options(_DTYPES)],
        "compile": [Boolean()],
        "random_state": [RandomStateValue()],
        "verbose": [Interval(numbers.Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        system=None,
        dt=0.2,
        integrator="rk4",
        substeps=1,
        correction="attns",
        data_fraction=1.0,
        data_dt=None,
        depth=2,
        width=256,
        activation=None,
        skip_connection=False,
        module="mlp",
        attention_input="S",
        condition_network=True,
        state_input=False,
        kernel_size=5,
        degree=3,
        rollout_steps=1,
        input_noise=0.0,
        learning_rate=1e-3,
        max_epochs="auto",
        batch_size="auto",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=0.0,
        warm_start=False,
        device="auto",
        dtype="float32",
        compile=False,
        random_state=None,
        verbose=0,
    ):
        self.system = system
        self.dt = dt
        self.integrator = integrator
        self.substeps = substeps
        self.correction = correction
        self.data_fraction = data_fraction
        self.data_dt = data_dt
        self.depth = depth
        self.width = width
        self.activation = activation
        self.skip_connection = skip_connection
        self.module = module
        self.attention_input = attention_input
        self.condition_network = condition_network
        self.state_input = state_input
        self.kernel_size = kernel_size
        self.degree = degree
        self.rollout_steps = rollout_steps
        self.input_noise = input_noise
        self.learning_rate = learning_rate
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.dtype = dtype
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose

    # --- validation ---------------------------------------------------------------------

    def _check_params(self):
        """Check every parameter against ``_parameter_constraints`` and the ones that
        depend on each other; return what they resolve to."""
        validate_params(self._parameter_constraints, self.get_params(deep=False))
        system = as_system(self.system)
        data_dt = self.dt if self.data_dt is None else self.data_dt
        stride = check_multiple(self.dt, data_dt, "dt", "data_dt")
        correction = _correction(self.correction, self.attention_input, self.state_input)
        integrator = get_integrator(self.integrator, substeps=int(self.substeps))
        return _Config(system, float(self.dt), stride, integrator, correction)

    def _model_params(self, config, n_conditioning=0):
        """The parameters that shape the step: the base method, the width of the
        conditioning, and the network's parameters that apply to this ``correction`` and
        ``module``."""
        correction = getattr(config.correction, "base", config.correction)  # without with_state
        params = {"integrator": config.integrator.name, "substeps": config.integrator.substeps,
                  "dt": config.dt, "correction": correction.name, "n_conditioning": int(n_conditioning)}
        if not correction.uses_network:
            return params
        params.update(attention_input=self.attention_input, module=self.module, dtype=self.dtype,
                      state_input=bool(self.state_input))
        if self.module == "polynomial":
            params["degree"] = int(self.degree)
            return params
        params.update(width=int(self.width), skip_connection=bool(self.skip_connection))
        if self.module in ("mlp", "conv"):
            params["depth"] = int(self.depth)
            activation = correction.default_activation if self.activation is None else self.activation
            params["activation"] = activation
        if self.module == "conv":
            layout = getattr(config.system, "layout", None)
            if layout is None:
                raise ValueError("module='conv' needs a system with a grid layout (system.layout, a "
                                 "sklearn_attns.grids.GridLayout, as the PDE systems have).")
            params.update(kernel_size=int(self.kernel_size), n_fields=layout.n_fields,
                          boundary=layout.boundary, spacing=float(layout.spacing))
        return params

    def _check_warm_start(self, model_params):
        """A warm start may change the base step (``integrator``, ``substeps``, ``dt``), not the network."""
        fitted = self.model_params_
        changed = sorted(name for name in set(fitted) | set(model_params)
                         if name not in _BASE_STEP and fitted.get(name) != model_params.get(name))
        if changed:
            said = ", ".join(f"{name}={model_params.get(name)!r} (fitted: {fitted.get(name)!r})"
                             for name in changed)
            raise ValueError(f"warm_start=True continues the fitted network, but {said} changed it; "
                             "set these back, or fit with warm_start=False to train a new network.")

    # --- fitting --------------------------------------------------------------------------

    def fit(self, X, y=None, params=None, inputs=None, t0=None):
        """Train the correction on trajectories.

        Parameters
        ----------
        X : array-like of shape (n_trajectories, n_times, n_state), or list of arrays
            Fine-step trajectories sampled every ``data_dt`` (a 2-D array is one
            trajectory; a list may hold trajectories of different lengths ``(n_times_i,
            n_state)``).
        y : None
            Ignored; present for the scikit-learn API.
        params : array-like of shape (n_trajectories, n_params), default=None
            For a system with parameters: one row per trajectory.
        inputs : array-like of shape (n_trajectories, n_times, n_inputs), or list
            For a system with an input signal: its samples at the times of ``X``.
        t0 : float or array-like of shape (n_trajectories,), default=None
            For a time-dependent system: the time of each trajectory's first state
            (None: 0).

        Returns
        -------
        self
        """
        config = self._check_params()
        system = config.system
        warm = self.warm_start and hasattr(self, "model_")
        data = check_trajectory_set(X, system, params, inputs, t0, self.n_features_in_ if warm else None,
                                    owner=type(self).__name__)
        n_state, stride = data.X[0].shape[1], config.stride
        if system.n_state is not None and system.n_state != n_state:
            raise ValueError(f"X has n_state={n_state} but system has n_state={system.n_state}.")
        if data.lengths.max() <= stride:
            raise ValueError(f"X needs more than dt/data_dt={stride} times per trajectory, "
                             f"got {data.lengths.max()}.")
        if self.rollout_steps > 1 and system.conditioned:
            raise ValueError("rollout_steps > 1 is not available for time-dependent, parametric or forced "
                             "systems; use rollout_steps=1.")
        least_squares = self.module == "polynomial" and config.correction.uses_network
        if least_squares and (self.rollout_steps > 1 or self.input_noise > 0):
            raise ValueError(f"module='polynomial' is fitted by least squares on single noiseless steps, got "
                             f"rollout_steps={self.rollout_steps} and input_noise={self.input_noise}; set "
                             "rollout_steps=1 and input_noise=0, or use module='mlp'.")
        model_params = self._model_params(config, n_conditioning(system) if self.condition_network else 0)
        if warm:
            self._check_warm_start(model_params)
        device = resolve_device(self.device)
        rng = check_random_state(self.random_state, "random_state")
        generator = torch.Generator().manual_seed(int(rng.randint(2**31 - 1)))
        keep, validation = self._split(len(data), rng, config.correction)
        train = data.take(keep)
        validation = None if validation is None else data.take(validation)

        step = _base_step(config, n_state, self.rollout_steps, device, model_params["n_conditioning"] > 0)
        if warm:
            # A copy: a fit that fails leaves the fitted network as it was.
            old = self.model_
            step = step.with_network(copy.deepcopy(old.network), old.input_mean, old.input_scale,
                                     old.output_scale).to(device)
        samples = TeacherForcedData(train, stride, step, device, self._rollout_batch(device, n_state))
        batch_size, max_epochs = self._training_budget(len(samples))
        if not warm:
            step = self._new_model(step, samples, model_params, generator, device)
        fitted = {
            "model_": step, "device_": device, "n_features_in_": n_state, "data_dt_": config.dt / stride,
            "stride_": stride, "train_indices_": keep, "model_params_": model_params,
            "loss_curve_": list(self.loss_curve_) if warm else [],
            "validation_scores_": [] if validation is not None else None,
            "n_iter_": self.n_iter_ if warm else 0, "best_loss_": None, "best_validation_score_": None,
        }
        validation_score = None
        if validation is not None:
            def validation_score():
                rows = self._rollout_batch(device, n_state, max(validation.lengths) // stride + 1)
                return -_rollout_error(step, validation, stride, rows, device)

        if least_squares:
            return self._fit_least_squares(step, samples, validation_score, fitted)
        if not config.correction.uses_network or max_epochs == 0:
            self._set_fitted(fitted)
            return self

        loss_scale = samples.loss_scale
        if self.rollout_steps > 1:
            samples = RolloutData(train, stride, self.rollout_steps, device)
        stopper = EarlyStopping(self.tol, self.n_iter_no_change)

        def log(epoch, loss, score):
            fitted["loss_curve_"].append(loss)
            fitted["n_iter_"] += 1
            if score is not None:
                fitted["validation_scores_"].append(score)

        if self.compile:
            step.compile()
        step.network.train()
        try:
            stopped, diverged = train_epochs(
                step, samples, loss_scale=loss_scale, max_epochs=max_epochs,
                batch_size=batch_size, learning_rate=self.learning_rate, input_noise=self.input_noise,
                generator=generator, stopper=stopper, validation_score=validation_score,
                verbose=self.verbose, log=log,
            )
        except KeyboardInterrupt:
            warnings.warn(f"training interrupted after {fitted['n_iter_']} complete epochs; the solver keeps "
                          "the best weights so far.", RuntimeWarning, stacklevel=2)
            self._finish(step, stopper, fitted, validation is not None, restore=True)
            raise
        self._finish(step, stopper, fitted, validation is not None,
                     restore=validation is not None or diverged)
        if stopped and not diverged and validation is None and fitted["n_iter_"] < max_epochs / 2:
            warnings.warn(f"training stopped after {fitted['n_iter_']} of max_epochs={max_epochs} epochs: "
                          f"the training loss missed a new best for n_iter_no_change={stopper.patience} "
                          "epochs while the cosine schedule's learning rate was still above half its start, "
                          "so its low-rate end, which brings the last digits, never ran; set "
                          "n_iter_no_change to max_epochs to run the whole schedule.", ConvergenceWarning,
                          stacklevel=2)
        if not stopped and _still_improving(fitted["loss_curve_"][-stopper.patience * 2:],
                                            stopper.patience):
            warnings.warn(f"max_epochs={max_epochs} reached while the training loss was still falling by "
                          f"more than {CONVERGED_IMPROVEMENT:.0%} over the last {stopper.patience} epochs "
                          "(n_iter_no_change); more epochs would probably help.", ConvergenceWarning,
                          stacklevel=2)
        return self

    def _fit_least_squares(self, step, samples, validation_score, fitted):
        """``module="polynomial"``: one least-squares solve, logged as one epoch."""
        start = time.perf_counter()
        if len(samples) < step.network.n_terms:
            warnings.warn(f"{len(samples)} training steps for the {step.network.n_terms} terms of module="
                          f"'polynomial' (degree={self.degree}): the fit passes through them exactly, and "
                          "its training loss says nothing of its error elsewhere; lower degree or give more "
                          "trajectories.", UserWarning, stacklevel=3)
        loss = fit_least_squares(step, samples, loss_scale=samples.loss_scale)
        step.network.eval()
        fitted.update(loss_curve_=[*fitted["loss_curve_"], loss], n_iter_=fitted["n_iter_"] + 1,
                      best_loss_=loss)
        said = f"least squares ({step.network.n_terms} terms, {len(samples)} steps): loss {loss:.4g}"
        if validation_score is not None:
            score = validation_score()
            fitted.update(validation_scores_=[score], best_validation_score_=score, best_loss_=None)
            said += f", validation score {score:.4g}"
        if self.verbose:
            print(f"{said}, {time.perf_counter() - start:.1f} s", flush=True)
        self._set_fitted(fitted)
        return self

    def _training_budget(self, n_samples):
        """``(batch_size, max_epochs)`` with "auto" resolved: about ``AUTO_BATCHES`` batches
        per epoch and ``AUTO_STEPS`` optimiser steps in all, whatever the data size."""
        batch_size = self.batch_size
        if batch_size == "auto":
            batch_size = int(np.clip(n_samples // AUTO_BATCHES, *AUTO_BATCH_RANGE))
        max_epochs = self.max_epochs
        if max_epochs == "auto":
            batches = -(-n_samples // batch_size)
            max_epochs = int(np.clip(-(-AUTO_STEPS // batches), *AUTO_EPOCH_RANGE))
        return batch_size, max_epochs

    def _rollout_batch(self, device, n_state, n_saved=1):
        """Trajectories rolled out together in ``predict``, ``score`` and validation on ``device``."""
        if self.batch_size != "auto":
            return self.batch_size
        if device.type != "cuda":
            return AUTO_ROLLOUT_BATCH
        # Per row, generously: a step's stage buffers (64 states), the saved states, and float32
        # activations of every layer at every component (a local network's are per grid point).
        return rows_in_memory(device, 8 * (64 + n_saved) * n_state + 16 * self.width * self.depth * n_state)

    def _split(self, n_trajectories, rng, correction):
        """Indices of the training trajectories, and of the validation ones (or None)."""
        n_keep = int(np.floor(self.data_fraction * n_trajectories + 1e-9))
        if n_keep < 1:
            raise ValueError(f"data_fraction={self.data_fraction} of {n_trajectories} trajectories "
                             "leaves none to train on.")
        keep = np.sort(rng.permutation(n_trajectories)[:n_keep])
        if not (self.early_stopping and correction.uses_network):
            return keep, None
        n_val = int(np.ceil(self.validation_fraction * n_keep))
        if n_keep - n_val < 1:
            raise ValueError(f"early_stopping with validation_fraction={self.validation_fraction} holds out "
                             f"{n_val} of the {n_keep} trajectories used (data_fraction={self.data_fraction} "
                             f"of {n_trajectories}), leaving none to train on; lower validation_fraction or "
                             "give more trajectories.")
        shuffled = rng.permutation(keep)
        return np.sort(shuffled[n_val:]), np.sort(shuffled[:n_val])

    def _finish(self, step, stopper, fitted, validated, restore):
        """Close training: put back the best weights if asked, record the best score, and
        set the fitted state."""
        step.network.eval()
        if restore:
            stopper.restore(step.network)
        best = stopper.best_score if np.isfinite(stopper.best_score) else None
        if validated:
            fitted["best_validation_score_"] = best
        else:
            fitted["best_loss_"] = None if best is None else -best
        self._set_fitted(fitted)

    def _set_fitted(self, fitted):
        for name, value in fitted.items():
            setattr(self, name, value)

    def _new_model(self, step, data, model_params, generator, device):
        """A fresh network with scaling fitted to ``data`` (the correction starts at zero)."""
        if model_params.get("module") == "conv":
            # Per field, pooled over the grid: every point shares its field's constants.
            mean, scale, output_scale = fit_field_scaling(step.correction, data.u, data.slope, data.residual,
                                                          step.dt, model_params["n_fields"])
            n_points = data.u.shape[1] // model_params["n_fields"]
            mean, scale, output_scale = (expand_fields(v, n_points) for v in (mean, scale, output_scale))
        else:
            mean, scale, output_scale = data.fit_scaling(step)
        if not step.correction.uses_network:
            return step.to(device)
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = _build_network(data.u.shape[1], model_params)
        return step.with_network(network, mean, scale, output_scale).to(device)

    # --- prediction -------------------------------------------------------------------------

    def predict(self, X, n_steps=100, save_every=1, final_only=False, params=None, inputs=None, t0=None):
        """Roll the hybrid solver out from initial conditions.

        Trajectories are rolled out ``batch_size`` at a time and written into the returned
        array as they go, so peak memory stays close to the size of what is returned.

        Parameters
        ----------
        X : array-like of shape (n, n_state)
            Initial conditions.
        n_steps : int, default=100
            Coarse steps of size ``dt``.
        save_every : int, default=1
            Keep every ``save_every``-th state (steps ``0, k, 2k, ... <= n_steps``).
        final_only : bool, default=False
            Return only the state after ``n_steps``, shape ``(n, n_state)``.
        params : array-like of shape (n, n_params), default=None
            For a system with parameters: one row per initial condition.
        inputs : array-like of shape (n, n_steps * dt / data_dt + 1, n_inputs), default=None
            For a system with an input signal: its samples every ``data_dt`` (the
            spacing of the training data) from ``t0`` on.
        t0 : float or array-like of shape (n,), default=None
            For a time-dependent system: the start times (None: 0).

        Returns
        -------
        paths : ndarray of shape (n, n_steps // save_every + 1, n_state), float64
            ``paths[:, 0]`` is ``X``. Trajectories that blow up hold non-finite values
            from then on, with a :class:`~sklearn_attns.rollout.RolloutWarning` saying how
            many and from which step.
        """
        check_is_fitted(self, "model_")
        n_steps = check_count(n_steps, "n_steps", minimum=0)
        save_every = check_count(save_every, "save_every")
        if not Boolean().is_satisfied_by(final_only):
            raise TypeError(f"final_only must be a bool, got {final_only!r}.")
        try:
            u0 = check_array(X, dtype=np.float64, input_name="X")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"X (initial conditions, shape (n, n_state)): {exc}") from exc
        model = self.model_
        if u0.ndim == 2 and u0.shape[1] != self.n_features_in_ and self.model_params_.get("module") == "conv":
            model = self._on_another_grid(u0.shape[1])
        else:
            u0 = check_states(u0, self.n_features_in_, "X", owner=type(self).__name__)
        conditions = None
        if self.model_.system is not None:
            system = self.model_.system
            params, inputs, t0 = check_conditions(system, len(u0), n_steps * self.stride_ + 1, params, inputs,
                                                  t0)
            conditions = ConditionSequence(t0, params, inputs, self.model_.dt, self.stride_).to(self.device_)
        else:  # refuses parameters or inputs given to a system that takes none
            check_conditions(as_system(self.system), len(u0), 1, params, inputs, None)
        model = model.compile() if self.compile else model
        rows = self._rollout_batch(self.device_, u0.shape[1], 1 if final_only else n_steps // save_every + 1)
        return rollout(model, u0, n_steps, save_every=save_every, final_only=final_only, batch_size=rows,
                       device=self.device_, conditions=conditions)

    def _on_another_grid(self, n_state):
        """``model_`` on a periodic domain of ``n_state`` components with the fitted spacing:
        the base step of ``system`` (set to the same equation on that domain) and the fitted
        local network, whose weights and per-field scaling do not depend on the grid size."""
        params = self.model_params_
        system = as_system(self.system)
        layout = getattr(system, "layout", None)
        fitted = f"{params['n_fields']} field(s) on a periodic grid of spacing {params['spacing']:g}"
        if (params["boundary"] != "periodic" or layout is None or system.n_state != n_state
                or layout.boundary != "periodic" or layout.n_fields != params["n_fields"]
                or not np.isclose(layout.spacing, params["spacing"], rtol=1e-9)):
            raise ValueError(f"X has {n_state} components, the solver was fitted on {self.n_features_in_}: "
                             f"a local correction rolls out on another periodic domain when system is set to "
                             f"the same equation there ({fitted}, n_state={n_state}), e.g. "
                             "set_params(system=Burgers(n_points=..., length=...)).")
        config = _Config(system, self.model_.dt, self.stride_, self.model_.integrator, self.model_.correction)
        step = _base_step(config, n_state, device=self.device_)
        old, new = self.n_features_in_ // layout.n_fields, n_state // layout.n_fields

        def regrid(values):  # constant per channel: take one point of each, spread over the new grid
            return expand_fields(values.reshape(-1, old)[:, 0], new)

        model = self.model_
        return step.with_network(model.network, regrid(model.input_mean), regrid(model.input_scale),
                                 regrid(model.output_scale)).to(self.device_)

    def score(self, X, y=None, params=None, inputs=None, t0=None):
        """Negative trajectory MSE of rollouts from ``X[:, 0]`` against ``X`` (higher is better).

        ``X`` is sampled every ``data_dt`` as in ``fit`` (an array, or a list of
        trajectories of different lengths, with their ``params``, ``inputs`` and ``t0``
        as in ``fit``); the error is averaged over every predicted state. Rollouts that
        blow up count as an MSE of ``MAX_SCORE_ERROR`` (1e100), so the score stays finite.
        """
        check_is_fitted(self, "model_")
        data = check_trajectory_set(X, self.model_.system or as_system(self.system), params, inputs, t0,
                                    self.n_features_in_, min_times=self.stride_ + 1,
                                    owner=type(self).__name__)
        model = self.model_.compile() if self.compile else self.model_
        rows = self._rollout_batch(self.device_, self.n_features_in_, max(data.lengths) // self.stride_ + 1)
        return -_rollout_error(model, data, self.stride_, rows, self.device_)

    # --- scikit-learn plumbing -----------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    # Fitted values stored as they are (JSON-able); ``model_`` is stored as its network
    # parameters and weights, ``device_`` as its name, ``train_indices_`` as an array.
    _FITTED_VALUES = ("n_features_in_", "data_dt_", "stride_", "n_iter_", "best_loss_",
                      "best_validation_score_", "loss_curve_", "validation_scores_", "model_params_")
    # What lives on the device, and is moved to the host when the estimator is exported.
    _DEVICE_DEPENDENT = ("model_",)

    def _export_fitted(self):
        """The fitted state as plain data: ``(values, arrays, device)`` with JSON-able
        ``values``, CPU NumPy ``arrays`` (the weights under ``weight/NAME`` and
        ``train_indices_``) and the device's name. :meth:`_restore_fitted` inverts it; pickling and
        :func:`~sklearn_attns.persistence.save_model` both go through this pair."""
        values = {name: _plain(getattr(self, name)) for name in self._FITTED_VALUES}
        arrays = {f"weight/{k}": v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()}
        arrays["train_indices_"] = np.asarray(self.train_indices_)
        return values, arrays, str(self.device_)

    def _restore_fitted(self, values, arrays, device):
        """Set the fitted state from :meth:`_export_fitted`'s output (``system`` must be set
        already); the model goes to ``device``, or to the CPU if CUDA is missing here."""
        device = loadable_device(device)
        params = values["model_params_"]
        correction = _correction(params["correction"], params.get("attention_input", "S"),
                                 params.get("state_input", False))
        config = _Config(as_system(self.system), params["dt"], values["stride_"], integrator_of(params),
                         correction)
        weights = {k[len("weight/"):]: torch.as_tensor(v) for k, v in arrays.items()
                   if k.startswith("weight/")}
        n_state = values["n_features_in_"]
        with warnings.catch_warnings():  # already said at fit time
            warnings.simplefilter("ignore", UserWarning)
            step = _base_step(config, n_state, device=device,
                              network_sees_conditions=params["n_conditioning"] > 0)
        if config.correction.uses_network:
            network = _build_network(n_state, params)
            inputs = torch.empty(_network_input_size(n_state, params), dtype=torch.float64)
            step = step.with_network(network, inputs, inputs.clone(),
                                     torch.empty(n_state, dtype=torch.float64))
            step.load_state_dict(weights)
            step.network.eval()
        elif weights:
            raise ValueError("correction='none' has no network, but weights were given.")
        self._set_fitted({**values, "model_": step.to(device), "device_": device,
                          "train_indices_": np.asarray(arrays["train_indices_"])})

    def __getstate__(self):
        state = self.__dict__.copy()
        if "model_" not in state:
            return state
        for name in (*self._FITTED_VALUES, *self._DEVICE_DEPENDENT, "device_", "train_indices_"):
            state.pop(name, None)
        state["_fitted"] = self._export_fitted()
        return state

    def __setstate__(self, state):
        state = dict(state)
        fitted = state.pop("_fitted", None)
        self.__dict__.update(state)
        if fitted is not None:
            self._restore_fitted(*fitted)


def _plain(value):
    """A fitted value as plain Python data (lists and dicts copied, NumPy scalars unwrapped)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value.item() if isinstance(value, np.generic) else value


# The model parameters of the base step, which a warm start may change.
_BASE_STEP = ("integrator", "substeps", "dt")


def integrator_of(model_params):
    """The base :class:`~sklearn_attns.integrators.Integrator` that ``model_params_`` name
    (files written before ``substeps`` existed have none: one substep)."""
    return get_integrator(model_params["integrator"], substeps=model_params.get("substeps", 1))


_NETWORK_ARGUMENTS = ("depth", "width", "activation", "skip_connection", "module", "kernel_size", "degree")


def _correction(name, attention_input, state_input):
    correction = get_correction(name, attention_input=attention_input)
    return with_state(correction) if state_input and correction.uses_network else correction


def _network_input_size(n_state, model_params):
    """Values the network reads per row (before the conv module's grid reshape): the
    correction's features, the state again with ``state_input``, and the conditioning."""
    return n_state * (2 if model_params.get("state_input") else 1) + model_params["n_conditioning"]


def _build_network(n_state, model_params):
    """The correction network ``model_params`` describe, in its dtype, its last layer zero:
    from the correction's input (with the state, with ``state_input``) and the
    conditioning to the state; on a grid, a local network."""
    arguments = {k: v for k, v in model_params.items() if k in _NETWORK_ARGUMENTS}
    if model_params.get("module") == "conv":
        layout = GridLayout(n_state // model_params["n_fields"], model_params["n_fields"],
                            model_params["boundary"])
        extra = layout.n_fields if model_params["state_input"] else 0
        network = build_network(n_state, layout=layout, extra_inputs=extra, **arguments)
        return network.to(_DTYPES[model_params["dtype"]])
    network = build_network(_network_input_size(n_state, model_params), n_outputs=n_state, **arguments)
    return network.to(_DTYPES[model_params["dtype"]])


def _base_step(config, n_state, rollout_steps=1, device="cpu", network_sees_conditions=True):
    """The uncorrected :class:`HybridStep` of a system on ``device`` (one matrix product per
    slope when the system is linear)."""
    system = config.system
    rhs = torch_rhs(system, n_state, needs_gradients=rollout_steps > 1, device=device)
    if system.conditioned:
        return HybridStep(rhs, config.integrator, config.dt, config.correction, system=system,
                          network_sees_conditions=network_sees_conditions).to(device)
    return HybridStep(rhs, config.integrator, config.dt, config.correction,
                      linear_operator=linear_operator_of(system)).to(device)


def _rollout_error(model, data, stride, batch_size, device):
    """``model``'s rollout error on a :class:`~sklearn_attns.trajectories.TrajectorySet`: the
    squared error averaged over every predicted state (for trajectories of one length, the
    paper's trajectory MSE), capped at ``MAX_SCORE_ERROR``."""
    total, count = 0.0, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RolloutWarning)
        for _, X, params, inputs, t0 in data.groups():
            reference = X[:, ::stride]
            conditions = None
            if model.system is not None:
                conditions = ConditionSequence(t0, params, inputs, model.dt, stride).to(device)
            paths = rollout(model, X[:, 0], reference.shape[1] - 1, batch_size=batch_size, device=device,
                            conditions=conditions)
            error = trajectory_mse(reference, np.nan_to_num(paths, nan=np.inf))
            n_predicted = len(X) * (reference.shape[1] - 1)
            total, count = total + error * n_predicted, count + n_predicted
    error = total / count if np.isfinite(total) else np.inf
    return min(error, MAX_SCORE_ERROR)


def _with_default_correction(correction):
    """An ``__init__`` taking the parameters of :class:`HybridSolverRegressor`, with another
    default for ``correction`` (scikit-learn reads the defaults from the signature)."""
    base = inspect.signature(HybridSolverRegressor.__init__)
    signature = base.replace(parameters=[
        p.replace(default=correction) if p.name == "correction" else p for p in base.parameters.values()
    ])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        HybridSolverRegressor.__init__(**bound.arguments)

    __init__.__signature__ = signature
    return __init__


class AttNSSolver(HybridSolverRegressor):
    """:class:`HybridSolverRegressor` with ``correction="attns"`` by default: the AttNS method
    (paper Eq. 10). All parameters and attributes are those of :class:`HybridSolverRegressor`."""

    __init__ = _with_default_correction("attns")


class AttNSMultiplicativeSolver(HybridSolverRegressor):
    """:class:`HybridSolverRegressor` with ``correction="attns-m"`` by default: the
    multiplicative attention of paper Eq. 6. All parameters and attributes are those of
    :class:`HybridSolverRegressor`."""

    __init__ = _with_default_correction("attns-m")


class NeurVecSolver(HybridSolverRegressor):
    """:class:`HybridSolverRegressor` with ``correction="neurvec"`` by default: NeurVec, a
    network of the state added to the step. All parameters and attributes are those of
    :class:`HybridSolverRegressor`."""

    __init__ = _with_default_correction("neurvec")


class CSMSolver(HybridSolverRegressor):
    """:class:`HybridSolverRegressor` with ``correction="csm"`` by default: a network
    correcting the solver's output. All parameters and attributes are those of
    :class:`HybridSolverRegressor`."""

    __init__ = _with_default_correction("csm")


class FSNetSolver(HybridSolverRegressor):
    """:class:`HybridSolverRegressor` with ``correction="fsnet"`` by default: NeurVec with
    FSNet's sine activation. All parameters and attributes are those of
    :class:`HybridSolverRegressor`."""

    __init__ = _with_default_correction("fsnet")
