"""The hybrid solver as a scikit-learn estimator: AttNS and its baselines."""

import inspect
import io
import os
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from ._validation import (
    check_count,
    check_multiple,
    check_non_negative,
    check_positive,
    check_random_state,
    check_states,
    check_trajectories,
)
from .corrections import HybridStep, build_network, cpu_block_rows, get_correction
from .integrators import get_integrator
from .metrics import trajectory_mse
from .systems import as_system, linear_operator_of
from .training import EarlyStopping, RolloutData, TeacherForcedData, train_epochs

__all__ = [
    "HybridSolverRegressor",
    "AttNSSolver",
    "AttNSMultiplicativeSolver",
    "NeurVecSolver",
    "CSMSolver",
    "FSNetSolver",
    "RolloutWarning",
    "resolve_device",
]

# An MSE is capped here in `score`, so that a blown-up rollout ranks below every finite
# one while averages over folds stay finite.
MAX_SCORE_ERROR = 1e100


class RolloutWarning(RuntimeWarning):
    """A rollout produced non-finite states for some trajectories."""


def resolve_device(device):
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device`` into a device.

    Raises ``ValueError`` for an unknown name or for CUDA on a machine without it.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if _cuda_available_without_init() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}.") from exc
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be a CPU or CUDA device, got {device!r}.")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but CUDA is not available on this machine; "
                             "use device='cpu' or 'auto'.")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) present.")
    return resolved


