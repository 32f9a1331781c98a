"""ODE systems du/dt = f(u): the paper's three benchmarks and a wrapper for a user's own.

Every system takes a batch of states of shape ``(n, n_state)`` and returns the time
derivative in the same layout, type, dtype and device: NumPy in, NumPy out; torch in,
torch out. Physical parameters are constructor arguments, so a system is a
scikit-learn style object that clones, pickles and prints its parameters.

Dtype policy: the equations are evaluated in the dtype of the input; reference data is
made in float64 (see :mod:`sklearn_attns.datasets`).

Systems on a grid (method-of-lines PDEs: :class:`Burgers`, :class:`FitzHughNagumo`,
:class:`GrayScott`) say so with a :class:`~sklearn_attns.grids.GridLayout` as their
``layout``: ``n_fields`` fields on ``n_points`` points, flattened field-major
(``u.reshape(n, n_fields, n_points)``). Ordinary ODEs have ``layout = None``.
"""

import numbers
import pickle

import numpy as np
from sklearn.base import BaseEstimator

from ._array import like, namespace
from ._validation import check_count as _check_count
from ._validation import check_non_negative as _check_non_negative
from ._validation import check_positive as _check_positive
from ._validation import check_random_state
from ._validation import check_states as _check_states
from .grids import GridLayout, roll

__all__ = ["ODESystem", "SpringMass", "ParametricSpringMass", "ElasticPendulum", "KLinkPendulum", "Burgers",
           "FitzHughNagumo", "GrayScott", "GravitationalNBody", "as_system", "linear_operator_of"]


class ODESystem(BaseEstimator):
    """An ODE ``du/dt = rhs(...)`` on batches of states, autonomous or conditioned.

    An autonomous system without parameters has ``rhs(u)``. A system that depends on
    time, on parameters that vary between trajectories, or on an input signal given as
    data (a drive, a control) is *conditioned*: its right-hand side is
    ``rhs(t, u, p)``, or ``rhs(t, u, p, w)`` with inputs, where, for a batch of ``n``
    states, ``t`` has shape ``(n,)``, ``u`` ``(n, n_state)``, ``p`` ``(n, n_params)``
    (``(n, 0)`` without parameters) and ``w`` ``(n, n_inputs)``.

    Parameters
    ----------
    rhs : callable
        The right-hand side as above, returning ``(n, n_state)``. It must accept the
        array type it is given (NumPy for data generation; torch tensors when a hybrid
        solver trains or predicts). Define it with ``def`` at module level so that it
        pickles (a lambda or a nested function does not).
    n_state : int
        Dimension of the state.
    n_params : int, default=0
        Parameters per trajectory (one row of ``params`` per trajectory).
    n_inputs : int, default=0
        Components of the input signal sampled along each trajectory.
    time_dependent : bool, default=False
        Whether ``rhs`` depends on ``t`` explicitly.
    input_interpolation : {"linear", "hold"}, default="linear"
        Between two samples of the input signal, ``w`` is interpolated linearly or held
        at the earlier sample.
    time_features : callable, default=None
        ``time_features(t) -> (n, k)`` array, what a correction network sees of the
        time (for a drive of known frequency ``omega``, ``cos(omega t)`` and
        ``sin(omega t)`` generalise beyond the training times); None is ``t`` itself.
        Used only when ``time_dependent``; same array-type rules as ``rhs``.
    initial_conditions : callable, default=None
        ``initial_conditions(n, rng) -> array (n, n_state)`` with ``rng`` a
        ``numpy.random.RandomState``; needed only by :meth:`sample_initial_conditions`.
    name : str, default=None
        A label used in reports.
    layout : GridLayout, default=None
        For a state made of fields on a grid: how it is laid out (see
        :class:`~sklearn_attns.grids.GridLayout`; its ``n_state`` must equal ``n_state``).
        Local corrections (``module="conv"``) need it. None for an ordinary ODE.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.systems import ODESystem
    >>> def decay(u):
    ...     return -u
    >>> system = ODESystem(rhs=decay, n_state=2)
    >>> system.rhs(np.ones((3, 2))).shape
    (3, 2)

    A forced, damped oscillator whose damping and drive vary between trajectories:

    >>> def forced(t, u, p):
    ...     x, v = u[:, 0], u[:, 1]
    ...     return np.stack([v, -p[:, 0] * v - x + p[:, 1] * np.cos(t)], axis=1)
    >>> system = ODESystem(rhs=forced, n_state=2, n_params=2, time_dependent=True)
    >>> system.evaluate(np.zeros(3), np.ones((3, 2)), np.full((3, 2), 0.5)).shape
    (3, 2)
    """

    # What a subclass with its own constructor (the built-in systems) takes: autonomous,
    # without parameters or inputs, not on a grid, unless it says otherwise.
    n_params, n_inputs, time_dependent, input_interpolation, time_features = 0, 0, False, "linear", None
    layout = None

    def __init__(self, rhs=None, n_state=None, n_params=0, n_inputs=0, time_dependent=False,
                 input_interpolation="linear", time_features=None, initial_conditions=None, name=None,
                 layout=None):
        self.rhs = rhs
        self.n_state = n_state
        self.n_params = n_params
        self.n_inputs = n_inputs
        self.time_dependent = time_dependent
        self.input_interpolation = input_interpolation
        self.time_features = time_features
        self.initial_conditions = initial_conditions
        self.name = name
        self.layout = layout

    @property
    def conditioned(self):
        """Whether ``rhs`` takes ``(t, u, p[, w])`` rather than ``u`` alone."""
        return bool(self.time_dependent) or self.n_params > 0 or self.n_inputs > 0

    def evaluate(self, t, u, p=None, w=None):
        """``du/dt`` at times ``t`` (n,), states ``u`` (n, n_state), parameters ``p``
        (n, n_params) and inputs ``w`` (n, n_inputs), whichever the system takes."""
        if not self.conditioned:
            return self.rhs(u)
        if p is None:
            p = u[:, :0]
        return self.rhs(t, u, p) if self.n_inputs == 0 else self.rhs(t, u, p, w)

    def time_feature_values(self, t):
        """What a correction network sees of the time: ``time_features(t)`` (n, k), or
        ``t`` as one column; ``(n, 0)`` for a system that does not depend on time."""
        if not self.time_dependent:
            return t[:, None][:, :0]
        return t[:, None] if self.time_features is None else self.time_features(t)

    def sample_initial_conditions(self, n, random_state=None):
        """Draw ``n`` initial states, shape ``(n, n_state)``, float64."""
        n = _check_count(n, "n")
        rng = check_random_state(random_state)
        if self.n_state is not None:
            _check_count(self.n_state, "n_state")
        if self.initial_conditions is None:
            raise ValueError(
                "This ODESystem has no initial_conditions sampler; pass "
                "initial_conditions=callable(n, rng) or give initial conditions explicitly."
            )
        if not callable(self.initial_conditions):
            raise TypeError(f"initial_conditions must be a callable(n, rng), got "
                            f"{type(self.initial_conditions).__name__}.")
        try:
            u0 = np.asarray(self.initial_conditions(n, rng), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"initial_conditions(n, rng) must return real numbers: {exc}") from exc
        if u0.shape != (n, self.n_state):
            raise ValueError(
                f"initial_conditions(n, rng) must return shape {(n, self.n_state)}, got {u0.shape}."
            )
        if not np.isfinite(u0).all():
            raise ValueError("initial_conditions(n, rng) returned non-finite values (NaN or inf).")
        return u0

    @property
    def label(self):
        return getattr(self, "name", None) or type(self).__name__

    def _constant(self, name, u):
        """Return the constant array ``self._constants()[name]`` as the type of ``u``, cached.

        Moving a matrix to the GPU on every right-hand-side call would dominate a rollout,
        so each (name, dtype, device) is converted once; changing a parameter clears it.
        """
        cache = self._cache()
        # Names, not dtype and device objects: torch 2.11's Dynamo cannot hash a NumPy dtype key.
        key = (name, str(u.dtype), str(getattr(u, "device", "numpy")))
        if key not in cache:
            cache[key] = like(self._constants()[name], u)
        return cache[key]

    def _constants(self):
        return {}

    def _parameter(self, name):
        """A physical parameter as ``_check_parameters`` returns it, checked once per change.

        The right-hand side reads its parameters on every call; checking them each time
        would cost more than the arithmetic of a small batch.
        """
        cache = self._cache()
        if "parameters" not in cache:
            cache["parameters"] = self._check_parameters()
        return cache["parameters"][name]

    def _check_parameters(self):
        return {}

    def _cache(self):
        """The converted constants and checked parameters, emptied by any change of an attribute.

        Read as an attribute, which ``torch.compile`` traces on every torch version; a
        ``__dict__.setdefault`` here made torch 2.11's Dynamo skip the compiled steps whole.
        """
        try:
            return self._constant_cache
        except AttributeError:
            cache = {}
            object.__setattr__(self, "_constant_cache", cache)  # not a change: keep __setattr__ out
            return cache

    def __setattr__(self, name, value):
        self.__dict__.pop("_constant_cache", None)
        super().__setattr__(name, value)

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_constant_cache", None)
        for key in ("rhs", "initial_conditions"):
            value = state.get(key)
            if value is None:
                continue
            try:
                pickle.dumps(value)
            except Exception as exc:
                raise pickle.PicklingError(
                    f"ODESystem.{key}={value!r} cannot be pickled ({exc}). Saving a model, cloning "
                    "it into worker processes and joblib.dump need it to pickle: define the function "
                    "with `def` at the top level of an importable module instead of a lambda, a "
                    "nested function or a function in __main__ of a script run by workers."
                ) from exc
        return state