def _cuda_available_without_init():
    """``torch.cuda.is_available()`` through NVML, which leaves the CUDA driver uninitialised,
    so that processes forked afterwards (joblib, multiprocessing) can still use the GPU."""
    previous = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"
    try:
        return torch.cuda.is_available()
    finally:
        if previous is None:
            del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]
        else:
            os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = previous


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
        The ODE ``du/dt = f(u)``: a system from :mod:`sklearn_attns.systems`, or a plain
        picklable ``rhs(u)`` that accepts ``(n, n_state)`` torch tensors (its ``n_state``
        is then taken from the data).
    dt : float, default=0.2
        Coarse step of the solver; a multiple of the data's spacing ``data_dt``.
    integrator : {"euler", "heun", "improved_euler", "rk3", "rk4"}, default="rk4"
        Base method.
    correction : {"attns", "attns-m", "neurvec", "csm", "fsnet", "none"}, default="attns"
        The learned correction; ``"none"`` is the plain integrator.
    data_fraction : float in (0, 1], default=1.0
        Train on a reproducible subset of ``floor(data_fraction * n_trajectories)``
        trajectories (the paper's limited-data scenario).
    data_dt : float, default=None
        Time between consecutive states of the training data; ``None`` means ``dt``.
    depth : int, default=2
        Linear layers of the network (the paper's ``h``).
    width : int, default=1024
        Hidden width (the paper's ``d1``).
    activation : str, default=None
        Hidden activation: "rational" (safe denominator), "rational-original", "sine",
        "relu", "tanh", "gelu"; ``None`` is the correction's own ("sine" for fsnet,
        "rational" otherwise).
    skip_connection : bool, default=False
        Add a learnable multiple of the network input to its output (Table 2).
    module : {"mlp", "lstm", "transformer"}, default="mlp"
        The network: the paper's Eq. (8), or Table 2's LSTM / Transformer modules that
        read the state components as a sequence (hidden size ``width``).
    attention_input : {"S", "S*dt"}, default="S"
        What the attention of attns / attns-m sees (Table 2). The inputs are
        standardised, so the two differ only by rounding unless the scale is degenerate.
    rollout_steps : int, default=1
        Coarse steps unrolled per training sample; 1 is teacher forcing.
    input_noise : float, default=0.0
        Standard deviation of Gaussian noise added to the input states in training (the
        paper's robustness experiment uses 1e-5).
    learning_rate : float, default=1e-3
        Adam's initial learning rate, annealed to 0 by a cosine schedule per iteration.
    max_epochs : int, default=30
        Passes over the training samples.
    batch_size : int, default=4096
        Samples per gradient step; also trajectories per batch in ``predict``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the trajectories, score rollouts on them after
        every epoch, stop after ``n_iter_no_change`` epochs without improvement, and
        restore the best weights.
    validation_fraction : float in (0, 1), default=0.1
        Share of trajectories held out when ``early_stopping``.
    n_iter_no_change : int, default=10
        Patience, in epochs.
    tol : float, default=0.0
        Least improvement of the score (negative loss or validation score) that counts.
    warm_start : bool, default=False
        Continue from the fitted network (and its scaling) instead of a fresh one.
    device : str or torch.device, default="auto"
        "auto" (CUDA when available), "cpu", "cuda", "cuda:N" or a ``torch.device``.
    dtype : {"float32", "float64"}, default="float32"
        Dtype of the network. States and the base integrator always run in float64.
    compile : bool, default=False
        Run the network through ``torch.compile`` for training and prediction. It fuses
        the rational activation (several times faster on CPU and GPU) at the price of a
        compilation of some tens of seconds per process, cached on disk afterwards.
    random_state : int, RandomState instance or None, default=None
        Seeds the data subset, the split, the initial weights and the shuffling; with an
        int, CPU fits are repeatable.
    verbose : int, default=0
        Print one line per epoch when positive.

    Attributes
    ----------
    n_features_in_ : int
        State dimension seen in ``fit``.
    model_ : HybridStep
        The fitted step (integrator, network and scaling).
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

    _default_correction = "attns"

    def __init__(
        self,
        system=None,
        dt=0.2,
        integrator="rk4",
        correction="attns",
        data_fraction=1.0,
        data_dt=None,
        depth=2,
        width=1024,
        activation=None,
        skip_connection=False,
        module="mlp",
        attention_input="S",
        rollout_steps=1,
        input_noise=0.0,
        learning_rate=1e-3,
        max_epochs=30,
        batch_size=4096,
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
        self.correction = correction
        self.data_fraction = data_fraction
        self.data_dt = data_dt
        self.depth = depth
        self.width = width
        self.activation = activation
        self.skip_connection = skip_connection
        self.module = module
        self.attention_input = attention_input
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
        if self.system is None:
            raise ValueError("system is required: an ODESystem or a picklable rhs(u) callable.")
        system = as_system(self.system)
        dt = check_positive(self.dt, "dt")
        data_dt = dt if self.data_dt is None else check_positive(self.data_dt, "data_dt")
        stride = check_multiple(dt, data_dt, "dt", "data_dt")
        integrator = get_integrator(self.integrator)
        if self.attention_input not in ("S", "S*dt"):
            raise ValueError(f"attention_input must be 'S' or 'S*dt', got {self.attention_input!r}.")
        correction = get_correction(self.correction, attention_input=self.attention_input)
        check_positive(self.data_fraction, "data_fraction")
        if self.data_fraction > 1:
            raise ValueError(f"data_fraction must be in (0, 1], got {self.data_fraction!r}.")
        for name, minimum in (("depth", 1), ("width", 1), ("rollout_steps", 1), ("max_epochs", 0),
                              ("batch_size", 1), ("n_iter_no_change", 1), ("verbose", 0)):
            check_count(getattr(self, name), name, minimum=minimum)
        check_positive(self.learning_rate, "learning_rate")
        check_non_negative(self.input_noise, "input_noise")
        check_non_negative(self.tol, "tol")
        if check_positive(self.validation_fraction, "validation_fraction") >= 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}.")
        for name in ("early_stopping", "warm_start", "skip_connection", "compile"):
            _check_bool(getattr(self, name), name)
        if self.activation is not None and not isinstance(self.activation, str):
            raise TypeError(f"activation must be None or a str, got {self.activation!r}.")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}.")
        return system, dt, stride, integrator, correction

    # --- fitting --------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Train the correction on trajectories.

        Parameters
        ----------
        X : array-like of shape (n_trajectories, n_times, n_state)
            Fine-step trajectories sampled every ``data_dt`` (a 2-D array is one
            trajectory).
        y : None
            Ignored; present for the scikit-learn API.

        Returns
        -------
        self
        """
        system, dt, stride, integrator, correction = self._check_params()
        fitted = self.warm_start and hasattr(self, "model_")
        X = check_trajectories(X, self.n_features_in_ if fitted else None, owner=type(self).__name__)
        n_state = X.shape[2]
        if system.n_state is not None and system.n_state != n_state:
            raise ValueError(f"X has n_state={n_state} but system has n_state={system.n_state}.")
        if X.shape[1] <= stride:
            raise ValueError(f"X needs more than dt/data_dt={stride} times per trajectory, got {X.shape[1]}.")
        device = resolve_device(self.device)
        rng = check_random_state(self.random_state, "random_state")
        generator = torch.Generator().manual_seed(int(rng.randint(2**31 - 1)))

        n_keep = int(np.floor(self.data_fraction * len(X) + 1e-9))
        if n_keep < 1:
            raise ValueError(f"data_fraction={self.data_fraction} of {len(X)} trajectories leaves none to train on.")
        keep = np.sort(rng.permutation(len(X))[:n_keep])
        validation = None
        if self.early_stopping and correction.uses_network:
            n_val = int(np.ceil(self.validation_fraction * n_keep))
            if n_keep - n_val < 1:
                raise ValueError(f"early_stopping needs at least 2 training trajectories, got {n_keep} "
                                 f"(data_fraction={self.data_fraction} of {len(X)}).")
            shuffled = rng.permutation(keep)
            validation, keep = X[np.sort(shuffled[:n_val])][:, ::stride], np.sort(shuffled[n_val:])
        self.train_indices_ = keep

        step = _base_step(system, integrator, dt, correction, n_state, self.rollout_steps, device)
        if fitted:
            old = self.model_
            step = step.with_network(old.network, old.input_mean, old.input_scale, old.output_scale).to(device)
        data = TeacherForcedData(X[keep], stride, step, device, self.batch_size)
        if not fitted:
            step = self._new_model(step, data, n_state, generator, device)
        self.model_, self.device_, self.n_features_in_ = step, device, n_state
        self.data_dt_, self.stride_ = dt / stride, stride
        self.loss_curve_ = [] if not fitted else list(getattr(self, "loss_curve_", []))
        self.validation_scores_ = [] if validation is not None else None
        self.n_iter_ = getattr(self, "n_iter_", 0) if fitted else 0
        if not correction.uses_network or self.max_epochs == 0:
            self.best_loss_ = self.best_validation_score_ = None
            return self

        loss_scale = data.loss_scale
        if self.rollout_steps > 1:
            data = RolloutData(X[keep], stride, self.rollout_steps, device)
        stopper = EarlyStopping(self.tol, self.n_iter_no_change)

        def log(epoch, loss, score):
            self.loss_curve_.append(loss)
            if score is not None:
                self.validation_scores_.append(score)

        validation_score = None if validation is None else (lambda: self._score_trajectories(validation))
        if self.compile:
            step.compile()
        step.network.train()
        epochs, stopped, interrupted = train_epochs(
            step, data, loss_scale=loss_scale, max_epochs=self.max_epochs,
            batch_size=self.batch_size, learning_rate=self.learning_rate, input_noise=self.input_noise,
            generator=generator, stopper=stopper, validation_score=validation_score,
            verbose=self.verbose, log=log,
        )
        step.network.eval()
        stopper.restore(step.network)
        self.n_iter_ += epochs
        best = stopper.best_score if np.isfinite(stopper.best_score) else None
        if validation is not None:
            self.best_validation_score_, self.best_loss_ = best, None
        else:
            self.best_validation_score_, self.best_loss_ = None, None if best is None else -best
        if not stopped and not interrupted:
            warnings.warn(f"max_epochs={self.max_epochs} reached and the optimisation hasn't converged yet.",
                          ConvergenceWarning, stacklevel=2)
        return self

    def _new_model(self, step, data, n_state, generator, device):
        """A fresh network with scaling fitted to ``data`` (the correction starts at zero)."""
        mean, scale, output_scale = data.fit_scaling(step)
        if not step.correction.uses_network:
            return step.to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
            network = self._build_network(n_state, step.correction)
        return step.with_network(network, mean, scale, output_scale).to(device)

    def _build_network(self, n_state, correction):
        """The correction network these parameters describe, in ``dtype``, its last layer zero."""
        activation = correction.default_activation if self.activation is None else self.activation
        network = build_network(n_state, int(self.depth), int(self.width), activation, bool(self.skip_connection),
                                self.module)
        return network.to(_DTYPES[self.dtype])

    # --- prediction -------------------------------------------------------------------------

    def predict(self, X, n_steps=100, save_every=1, final_only=False):
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

        Returns
        -------
        paths : ndarray of shape (n, n_steps // save_every + 1, n_state), float64
            ``paths[:, 0]`` is ``X``. Trajectories that blow up hold non-finite values
            from then on, with a :class:`RolloutWarning` saying how many and from which
            step.
        """
        check_is_fitted(self, "model_")
        n_steps = check_count(n_steps, "n_steps", minimum=0)
        save_every = check_count(save_every, "save_every")
        _check_bool(final_only, "final_only")
        try:
            u0 = check_array(X, dtype=np.float64, input_name="X")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"X (initial conditions, shape (n, n_state)): {exc}") from exc
        u0 = check_states(u0, self.n_features_in_, "X", owner=type(self).__name__)
        n_saved = 1 if final_only else n_steps // save_every + 1
        paths = np.empty((len(u0), n_saved, self.n_features_in_))
        first_bad = np.full(len(u0), -1)
        model = self.model_.compile() if self.compile else self.model_
        rollout_step = model.compiled_rollout_step or model.rollout_step
        # Read at each call: the thread count may differ from that at fit (a worker process).
        block_rows = cpu_block_rows(model.network) if self.device_.type == "cpu" else None
        with torch.no_grad():
            for start in range(0, len(u0), self.batch_size):
                stop = min(start + self.batch_size, len(u0))
                u = torch.as_tensor(u0[start:stop], device=self.device_)
                host = torch.from_numpy(paths[start:stop])
                # On the CPU the batch goes into the output 8 states at a time; on a GPU it
                # is gathered there and copied back once.
                on_cpu = self.device_.type == "cpu"
                out = host if on_cpu else torch.empty(host.shape, dtype=u.dtype, device=u.device)
                saved = _StateRecorder(out, block=8 if on_cpu and not final_only else 1)
                broken = torch.full((len(u),), -1, device=u.device)
                if not final_only:
                    saved.append(u)
                for n in range(1, n_steps + 1):
                    u, finite = rollout_step(u, block_rows)
                    broken = torch.where((broken < 0) & ~finite, n, broken)
                    if not final_only and n % save_every == 0:
                        saved.append(u)
                if final_only:
                    saved.append(u)
                saved.flush()
                if out is not host:
                    host.copy_(out)
                first_bad[start:stop] = broken.cpu().numpy()
        _warn_on_blow_up(first_bad)
        return paths[:, 0] if final_only else paths

    def score(self, X, y=None):
        """Negative trajectory MSE of rollouts from ``X[:, 0]`` against ``X`` (higher is better).

        ``X`` is sampled every ``data_dt`` as in ``fit``; rollouts that blow up count as
        an MSE of ``MAX_SCORE_ERROR`` (1e100), so the score stays finite.
        """
        check_is_fitted(self, "model_")
        X = check_trajectories(X, self.n_features_in_, owner=type(self).__name__)[:, :: self.stride_]
        if X.shape[1] < 2:
            raise ValueError(f"X needs at least {self.stride_ + 1} times to score one step.")
        return self._score_trajectories(X)

    def _score_trajectories(self, X):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RolloutWarning)
            paths = self.predict(X[:, 0], n_steps=X.shape[1] - 1)
        error = trajectory_mse(X, np.nan_to_num(paths, nan=np.inf))
        return -min(error, MAX_SCORE_ERROR)

    # --- scikit-learn plumbing -----------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags

    def __getstate__(self):
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        if model is not None:
            buffer = io.BytesIO()
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buffer)
            state["_model_bytes"] = buffer.getvalue()
            state["device_"] = str(state["device_"])
        return state

    def __setstate__(self, state):
        state = dict(state)
        model_bytes = state.pop("_model_bytes", None)
        weights = state.pop("_model_weights", None)
        self.__dict__.update(state)
        if model_bytes is not None:
            weights = torch.load(io.BytesIO(model_bytes), map_location="cpu", weights_only=True)
        if weights is not None:
            self.device_ = _loadable_device(self.device_)
            self.model_ = self._rebuild_model(weights)

    def _rebuild_model(self, weights):
        """Rebuild ``model_`` from parameters and a CPU state dict, on ``device_``."""
        system, dt, _, integrator, correction = self._check_params()
        with warnings.catch_warnings():  # already said at fit time
            warnings.simplefilter("ignore", UserWarning)
            step = _base_step(system, integrator, dt, correction, self.n_features_in_, device=self.device_)
        if correction.uses_network:
            network = self._build_network(self.n_features_in_, correction)
            empty = torch.empty(self.n_features_in_, dtype=torch.float64)
            step = step.with_network(network, empty, empty.clone(), empty.clone())
            step.load_state_dict(weights)
            step.network.eval()
        return step.to(self.device_)


class _StateRecorder:
    """Appends states ``(n, n_state)`` to ``out[:, 0], out[:, 1], ...`` of an
    ``(n, n_saved, n_state)`` output, ``block`` at a time.

    Staged time-major and written as a block, each row's consecutive states land
    together: in host memory, writing every state straight into ``out[:, j]`` touches one
    page per row per state, which costs several times the copy itself. ``block=1`` writes
    straight through.
    """

    def __init__(self, out, block):
        self.out, self.saved, self.count = out, 0, 0
        block = min(block, out.shape[1])
        self.stage = out.new_empty((block, out.shape[0], out.shape[2])) if block > 1 else None

    def append(self, u):
        if self.stage is None:
            self.out[:, self.saved] = u
            self.saved += 1
            return
        self.stage[self.count] = u
        self.count += 1
        if self.count == len(self.stage):
            self.flush()

    def flush(self):
        if self.count:
            self.out[:, self.saved : self.saved + self.count] = self.stage[: self.count].transpose(0, 1)
            self.saved, self.count = self.saved + self.count, 0


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}.")


def _loadable_device(device):
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        warnings.warn(f"this model was fitted on {device} but CUDA is not available here; it is loaded on the CPU.",
                      UserWarning, stacklevel=3)
        return torch.device("cpu")
    return device