class SpringMass(ODESystem):
    """Chain of ``n_masses`` masses joined by ``n_masses + 1`` springs between two walls.

    State ``u = (q_1..q_d, p_1..p_d)`` (positions, then momenta)::

        dq_i/dt = p_i / m_i
        dp_i/dt = k_i (q_{i-1} - q_i) + k_{i+1} (q_{i+1} - q_i),   q_0 = q_{d+1} = 0

    The system is linear, ``du/dt = A u``; :attr:`linear_operator` exposes ``A``.

    Parameters
    ----------
    n_masses : int, default=20
        Number of masses ``d``; ``n_state = 2 d``.
    random_state : int, default=0
        Seed for the spring constants and masses, drawn as in the SRNN benchmark code:
        ``k = 5 max(N(1, 1/4), 0.2)``, ``m = max(N(1, 1/4), 0.2)`` (that code set no seed;
        we fix 0 so the benchmark is reproducible).
    spring_constants : array-like of shape (n_masses + 1,), default=None
        Explicit spring constants, overriding the random draw.
    masses : array-like of shape (n_masses,), default=None
        Explicit masses, overriding the random draw.
    ic_range : float, default=2.5
        Initial positions and momenta are drawn from ``U[-ic_range, ic_range]`` (Table 4).

    Examples
    --------
    >>> from sklearn_attns.systems import SpringMass
    >>> system = SpringMass(n_masses=20, random_state=0)
    >>> system.n_state
    40
    >>> system.rhs(system.sample_initial_conditions(5, random_state=0)).shape
    (5, 40)
    """

    def __init__(self, n_masses=20, random_state=0, spring_constants=None, masses=None, ic_range=2.5):
        self.n_masses = n_masses
        self.random_state = random_state
        self.spring_constants = spring_constants
        self.masses = masses
        self.ic_range = ic_range

    @property
    def n_state(self):
        return 2 * _check_count(self.n_masses, "n_masses")

    def _parameters(self):
        d = _check_count(self.n_masses, "n_masses")
        # An int, not a generator: the parameters are drawn again on every use, and must
        # come out the same each time.
        seed = _check_count(self.random_state, "random_state", minimum=0)
        if seed >= 2**32:
            raise ValueError(f"random_state must be < 2**32, got {seed}.")
        rng = np.random.RandomState(seed)
        # std 1/4 as printed in the benchmark's notes; spring constants first, then masses.
        k = 5.0 * np.maximum(rng.normal(1.0, 0.25, size=d + 1), 0.2)
        m = np.maximum(rng.normal(1.0, 0.25, size=d), 0.2)
        for name, given in (("spring_constants", self.spring_constants), ("masses", self.masses)):
            if given is None:
                continue
            try:
                value = np.asarray(given, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{name} must be an array of real numbers: {exc}") from exc
            if np.iscomplexobj(given):
                raise TypeError(f"{name} must be real.")
            if name == "masses":
                m = value
            else:
                k = value
        if k.shape != (d + 1,) or m.shape != (d,):
            raise ValueError(
                f"spring_constants must have shape ({d + 1},) and masses ({d},), got {k.shape} and {m.shape}."
            )
        if not (np.all(k > 0) and np.all(np.isfinite(k)) and np.all(m > 0) and np.all(np.isfinite(m))):
            raise ValueError("spring_constants and masses must be positive and finite.")
        return k, m

    @property
    def k_(self):
        return self._parameters()[0]

    @property
    def m_(self):
        return self._parameters()[1]

    @property
    def linear_operator(self):
        """The matrix ``A`` (float64, ``(n_state, n_state)``) with ``du/dt = A u``."""
        k, m = self._parameters()
        d = len(m)
        stiffness = np.diag(-(k[:-1] + k[1:])) + np.diag(k[1:-1], 1) + np.diag(k[1:-1], -1)
        a = np.zeros((2 * d, 2 * d))
        a[:d, d:] = np.diag(1.0 / m)
        a[d:, :d] = stiffness
        return a

    def _constants(self):
        k, m = self._parameters()
        return {"operator_t": np.ascontiguousarray(self.linear_operator.T), "k": k, "m": m}

    def rhs(self, u):
        u = _check_states(u, self.n_state)
        return u @ self._constant("operator_t", u)

    def sample_initial_conditions(self, n, random_state=None):
        n = _check_count(n, "n")
        rng = check_random_state(random_state)
        c = _check_positive(self.ic_range, "ic_range")
        return rng.uniform(-c, c, size=(n, self.n_state))

    def energy(self, u):
        """Total energy ``sum p^2/(2m) + sum k/2 (q_i - q_{i-1})^2`` per state."""
        u = _check_states(u, self.n_state)
        d = self.n_masses
        xp = namespace(u)
        q, p = u[:, :d], u[:, d:]
        zero = q[:, :1] * 0
        stretch = xp.concatenate([q, zero], 1) - xp.concatenate([zero, q], 1)
        k, m = self._constant("k", u), self._constant("m", u)
        return (p**2 / (2 * m)).sum(1) + (0.5 * k * stretch**2).sum(1)


class ParametricSpringMass(SpringMass):
    """:class:`SpringMass` whose stiffness and mass scales vary between trajectories.

    Two parameters per trajectory, ``p = (stiffness_scale, mass_scale)``: the spring
    constants are ``stiffness_scale * k`` and the masses ``mass_scale * m``, with ``k`` and
    ``m`` those of :class:`SpringMass` (same constructor parameters)::

        dq_i/dt = p_i / (mass_scale m_i)
        dp_i/dt = stiffness_scale (k_i (q_{i-1} - q_i) + k_{i+1} (q_{i+1} - q_i))

    ``rhs(t, u, p)`` (the time is not used). :meth:`sample_params` draws both scales from
    ``param_range``.

    Parameters
    ----------
    n_masses, random_state, spring_constants, masses, ic_range
        As in :class:`SpringMass`.
    param_range : tuple of float, default=(0.5, 2.0)
        Both scales are drawn log-uniformly from this range.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.systems import ParametricSpringMass, SpringMass
    >>> system = ParametricSpringMass(n_masses=3)
    >>> u = system.sample_initial_conditions(2, random_state=0)
    >>> unit = np.ones((2, 2))  # both scales 1: the plain chain
    >>> bool(np.allclose(system.evaluate(np.zeros(2), u, unit), SpringMass(n_masses=3).rhs(u)))
    True
    """

    n_params = 2

    def __init__(self, n_masses=20, random_state=0, spring_constants=None, masses=None, ic_range=2.5,
                 param_range=(0.5, 2.0)):
        super().__init__(n_masses, random_state, spring_constants, masses, ic_range)
        self.param_range = param_range

    @property
    def linear_operator(self):
        return None  # one operator per trajectory

    def _constants(self):
        k, m = self._parameters()
        stiffness = np.diag(-(k[:-1] + k[1:])) + np.diag(k[1:-1], 1) + np.diag(k[1:-1], -1)
        return {"stiffness_t": np.ascontiguousarray(stiffness.T), "inverse_mass": 1.0 / m, "k": k, "m": m}

    def rhs(self, t, u, p):
        u = _check_states(u, self.n_state)
        d = self.n_masses
        q, momenta = u[:, :d], u[:, d:]
        xp = namespace(u)
        dq = momenta * self._constant("inverse_mass", u) / p[:, 1:2]
        dp = (q @ self._constant("stiffness_t", u)) * p[:, :1]
        return xp.concatenate([dq, dp], 1)

    def energy(self, u, p):
        """Total energy per state with the scales ``p`` (n, 2) of each row."""
        u = _check_states(u, self.n_state)
        d = self.n_masses
        xp = namespace(u)
        q, momenta = u[:, :d], u[:, d:]
        zero = q[:, :1] * 0
        stretch = xp.concatenate([q, zero], 1) - xp.concatenate([zero, q], 1)
        k, m = self._constant("k", u), self._constant("m", u)
        return ((momenta**2 / (2 * m)).sum(1) / p[:, 1]) + p[:, 0] * (0.5 * k * stretch**2).sum(1)

    def sample_params(self, n, random_state=None):
        """Draw ``n`` rows of ``(stiffness_scale, mass_scale)``, log-uniform in
        ``param_range``, float64."""
        n = _check_count(n, "n")
        rng = check_random_state(random_state)
        low, high = (_check_positive(v, "param_range") for v in self.param_range)
        return np.exp(rng.uniform(np.log(low), np.log(high), size=(n, 2)))


class ElasticPendulum(ODESystem):
    """A mass on a spring swinging in a plane; state ``(theta, r, theta_dot, r_dot)``.

    ::

        theta'' = (-g sin(theta) - 2 theta' r') / r
        r''     = r theta'^2 - (k/m)(r - l0) + g cos(theta)

    (The paper prints ``theta' r'`` without the factor 2, a typo: the Lagrangian gives 2.)

    Parameters
    ----------
    k : float, default=40.0
        Spring constant.
    m : float, default=1.0
        Mass.
    l0 : float, default=10.0
        Rest length; also the initial length ``r0``.
    g : float, default=9.8
        Gravity (the paper's Table 4; NeurVec's code uses 9.81).
    theta_max : float, default=pi/8
        Initial angles are drawn from ``U[0, theta_max]``; velocities start at 0.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.systems import ElasticPendulum
    >>> system = ElasticPendulum()
    >>> float(system.rhs(np.array([[0.0, 10.0, 0.0, 0.0]]))[0, 3])  # r'' = g at rest length
    9.8
    """

    n_state = 4

    def __init__(self, k=40.0, m=1.0, l0=10.0, g=9.8, theta_max=np.pi / 8):
        self.k = k
        self.m = m
        self.l0 = l0
        self.g = g
        self.theta_max = theta_max

    def _check_parameters(self):
        return {"k": _check_positive(self.k, "k"), "m": _check_positive(self.m, "m"),
                "l0": _check_positive(self.l0, "l0"), "g": _check_non_negative(self.g, "g"),
                "theta_max": _check_non_negative(self.theta_max, "theta_max")}

    def rhs(self, u):
        u = _check_states(u, 4)
        xp = namespace(u)
        k, m, l0, g = (self._parameter(name) for name in ("k", "m", "l0", "g"))
        theta, r, w, v = u[:, 0], u[:, 1], u[:, 2], u[:, 3]
        theta_acc = (-g * xp.sin(theta) - 2.0 * w * v) / r
        r_acc = r * w**2 - (k / m) * (r - l0) + g * xp.cos(theta)
        return xp.stack([w, v, theta_acc, r_acc], 1)

    def sample_initial_conditions(self, n, random_state=None):
        n = _check_count(n, "n")
        rng = check_random_state(random_state)
        u0 = np.zeros((n, 4))
        u0[:, 0] = rng.uniform(0.0, self._parameter("theta_max"), size=n)
        u0[:, 1] = self._parameter("l0")
        return u0

    def energy(self, u):
        """Kinetic plus elastic plus gravitational energy per state."""
        u = _check_states(u, 4)
        xp = namespace(u)
        k, m, l0, g = (self._parameter(name) for name in ("k", "m", "l0", "g"))
        theta, r, w, v = u[:, 0], u[:, 1], u[:, 2], u[:, 3]
        kinetic = 0.5 * m * (v**2 + (r * w) ** 2)
        return kinetic + 0.5 * k * (r - l0) ** 2 - m * g * r * xp.cos(theta)


class KLinkPendulum(ODESystem):
    """A chain of ``n_links`` unit masses on unit massless rods; state ``(theta, theta_dot)``.

    Angles are measured from the downward vertical. ``A(theta) theta'' = b`` with
    ``A_ij = c_ij cos(theta_i - theta_j)``,
    ``b_i = -sum_j c_ij theta_j'^2 sin(theta_i - theta_j) - (K - i + 1) g sin(theta_i)``
    and ``c_ij = K - max(i, j) + 1`` (1-indexed).

    Parameters
    ----------
    n_links : int, default=2
        Number of links ``K``; ``n_state = 2 K``.
    g : float, default=9.8
        Gravity.
    theta_max : float, default=pi/8
        Initial angles are drawn from ``U[0, theta_max]^K``; velocities start at 0.

    Examples
    --------
    >>> from sklearn_attns.systems import KLinkPendulum
    >>> KLinkPendulum(n_links=3).n_state
    6
    """

    def __init__(self, n_links=2, g=9.8, theta_max=np.pi / 8):
        self.n_links = n_links
        self.g = g
        self.theta_max = theta_max

    @property
    def n_state(self):
        return 2 * _check_count(self.n_links, "n_links")

    def _constants(self):
        n = _check_count(self.n_links, "n_links")
        idx = np.arange(1, n + 1)
        # c_ij: how many masses hang at or below both joints i and j; weight_i = c_ii.
        return {"c": n - np.maximum.outer(idx, idx) + 1.0, "weight": np.arange(n, 0, -1, dtype=np.float64)}

    def _check_parameters(self):
        return {"g": _check_non_negative(self.g, "g"),
                "theta_max": _check_non_negative(self.theta_max, "theta_max")}

    def rhs(self, u):
        u = _check_states(u, self.n_state)
        xp = namespace(u)
        n = self.n_links
        theta, w = u[:, :n], u[:, n:]
        c, weight = self._constant("c", u), self._constant("weight", u)
        diff = theta[:, :, None] - theta[:, None, :]
        mass_matrix = c * xp.cos(diff)
        b = -(c * xp.sin(diff) * (w**2)[:, None, :]).sum(2) - weight * self._parameter("g") * xp.sin(theta)
        # LAPACK has no half precision: solve such inputs in float32, answer in their dtype.
        if xp is np:
            work = np.promote_types(u.dtype, np.float32)
            acc = np.linalg.solve(mass_matrix.astype(work, copy=False), b[..., None].astype(work, copy=False))
            acc = acc[..., 0].astype(u.dtype, copy=False)
        else:
            work = xp.promote_types(u.dtype, xp.float32)
            acc = xp.linalg.solve(mass_matrix.to(work), b.to(work)).to(u.dtype)
        return xp.concatenate([w, acc], 1)

    def sample_initial_conditions(self, n, random_state=None):
        n = _check_count(n, "n")
        rng = check_random_state(random_state)
        u0 = np.zeros((n, self.n_state))
        u0[:, : self.n_links] = rng.uniform(0.0, self._parameter("theta_max"), size=(n, self.n_links))
        return u0

    def energy(self, u):
        """Kinetic plus gravitational energy per state (unit masses and lengths)."""
        u = _check_states(u, self.n_state)
        xp = namespace(u)
        n = self.n_links
        theta, w = u[:, :n], u[:, n:]
        c, weight = self._constant("c", u), self._constant("weight", u)
        diff = theta[:, :, None] - theta[:, None, :]
        kinetic = 0.5 * (c * xp.cos(diff) * w[:, :, None] * w[:, None, :]).sum((1, 2))
        return kinetic - self._parameter("g") * (weight * xp.cos(theta)).sum(1)


class _PeriodicGrid(ODESystem):
    """A method-of-lines system: ``n_fields`` fields on ``n_points`` periodic points over ``length``.

    Subclasses set ``n_fields`` and define ``rhs``; the spacing is ``length / n_points``,
    so a longer domain at the same spacing is ``n_points`` and ``length`` scaled together.
    """

    n_fields = 1

    @property
    def layout(self):
        n_points = _check_count(self.n_points, "n_points", minimum=3)
        spacing = _check_positive(self.length, "length") / n_points
        return GridLayout(n_points=n_points, n_fields=self.n_fields, boundary="periodic", spacing=spacing)

    @property
    def n_state(self):
        return self.n_fields * _check_count(self.n_points, "n_points", minimum=3)

    def _grid_parameters(self):
        layout = self.layout
        return {"layout": layout, "spacing": layout.spacing}

    def _laplacian(self, g):
        """The second-order central difference ``(g[i-1] - 2 g[i] + g[i+1]) / h^2`` along the last axis."""
        h = self._parameter("spacing")
        return (roll(g, 1) - 2.0 * g + roll(g, -1)) / (h * h)

    def _smooth_fields(self, n, rng, n_modes, amplitude):
        """``n x n_fields`` random fields ``sum_k c_k sin(2 pi k x / length + phi_k)``, ``k = 1..n_modes``,
        ``c_k ~ N(0, 1) / k``, each scaled to a largest absolute value ``amplitude``; ``(n, n_state)``."""
        n_modes = _check_count(n_modes, "n_modes")
        amplitude = _check_positive(amplitude, "amplitude")
        layout = self.layout
        k = np.arange(1, n_modes + 1)
        c = rng.normal(size=(n, layout.n_fields, n_modes, 1)) / k[:, None]
        phase = rng.uniform(0.0, 2 * np.pi, size=(n, layout.n_fields, n_modes, 1))
        x = 2 * np.pi * np.arange(layout.n_points) / layout.n_points
        fields = (c * np.sin(k[:, None] * x + phase)).sum(2)
        fields *= amplitude / np.abs(fields).max(-1, keepdims=True)
        return layout.from_grid(fields)


class Burgers(_PeriodicGrid):
    """Viscous Burgers equation ``u_t + (u^2 / 2)_x = nu u_xx`` on a periodic interval (method of lines).

    Second-order central differences in conservative flux form on ``n_points`` points
    ``x_i = i h``, ``h = length / n_points``::

        du_i/dt = -(u_{i+1}^2 - u_{i-1}^2) / (4 h) + nu (u_{i-1} - 2 u_i + u_{i+1}) / h^2

    The fluxes telescope, so ``sum_i u_i`` (the mean) is conserved exactly, up to rounding.
    One field: the state is the grid, ``(n, n_points)``; ``layout`` describes it.

    Parameters
    ----------
    n_points : int, default=64
        Grid points (at least 3).
    viscosity : float, default=0.05
        ``nu``. With the defaults, fronts steepen to a few grid spacings by ``t ~ 1`` and
        then decay; classical RK4 is stable up to ``dt ~ 0.13`` (diffusion and advection
        limit it about equally) and at ``dt = 0.05`` is some 1e6 times less accurate
        (mean squared error over ``t <= 4``: about 2e-9) than at ``dt = 0.01``.
    length : float, default=2 pi
        Length of the periodic domain.
    amplitude : float, default=2.0
        Initial fields are scaled to this largest absolute value.
    n_modes : int, default=3
        Initial fields are sums of the lowest ``n_modes`` Fourier modes with random
        amplitudes ``N(0, 1) / k`` and phases (zero mean).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.systems import Burgers
    >>> system = Burgers(n_points=64)
    >>> system.layout.n_points, system.n_state
    (64, 64)
    >>> u = system.sample_initial_conditions(3, random_state=0)
    >>> du = system.rhs(u)
    >>> bool(np.abs(du.sum(1)).max() < 1e-12)  # the mean is conserved
    True
    """

    def __init__(self, n_points=64, viscosity=0.05, length=2 * np.pi, amplitude=2.0, n_modes=3):
        self.n_points = n_points
        self.viscosity = viscosity
        self.length = length
        self.amplitude = amplitude
        self.n_modes = n_modes

    def _check_parameters(self):
        return {**self._grid_parameters(), "viscosity": _check_non_negative(self.viscosity, "viscosity")}

    def rhs(self, u):
        u = _check_states(u, self.n_state)
        flux = u * u
        advection = (roll(flux, 1) - roll(flux, -1)) / (4.0 * self._parameter("spacing"))
        return advection + self._parameter("viscosity") * self._laplacian(u)

    def sample_initial_conditions(self, n, random_state=None):
        n = _check_count(n, "n")
        return self._smooth_fields(n, check_random_state(random_state), self.n_modes, self.amplitude)


class _ReactionDiffusion(_PeriodicGrid):
    """Two fields ``(u, v)`` with ``u_t = D_u u_xx + R_u(u, v)``, ``v_t = D_v v_xx + R_v(u, v)``,
    second-order central differences; subclasses define :meth:`reaction`."""

    n_fields = 2

    def _check_parameters(self):
        return {**self._grid_parameters(), **self._reaction_parameters(),
                "diffusion_u": _check_non_negative(self.diffusion_u, "diffusion_u"),
                "diffusion_v": _check_non_negative(self.diffusion_v, "diffusion_v")}

    def diffusion(self, u):
        """The diffusion part of the right-hand side, ``(D_u u_xx, D_v v_xx)`` discretised, ``(n, n_state)``.

        Alone, it evolves each discrete Fourier mode ``m`` by ``exp(-4 D sin^2(pi m / n_points) t / h^2)``.
        """
        g = self._parameter("layout").to_grid(_check_states(u, self.n_state))
        lap = self._laplacian(g)
        d_u, d_v = self._parameter("diffusion_u"), self._parameter("diffusion_v")
        return namespace(g).concatenate([d_u * lap[:, 0], d_v * lap[:, 1]], 1)

    def reaction(self, u):
        """The reaction part of the right-hand side, point by point, ``(n, n_state)``."""
        g = self._parameter("layout").to_grid(_check_states(u, self.n_state))
        r_u, r_v = self._reaction(g[:, 0], g[:, 1])
        return namespace(g).concatenate([r_u, r_v], 1)

    def rhs(self, u):
        return self.diffusion(u) + self.reaction(u)


class FitzHughNagumo(_ReactionDiffusion):
    """FitzHugh-Nagumo reaction-diffusion (an activator ``u`` and an inhibitor ``v``) on a periodic interval::

        u_t = D_u u_xx + u - u^3 - k - v
        v_t = D_v v_xx + u - v

    the form of PDEBench's diffusion-reaction benchmark (Takamoto et al., 2022), in one
    dimension. The inhibitor diffuses faster (``D_v > D_u``), so random initial fields
    settle into stationary Turing patterns (two to four wavelengths on the default
    domain) over ``t ~ 5-10``. Second-order central differences on ``n_points`` points
    ``x_i = i h``, ``h = length / n_points``; the state is ``(u_0..u_{n-1}, v_0..v_{n-1})``
    (field-major, see ``layout``).

    Parameters
    ----------
    n_points : int, default=64
        Grid points per field (at least 3); ``n_state = 2 n_points``.
    diffusion_u, diffusion_v : float, default=1e-3, 5e-3
        Diffusion coefficients ``D_u``, ``D_v``.
    k : float, default=5e-3
        The activator's threshold; uniform equilibrium ``u = v = -k^(1/3)``.
    length : float, default=2.0
        Length of the periodic domain (PDEBench's [-1, 1]).
    amplitude : float, default=1.0
        Initial fields are scaled to this largest absolute value.
    n_modes : int, default=16
        Initial ``u`` and ``v`` are independent sums of the lowest ``n_modes`` Fourier
        modes with random amplitudes ``N(0, 1) / k`` and phases: rough fields whose
        short waves decay in the first time units (classical RK4 is stable up to
        ``dt ~ 0.13``; at ``dt = 0.1`` its mean squared error over ``t <= 6`` is about
        4e-9, 1e3 times that at ``dt = 0.04``).

    Examples
    --------
    >>> from sklearn_attns.systems import FitzHughNagumo
    >>> system = FitzHughNagumo(n_points=32)
    >>> system.layout.n_fields, system.n_state
    (2, 64)
    >>> system.rhs(system.sample_initial_conditions(4, random_state=0)).shape
    (4, 64)
    """

    def __init__(self, n_points=64, diffusion_u=1e-3, diffusion_v=5e-3, k=5e-3, length=2.0, amplitude=1.0,
                 n_modes=16):
        self.n_points = n_points
        self.diffusion_u = diffusion_u
        self.diffusion_v = diffusion_v
        self.k = k
        self.length = length
        self.amplitude = amplitude
        self.n_modes = n_modes

    def _reaction_parameters(self):
        k = self.k
        if isinstance(k, bool) or not isinstance(k, numbers.Real):
            raise TypeError(f"k must be a real number, got {type(k).__name__}.")
        if not np.isfinite(k):
            raise ValueError(f"k must be finite, got {k!r}.")
        return {"k": float(k)}

    def _reaction(self, u, v):
        return u - u * u * u - self._parameter("k") - v, u - v

    def sample_initial_conditions(self, n, random_state=None):
        n = _check_count(n, "n")
        return self._smooth_fields(n, check_random_state(random_state), self.n_modes, self.amplitude)


class GrayScott(_ReactionDiffusion):
    """Gray-Scott reaction-diffusion on a periodic interval (Pearson, 1993)::

        u_t = D_u u_xx - u v^2 + F (1 - u)
        v_t = D_v v_xx + u v^2 - (F + k) v

    With the defaults (``F = 0.04``, ``k = 0.06``, unit spacing) seeded pulses of ``v``
    grow and split over ``t ~ 100-500``, the self-replicating patterns of the model.
    Its time scale is ``1 / F``: coarse steps of order 0.5 and horizons of hundreds.
    Second-order central differences; state ``(u_0..u_{n-1}, v_0..v_{n-1})``.

    Parameters
    ----------
    n_points : int, default=64
        Grid points per field (at least 3); ``n_state = 2 n_points``.
    diffusion_u, diffusion_v : float, default=1.0, 0.5
        Diffusion coefficients ``D_u``, ``D_v``.
    feed, kill : float, default=0.04, 0.06
        ``F`` and ``k``.
    length : float, default=64.0
        Length of the periodic domain (unit spacing with the default ``n_points``).
    n_seeds : int, default=3
        Initial conditions: ``u = 1``, ``v = 0`` except at up to ``n_seeds`` (at least one)
        random places, where Gaussian bumps of width ``length / 12`` set ``v`` to 0.25 and
        ``u`` to 0.5; plus noise of standard deviation 0.01.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.systems import GrayScott
    >>> system = GrayScott(n_points=16)
    >>> uniform = np.concatenate([np.ones(16), np.zeros(16)])[None]  # the trivial state
    >>> float(np.abs(system.rhs(uniform)).max())
    0.0
    """

    def __init__(self, n_points=64, diffusion_u=1.0, diffusion_v=0.5, feed=0.04, kill=0.06, length=64.0,
                 n_seeds=3):
        self.n_points = n_points
        self.diffusion_u = diffusion_u
        self.diffusion_v = diffusion_v
        self.feed = feed
        self.kill = kill
        self.length = length
        self.n_seeds = n_seeds

    def _reaction_parameters(self):
        return {"feed": _check_non_negative(self.feed, "feed"),
                "kill": _check_non_negative(self.kill, "kill")}

    def _reaction(self, u, v):
        feed, kill = self._parameter("feed"), self._parameter("kill")
        uvv = u * v * v
        return feed * (1.0 - u) - uvv, uvv - (feed + kill) * v

    def sample_initial_conditions(self, n, random_state=None):
        n = _check_count(n, "n")
        rng = check_random_state(random_state)
        n_seeds = _check_count(self.n_seeds, "n_seeds")
        layout = self.layout
        x = layout.coordinates()
        width = layout.length / 12
        bump = np.zeros((n, layout.n_points))
        counts = rng.randint(1, n_seeds + 1, size=n)
        centres = rng.uniform(0.0, layout.length, size=(n, n_seeds))
        for j in range(n_seeds):
            distance = np.abs(x - centres[:, j : j + 1])
            distance = np.minimum(distance, layout.length - distance)  # periodic
            bump += (j < counts)[:, None] * np.exp(-((distance / width) ** 2))
        bump = np.minimum(bump, 1.0)
        fields = np.stack([1.0 - 0.5 * bump, 0.25 * bump], 1)
        return layout.from_grid(fields + 0.01 * rng.normal(size=fields.shape))


def linear_operator_of(system):
    """``A`` (float64) if ``system.rhs(u) == u @ A.T``, else None.

    A ``linear_operator`` attribute is trusted only once checked against ``rhs`` on random
    states: a subclass that overrides ``rhs`` inherits its parent's attribute. Data
    generation and the hybrid solvers use ``A`` to replace the integrator's stages by one
    matrix product.

    Examples
    --------
    >>> from sklearn_attns.systems import SpringMass, linear_operator_of
    >>> linear_operator_of(SpringMass(n_masses=3)).shape
    (6, 6)
    >>> class Damped(SpringMass):
    ...     def rhs(self, u):
    ...         return super().rhs(u) - 0.1 * u
    >>> linear_operator_of(Damped(n_masses=3)) is None
    True
    """
    operator = getattr(system, "linear_operator", None)
    if operator is None:
        return None
    try:
        operator = np.asarray(operator, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if operator.ndim != 2 or operator.shape[0] != operator.shape[1]:
        return None  # not a usable A: rhs alone defines the system
    probe = np.random.RandomState(0).normal(size=(3, operator.shape[1]))
    expected = probe @ operator.T
    try:
        du = np.asarray(system.rhs(probe), dtype=np.float64)
    except Exception:  # an rhs for torch tensors only: the general path decides
        return None
    tolerance = 1e-10 * (1.0 + np.abs(expected).max())
    if du.shape != expected.shape or not np.allclose(du, expected, rtol=1e-10, atol=tolerance):
        return None
    return operator


def as_system(system, n_state=None):
    """Accept an :class:`ODESystem` or a plain picklable ``rhs`` callable."""
    if isinstance(system, ODESystem):
        if not callable(getattr(system, "rhs", None)):
            raise TypeError(f"system.rhs must be a callable rhs(u), got {type(system.rhs).__name__}.")
        if system.n_state is not None:
            _check_count(system.n_state, "n_state")
        return system
    if callable(system):
        return ODESystem(rhs=system, n_state=n_state)
    raise TypeError(f"system must be an ODESystem or a callable rhs(u), got {type(system).__name__}.")


class GravitationalNBody(ODESystem):
    """Softened gravitational N-body problem in the plane or in space: a costly right-hand side.

    State ``u = (q, v)``: the ``n_bodies x dim`` positions, body by body (``x_1, y_1, x_2,
    ...``), then the velocities in the same layout; ``n_state = 2 n_bodies dim``::

        q_i'' = G sum_{j != i} m_j (q_j - q_i) / (|q_j - q_i|^2 + eps^2)^(3/2)

    Every evaluation visits all ``n_bodies^2`` pairs, so the right-hand side costs
    ``O(n_bodies^2)`` per state while a correction network's cost grows with ``n_state``
    only: the regime where a hybrid solver's fewer steps can pay for its network.
    Plummer softening ``eps`` keeps close encounters finite; ``softening=0`` is Newton's law.

    Parameters
    ----------
    n_bodies : int, default=8
        Number of bodies, at least 2.
    dim : {2, 3}, default=2
        Dimension of space.
    softening : float, default=0.1
        Softening length ``eps``.
    gravity : float, default=1.0
        Gravitational constant ``G``.
    masses : array-like of shape (n_bodies,), default=None
        Masses; None gives a central body of mass 1 and the others ``0.001`` each (light
        enough that encounters between them rarely eject one).
    radii : tuple of float, default=(1.0, 2.0)
        :meth:`sample_initial_conditions` puts bodies ``1 .. n_bodies - 1`` on orbits
        around body 0 at radii drawn from ``U[radii]``.
    perturbation : float, default=0.05
        Relative size of the random departures from circular orbits (speed, radial
        velocity and, in 3-D, height and vertical velocity).

    Examples
    --------
    >>> from sklearn_attns.systems import GravitationalNBody
    >>> system = GravitationalNBody(n_bodies=4)
    >>> system.n_state
    16
    >>> u = system.sample_initial_conditions(3, random_state=0)
    >>> system.rhs(u).shape
    (3, 16)
    >>> bool(abs(system.momentum(u)).max() < 1e-15)  # the centre of mass is at rest
    True
    """

    def __init__(self, n_bodies=8, dim=2, softening=0.1, gravity=1.0, masses=None, radii=(1.0, 2.0),
                 perturbation=0.05):
        self.n_bodies = n_bodies
        self.dim = dim
        self.softening = softening
        self.gravity = gravity
        self.masses = masses
        self.radii = radii
        self.perturbation = perturbation

    @property
    def n_state(self):
        return 2 * _check_count(self.n_bodies, "n_bodies", minimum=2) * self._dim()

    def _dim(self):
        if isinstance(self.dim, bool) or self.dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {self.dim!r}.")
        return int(self.dim)

    def _check_parameters(self):
        radii = self.radii
        try:
            low, high = (float(r) for r in radii)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"radii must be a pair (low, high) of numbers, got {radii!r}.") from exc
        if not 0 < low <= high < np.inf:
            raise ValueError(f"radii must satisfy 0 < low <= high < inf, got {radii!r}.")
        return {"softening": _check_non_negative(self.softening, "softening"),
                "gravity": _check_positive(self.gravity, "gravity"), "radii": (low, high),
                "perturbation": _check_non_negative(self.perturbation, "perturbation")}

    def _masses(self):
        n = _check_count(self.n_bodies, "n_bodies", minimum=2)
        if self.masses is None:
            return np.r_[1.0, np.full(n - 1, 0.001)]
        try:
            masses = np.asarray(self.masses, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"masses must be an array of real numbers: {exc}") from exc
        if masses.shape != (n,):
            raise ValueError(f"masses must have shape ({n},), got {masses.shape}.")
        if not (np.all(np.isfinite(masses)) and np.all(masses > 0)):
            raise ValueError("masses must be positive and finite.")
        return masses

    def _constants(self):
        n, masses = self.n_bodies, self._masses()
        eye = np.eye(n)
        eps2 = self._parameter("softening") ** 2
        # The diagonal gets 1 added: a body's own term has q_i - q_i = 0 and must not divide 0 by 0.
        return {"g_masses": self._parameter("gravity") * masses, "masses": masses,
                "pair_offset": eps2 + eye, "off_diagonal": 1.0 - eye}

    def _split(self, u):
        u = _check_states(u, self.n_state)
        half = self.n_bodies * self._dim()
        shape = (-1, self.n_bodies, self.dim)
        return u[:, :half].reshape(shape), u[:, half:].reshape(shape)

    def _pairs(self, q):
        """``q_j - q_i`` at ``[b, i, j]`` and the softened squared distances (diagonal offset by 1)."""
        diff = q[:, None, :, :] - q[:, :, None, :]
        return diff, (diff**2).sum(-1) + self._constant("pair_offset", q)

    def rhs(self, u):
        xp = namespace(u)
        q, v = self._split(u)
        diff, r2 = self._pairs(q)
        weights = self._constant("g_masses", q) / (r2 * xp.sqrt(r2))
        acc = (diff * weights[..., None]).sum(2)
        return xp.concatenate([v.reshape(len(u), -1), acc.reshape(len(u), -1)], 1)

    def sample_initial_conditions(self, n, random_state=None):
        """Bodies on perturbed near-circular orbits around body 0, in the centre-of-mass frame.

        Radii from ``U[radii]``, phases from ``U[0, 2 pi)``; the speed is the circular
        speed of the softened attraction of body 0, times ``1 + perturbation N(0, 1)``,
        plus a radial (and in 3-D a vertical) component ``perturbation N(0, 1)`` times it.
        The total momentum is zero and the centre of mass at the origin.
        """
        n = _check_count(n, "n")
        rng = check_random_state(random_state)
        bodies, d = self.n_bodies, self._dim()
        masses, (low, high) = self._masses(), self._parameter("radii")
        eps, noise = self._parameter("softening"), self._parameter("perturbation")
        gm0 = self._parameter("gravity") * masses[0]
        r = rng.uniform(low, high, size=(n, bodies - 1))
        phase = rng.uniform(0.0, 2 * np.pi, size=(n, bodies - 1))
        speed = np.sqrt(gm0 * r**2 / (r**2 + eps**2) ** 1.5) * (1 + noise * rng.normal(size=r.shape))
        radial = noise * rng.normal(size=r.shape) * speed
        out_of_plane = noise * rng.normal(size=(2, n, bodies - 1))
        q, v = np.zeros((n, bodies, d)), np.zeros((n, bodies, d))
        c, s = np.cos(phase), np.sin(phase)
        q[:, 1:, 0], q[:, 1:, 1] = r * c, r * s
        v[:, 1:, 0], v[:, 1:, 1] = radial * c - speed * s, radial * s + speed * c
        if d == 3:
            q[:, 1:, 2], v[:, 1:, 2] = out_of_plane[0] * r, out_of_plane[1] * speed
        total = masses.sum()
        q -= (masses[:, None] * q).sum(1, keepdims=True) / total
        v -= (masses[:, None] * v).sum(1, keepdims=True) / total
        return np.concatenate([q.reshape(n, -1), v.reshape(n, -1)], 1)

    def energy(self, u):
        """Kinetic plus softened potential energy ``-G sum_{i<j} m_i m_j / sqrt(r_ij^2 + eps^2)``."""
        xp = namespace(u)
        q, v = self._split(u)
        masses = self._constant("masses", q)
        _, r2 = self._pairs(q)  # off the diagonal, exactly r_ij^2 + eps^2
        pairs = masses[:, None] * masses[None, :] * self._constant("off_diagonal", q)
        potential = -0.5 * self._parameter("gravity") * (pairs / xp.sqrt(r2)).sum((1, 2))
        return 0.5 * (masses[:, None] * v**2).sum((1, 2)) + potential

    def momentum(self, u):
        """Total momentum ``sum_i m_i v_i``, shape ``(n, dim)``."""
        q, v = self._split(u)
        return (self._constant("masses", q)[:, None] * v).sum(1)

    def angular_momentum(self, u):
        """Total angular momentum about the origin: shape ``(n,)`` in 2-D, ``(n, 3)`` in 3-D."""
        xp = namespace(u)
        q, v = self._split(u)
        m = self._constant("masses", q)
        if self.dim == 2:
            return (m * (q[..., 0] * v[..., 1] - q[..., 1] * v[..., 0])).sum(1)
        components = [q[..., i] * v[..., j] - q[..., j] * v[..., i] for i, j in ((1, 2), (2, 0), (0, 1))]
        return (m[:, None] * xp.stack(components, -1)).sum(1)