class NumpyRHS:
    """Call a NumPy-only ``rhs`` on torch tensors through host round trips (no gradients)."""

    def __init__(self, rhs):
        self.rhs = rhs

    def __call__(self, u):
        du = self.rhs(u.detach().cpu().numpy())
        return torch.as_tensor(np.asarray(du), dtype=u.dtype, device=u.device)


def _base_step(system, integrator, dt, correction, n_state, rollout_steps=1, device="cpu"):
    """The uncorrected :class:`HybridStep` of a system on ``device`` (one matrix product per
    slope when the system is linear)."""
    rhs = _torch_rhs(system, n_state, rollout_steps, device)
    return HybridStep(rhs, integrator, dt, correction, linear_operator=linear_operator_of(system)).to(device)


def _torch_rhs(system, n_state=None, rollout_steps=1, device="cpu"):
    """``system.rhs`` if it works on torch tensors, else a :class:`NumpyRHS` with a warning."""
    probe = torch.zeros((2, n_state or system.n_state or 1), dtype=torch.float64, device=device)
    try:
        works = isinstance(system.rhs(probe), torch.Tensor)
    except Exception:
        works = False
    if works:
        return system.rhs
    if rollout_steps > 1:
        raise ValueError("rollout_steps > 1 backpropagates through the integrator, so system.rhs must accept "
                         "torch tensors (use torch functions, or x.sin() style methods, in your rhs).")
    warnings.warn("system.rhs does not accept torch tensors; it is called through NumPy round trips, which is "
                  "slower (and copies to the host on a GPU). Write it with torch-compatible operations to avoid this.",
                  UserWarning, stacklevel=3)
    return NumpyRHS(system.rhs)


def _warn_on_blow_up(first_bad):
    """Warn about rollouts that became non-finite; ``first_bad`` is -1 or the first bad step."""
    bad = first_bad >= 0
    if bad.any():
        warnings.warn(f"{int(bad.sum())} of {len(first_bad)} rollouts became non-finite, the first at step "
                      f"{int(first_bad[bad].min())}.", RolloutWarning, stacklevel=3)


def _named_solver(name, correction, what):
    """A subclass whose only difference is the default of ``correction``."""
    base = inspect.signature(HybridSolverRegressor.__init__)
    signature = base.replace(parameters=[
        p.replace(default=correction) if p.name == "correction" else p for p in base.parameters.values()
    ])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        HybridSolverRegressor.__init__(**bound.arguments)

    __init__.__signature__ = signature
    doc = (f":class:`HybridSolverRegressor` with ``correction={correction!r}`` by default ({what}).\n\n"
           "    All parameters and attributes are those of :class:`HybridSolverRegressor`.\n")
    return type(name, (HybridSolverRegressor,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


AttNSSolver = _named_solver("AttNSSolver", "attns", "the AttNS method, paper Eq. 10")
AttNSMultiplicativeSolver = _named_solver("AttNSMultiplicativeSolver", "attns-m", "paper Eq. 6")
NeurVecSolver = _named_solver("NeurVecSolver", "neurvec", "NeurVec")
CSMSolver = _named_solver("CSMSolver", "csm", "a network correcting the solver's output")
FSNetSolver = _named_solver("FSNetSolver", "fsnet", "NeurVec with FSNet's sine activation")
