"""Property-based robustness of the data side: systems, make_trajectories and the metrics.

Every public entry point is driven with shapes, dtypes and values drawn by hypothesis:

* a bad input gets a ``ValueError`` or ``TypeError`` whose message names the parameter;
* a valid input gives output of the documented shape and dtype (or an explicit error), with
  values checked against an independent expectation: ``make_trajectories`` against the fine
  integrator steps taken one by one (it raises rather than return a non-finite array, so
  its output's finiteness proves nothing), the metrics against a controlled offset;
* nothing hangs (each call runs under an alarm).

The estimator and the model files have their own files: ``test_properties_estimator.py``
and ``test_properties_persistence.py``.
"""

import re

import numpy as np
import pytest
import torch
from helpers import no_hang, plain_rollout, raises_named
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sklearn_attns.datasets import (
    TrajectoryBlowUpError,
    load_elastic_pendulum,
    load_klink_pendulum,
    load_spring_mass,
    make_trajectories,
)
from sklearn_attns.integrators import INTEGRATORS
from sklearn_attns.metrics import mse_per_step, trajectory_mse
from sklearn_attns.systems import ElasticPendulum, KLinkPendulum, ODESystem, SpringMass, as_system

# --- helpers ------------------------------------------------------------------------------


def decay(u):
    """A dimension-agnostic linear ODE that accepts NumPy arrays and torch tensors."""
    return -0.5 * u


def uniform_states(n, rng):
    return rng.uniform(-1.0, 1.0, size=(n, 3))


# Values that are not real numbers at all (TypeError), or not finite (ValueError).
not_a_number = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.just([1.0]), st.just({}),
                         st.complex_numbers(allow_nan=False, allow_infinity=False))
non_finite = st.sampled_from([np.nan, np.inf, -np.inf])
bad_count = st.one_of(not_a_number, st.integers(max_value=0), st.floats(allow_nan=True),
                      st.just(np.float64(2.0)))
bad_positive = st.one_of(not_a_number, non_finite, st.floats(max_value=0.0))
bad_non_negative = st.one_of(not_a_number, non_finite, st.floats(max_value=-1e-300))
bad_seed = st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32), st.floats(allow_nan=True),
                     st.text(min_size=1, max_size=3), st.just([1.5]), st.booleans())

systems = st.one_of(
    st.builds(SpringMass, n_masses=st.integers(1, 3), random_state=st.integers(0, 2**32 - 1),
              ic_range=st.floats(0.1, 5.0)),
    st.builds(ElasticPendulum, k=st.floats(0.5, 50.0), m=st.floats(0.5, 5.0), l0=st.floats(1.0, 10.0),
              g=st.floats(0.0, 10.0), theta_max=st.floats(0.0, 1.0)),
    st.builds(KLinkPendulum, n_links=st.integers(1, 3), g=st.floats(0.0, 10.0),
              theta_max=st.floats(0.0, 1.0)),
    st.just(ODESystem(rhs=decay, n_state=3, initial_conditions=uniform_states)),
)


def valid_states(system, n, dtype, scale=3.0):
    """States where every system is regular (the elastic pendulum's radius stays away from 0)."""
    return arrays(dtype, (n, system.n_state), elements=st.floats(-scale, scale, width=16)).map(
        lambda u: _regular(system, u))


def _regular(system, u):
    if isinstance(system, ElasticPendulum):
        u = u.copy()
        u[:, 1] = system.l0 + np.abs(u[:, 1])
    return u


# --- systems: valid input -------------------------------------------------------------------


@given(system=systems, n=st.integers(1, 5), dtype=st.sampled_from([np.float64, np.float32, np.float16]),
       data=st.data())
def test_rhs_and_energy_keep_type_shape_and_dtype_and_stay_finite(system, n, dtype, data):
    u = data.draw(valid_states(system, n, dtype))
    with no_hang():
        du = system.rhs(u)
        assert isinstance(du, np.ndarray) and du.shape == u.shape and du.dtype == dtype
        assert np.isfinite(du).all()
        if hasattr(system, "energy"):
            energy = system.energy(u)
            assert energy.shape == (n,) and energy.dtype == dtype and np.isfinite(energy).all()
        # torch in, torch out, same values as NumPy up to rounding
        if dtype != np.float16:
            du_torch = system.rhs(torch.from_numpy(u))
            assert isinstance(du_torch, torch.Tensor) and du_torch.dtype == torch.from_numpy(u).dtype
            np.testing.assert_allclose(du_torch.numpy(), du, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                       atol=1e-4 if dtype == np.float32 else 1e-10)


builtin_systems = systems.filter(lambda system: type(system) is not ODESystem)


@given(system=builtin_systems, n=st.integers(1, 4), data=st.data(),
       kind=st.sampled_from(["int64", "int8", "uint8", "bool", "torch-int64", "torch-bool"]))
def test_integer_and_boolean_states_are_promoted_to_float64(system, n, data, kind):
    if kind.endswith("bool"):
        u = data.draw(arrays(np.bool_, (n, system.n_state)))
    else:
        lowest = 0 if "uint" in kind else -3
        u = data.draw(arrays(np.int64, (n, system.n_state), elements=st.integers(lowest, 3)))
    if isinstance(system, ElasticPendulum):
        u[:, 1] = 1 + np.abs(u[:, 1])  # radius >= 1
    expected = system.rhs(u.astype(np.float64))
    given_u = torch.from_numpy(u.astype(kind.split("-")[-1])) if kind.startswith("torch") else u.astype(kind)
    du = system.rhs(given_u)
    du = du.numpy() if isinstance(du, torch.Tensor) else du
    assert du.dtype == np.float64
    np.testing.assert_allclose(du, expected, rtol=1e-12, atol=1e-12)


@given(system=systems, n=st.integers(1, 30), seed=st.integers(0, 2**32 - 1), as_generator=st.booleans())
def test_sample_initial_conditions_shape_bounds_and_seed(system, n, seed, as_generator):
    def random_state():
        return np.random.RandomState(seed) if as_generator else seed

    u0 = system.sample_initial_conditions(n, random_state=random_state())
    assert u0.shape == (n, system.n_state) and u0.dtype == np.float64 and np.isfinite(u0).all()
    np.testing.assert_array_equal(u0, system.sample_initial_conditions(n, random_state=random_state()))
    if isinstance(system, SpringMass):
        assert np.abs(u0).max() <= system.ic_range
    if isinstance(system, (ElasticPendulum, KLinkPendulum)):
        angles = u0[:, :1] if isinstance(system, ElasticPendulum) else u0[:, : system.n_links]
        assert (angles >= 0).all() and (angles <= system.theta_max).all()


# --- systems: bad input ---------------------------------------------------------------------


@st.composite
def bad_states(draw, n_state):
    """Anything that is not a real 2-D array with ``n_state`` columns."""
    kind = draw(st.sampled_from(["ndim", "columns", "dtype", "ragged", "scalar"]))
    if kind == "ndim":
        shape = draw(st.sampled_from([(), (n_state,), (2, 1, n_state), (1, 2, 3, n_state)]))
        return np.ones(shape)
    if kind == "columns":
        columns = draw(st.integers(0, 6).filter(lambda c: c != n_state))
        return np.ones((draw(st.integers(0, 3)), columns))
    if kind == "dtype":
        dtype = draw(st.sampled_from(["complex128", "U3", "O", "datetime64[s]", "timedelta64[s]"]))
        if dtype == "O":
            return np.array([[None] * n_state])
        return np.zeros((2, n_state), dtype=dtype)
    if kind == "ragged":
        return [[1.0] * n_state, [1.0] * (n_state + 1)]
    return draw(st.one_of(st.none(), st.text(max_size=3), st.floats()))


@given(system=systems, data=st.data())
def test_rhs_and_energy_reject_bad_states_naming_u(system, data):
    u = data.draw(bad_states(system.n_state))
    methods = [system.rhs, system.energy] if hasattr(system, "energy") else []
    for method in methods:
        with raises_named("u"):
            method(u)


@given(system=systems, n=bad_count)
def test_sample_initial_conditions_rejects_bad_n(system, n):
    with raises_named("n"):
        system.sample_initial_conditions(n, random_state=0)


@given(system=systems, seed=bad_seed)
def test_sample_initial_conditions_rejects_bad_random_state(system, seed):
    with raises_named("random_state"):
        system.sample_initial_conditions(3, random_state=seed)


_SYSTEM_PARAMETERS = [
    # (class, parameter, strategy of bad values, methods that use it)
    (SpringMass, "n_masses", bad_count, ("rhs", "energy", "sample")),
    (SpringMass, "random_state", bad_seed, ("rhs", "energy")),
    (SpringMass, "ic_range", bad_positive, ("sample",)),
    (ElasticPendulum, "k", bad_positive, ("rhs", "energy", "sample")),
    (ElasticPendulum, "m", bad_positive, ("rhs", "energy", "sample")),
    (ElasticPendulum, "l0", bad_positive, ("rhs", "energy", "sample")),
    (ElasticPendulum, "g", bad_non_negative, ("rhs", "energy", "sample")),
    (ElasticPendulum, "theta_max", bad_non_negative, ("rhs", "energy", "sample")),
    (KLinkPendulum, "n_links", bad_count, ("rhs", "energy", "sample")),
    (KLinkPendulum, "g", bad_non_negative, ("rhs", "energy", "sample")),
    (KLinkPendulum, "theta_max", bad_non_negative, ("sample",)),
]


@pytest.mark.parametrize("cls, name, bad, methods", _SYSTEM_PARAMETERS,
                         ids=[f"{c.__name__}-{n}" for c, n, _, _ in _SYSTEM_PARAMETERS])
@given(data=st.data())
def test_bad_constructor_parameters_are_named_where_used(cls, name, bad, methods, data):
    value = data.draw(bad, label=name)
    system = cls(**{name: value})
    n_state = {SpringMass: 40, ElasticPendulum: 4, KLinkPendulum: 4}[cls]
    u = np.full((2, n_state), 0.5)
    calls = {"rhs": lambda: system.rhs(u), "energy": lambda: system.energy(u),
             "sample": lambda: system.sample_initial_conditions(2, random_state=0),
             "make_trajectories": lambda: make_trajectories(system, 2, t_end=0.2, dt=0.1, fine_dt=0.1,
                                                            random_state=0)}
    for method in (*methods, "make_trajectories"):
        with raises_named(name):
            calls[method]()


@st.composite
def bad_masses_or_springs(draw):
    name = draw(st.sampled_from(["masses", "spring_constants"]))
    size = 2 if name == "masses" else 3
    kind = draw(st.sampled_from(["shape", "sign", "non-finite", "text"]))
    value = [1.0] * size
    if kind == "shape":
        value = draw(st.sampled_from([[1.0] * (size + 1), [[1.0] * size], 1.0, []]))
    elif kind == "sign":
        value[draw(st.integers(0, size - 1))] = draw(st.floats(max_value=0.0))
    elif kind == "non-finite":
        value[draw(st.integers(0, size - 1))] = draw(non_finite)
    else:
        value = ["a"] * size
    return name, value


@given(bad=bad_masses_or_springs())
def test_bad_masses_and_spring_constants_are_named(bad):
    name, value = bad
    system = SpringMass(n_masses=2, **{name: value})
    for call in (lambda: system.rhs(np.ones((1, 4))), lambda: system.energy(np.ones((1, 4))),
                 lambda: make_trajectories(system, 2, t_end=0.2, dt=0.1, fine_dt=0.1, random_state=0)):
        with raises_named(name):
            call()


@given(masses=st.lists(st.floats(0.1, 10.0), min_size=2, max_size=2),
       springs=st.lists(st.floats(0.1, 10.0), min_size=3, max_size=3),
       u=arrays(np.float64, (3, 4), elements=st.floats(-10, 10)))
def test_explicit_masses_and_springs_give_finite_conservative_dynamics(masses, springs, u):
    system = SpringMass(n_masses=2, masses=masses, spring_constants=springs)
    du = system.rhs(u)
    assert np.isfinite(du).all() and np.isfinite(system.energy(u)).all()
    # dE/dt = grad E . f(u) = 0 for the chain
    eps = 1e-6
    ahead = system.energy(u + eps * du)
    behind = system.energy(u - eps * du)
    np.testing.assert_allclose((ahead - behind) / (2 * eps), 0.0,
                               atol=1e-5 * (1 + np.abs(system.energy(u)).max()))


@given(kind=st.sampled_from(["rhs", "n_state", "initial_conditions", "nan_sampler", "shape_sampler"]),
       value=st.one_of(st.none(), st.integers(-2, 0), st.text(max_size=2), st.floats(0.5, 3.5)))
def test_plain_ode_system_parameters_are_named(kind, value):
    if kind == "rhs":
        system, name = ODESystem(rhs=value, n_state=2), "rhs"
    elif kind == "n_state":
        assume(value is not None)  # None is the dimension-agnostic system
        system, name = ODESystem(rhs=decay, n_state=value, initial_conditions=uniform_states), "n_state"
    elif kind == "initial_conditions":
        system, name = ODESystem(rhs=decay, n_state=3, initial_conditions=value), "initial_conditions"
    elif kind == "nan_sampler":
        system = ODESystem(rhs=decay, n_state=3, initial_conditions=lambda n, rng: np.full((n, 3), np.nan))
        name = "initial_conditions"
    else:
        system = ODESystem(rhs=decay, n_state=3, initial_conditions=lambda n, rng: np.zeros((n, 2)))
        name = "initial_conditions"
    with raises_named(name):
        if kind in ("rhs", "n_state"):
            as_system(system)
        system.sample_initial_conditions(2, random_state=0)
    with raises_named(name):
        make_trajectories(system, 2, t_end=0.2, dt=0.1, fine_dt=0.1, random_state=0)


def test_half_precision_klink_pendulum_is_solved_not_refused():
    u = np.full((2, 4), 0.25, dtype=np.float16)
    system = KLinkPendulum(n_links=2)
    for given_u in (u, torch.from_numpy(u)):
        du = system.rhs(given_u)
        du = du.numpy() if isinstance(du, torch.Tensor) else du
        assert du.dtype == np.float16 and np.isfinite(du).all()
        np.testing.assert_allclose(du.astype(np.float64), system.rhs(u.astype(np.float64)), rtol=1e-2,
                                   atol=1e-2)


def test_spring_mass_parameters_are_the_same_on_every_use():
    """The chain redraws its parameters from ``random_state`` on each use: a generator there
    would give a different system each time, so only an int is accepted."""
    with raises_named("random_state"):
        _ = SpringMass(n_masses=2, random_state=np.random.RandomState(0)).linear_operator
    with raises_named("random_state"):
        SpringMass(n_masses=2, random_state=None).rhs(np.ones((1, 4)))


# --- make_trajectories --------------------------------------------------------------------


@given(system=systems, n_trajectories=st.integers(1, 4), dt=st.sampled_from([0.05, 0.1, 0.2]),
       substeps=st.integers(1, 5), n_steps=st.integers(1, 5), method=st.sampled_from(sorted(INTEGRATORS)),
       seed=st.integers(0, 2**32 - 1))
@settings(max_examples=25)
def test_make_trajectories_valid_configurations(system, n_trajectories, dt, substeps, n_steps, method, seed):
    """Every ``dt`` a state ``substeps`` fine steps of ``method`` after the last one: the same
    steps taken one by one on the rhs (the chain's shortcut, a power of the step's stability
    matrix, agrees up to rounding)."""
    kwargs = dict(t_end=n_steps * dt, dt=dt, fine_dt=dt / substeps, method=method, random_state=seed)
    with no_hang():
        X = make_trajectories(system, n_trajectories, **kwargs)
        assert X.shape == (n_trajectories, n_steps + 1, system.n_state) and X.dtype == np.float64
        u0 = system.sample_initial_conditions(n_trajectories, random_state=seed)
        np.testing.assert_array_equal(X[:, 0], u0)
        fine = plain_rollout(system.rhs, method, X[:, 0], dt / substeps, n_steps * substeps)
        np.testing.assert_allclose(X, fine[:, ::substeps], rtol=1e-10, atol=1e-10 * np.abs(fine).max())
        np.testing.assert_array_equal(X, make_trajectories(system, n_trajectories, **kwargs))


_GOOD = dict(n_trajectories=2, t_end=0.4, dt=0.2, fine_dt=0.1, method="rk4", random_state=0)
_BAD_ARGUMENTS = {
    "system": st.one_of(st.none(), st.integers(), st.text(max_size=3), st.just(np.ones(3))),
    "n_trajectories": bad_count.filter(lambda v: v is not None),
    "t_end": bad_positive,
    "dt": bad_positive,
    "fine_dt": bad_positive,
    "method": st.one_of(st.none(), st.integers(), st.text(max_size=5).filter(
        lambda s: s.lower() not in (*INTEGRATORS, "improved_euler"))),
    "random_state": bad_seed,
    "n_jobs": st.one_of(st.just(0), st.floats(), st.text(max_size=2), st.booleans()),
    "verbose": st.one_of(st.integers(max_value=-1), st.floats(), st.text(max_size=2)),
}


@pytest.mark.parametrize("name", sorted(_BAD_ARGUMENTS))
@given(data=st.data())
def test_make_trajectories_names_each_bad_argument(name, data):
    value = data.draw(_BAD_ARGUMENTS[name], label=name)
    arguments = {"system": SpringMass(n_masses=2), **_GOOD, name: value}
    with raises_named(name):
        make_trajectories(**arguments)


@given(t_end=st.floats(1e-3, 1.0), dt=st.floats(1e-3, 1.0), fine_dt=st.floats(1e-4, 1.0))
def test_make_trajectories_step_sizes_are_multiples_or_named_errors(t_end, dt, fine_dt):
    """Arbitrary step sizes: a named error unless they are integer multiples, never a hang."""
    try:
        with no_hang():
            X = make_trajectories(SpringMass(n_masses=1), 1, t_end=t_end, dt=dt, fine_dt=fine_dt,
                                  random_state=0)
    except ValueError as exc:
        assert re.search(r"\b(t_end|dt|fine_dt)=", str(exc)), str(exc)
        return
    assert X.shape == (1, int(round(t_end / dt)) + 1, 2)
    u0 = SpringMass(n_masses=1).sample_initial_conditions(1, random_state=0)
    np.testing.assert_array_equal(X[:, 0], u0)


@given(t_end=st.sampled_from([1e17, 1e300, 1.7e308]), dt=st.sampled_from([1e-300, 1e-10, 0.2]))
def test_make_trajectories_absurd_step_counts_are_refused_not_attempted(t_end, dt):
    with raises_named("t_end", "dt", "fine_dt"):
        make_trajectories(SpringMass(n_masses=1), 1, t_end=t_end, dt=dt, fine_dt=dt, random_state=0)


@st.composite
def any_initial_conditions(draw):
    """Arrays of any small shape and dtype, with any values, or things that are no arrays."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.text(max_size=3), st.just([[1.0, 2.0], [3.0]]), st.just([[None] * 4])))
    shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int32, np.bool_, np.complex128]))
    elements = None
    if dtype == np.int32:
        elements = st.integers(-10, 10)
    elif dtype in (np.float64, np.float32):
        elements = st.one_of(st.floats(-10, 10, width=32), non_finite)
    elif dtype == np.complex128:
        elements = st.complex_numbers(max_magnitude=10)
    return draw(arrays(dtype, shape, elements=elements))


@given(u0=any_initial_conditions(), system=systems, n_trajectories=st.one_of(st.none(), st.integers(1, 5)))
def test_make_trajectories_initial_conditions_oracle(u0, system, n_trajectories):
    """Valid exactly when the array is real, finite, 2-D with n_state columns and at least one
    row (matching n_trajectories when given); otherwise a named error."""
    array = np.asarray(u0) if isinstance(u0, np.ndarray) else None
    valid = (array is not None and array.dtype != np.complex128 and array.ndim == 2 and len(array) >= 1
             and array.shape[1] == system.n_state and np.isfinite(array.astype(np.float64)).all()
             and n_trajectories in (None, len(array)))
    if isinstance(system, ElasticPendulum) and valid:
        u0 = array.astype(np.float64)
        u0[:, 1] = system.l0 + np.abs(u0[:, 1])
    kwargs = dict(n_trajectories=n_trajectories, initial_conditions=u0, t_end=0.2, dt=0.1, fine_dt=0.05)
    if not valid:
        with raises_named("initial_conditions", "n_trajectories"):
            make_trajectories(system, **kwargs)
        return
    with no_hang():
        X = make_trajectories(system, **kwargs)
    assert X.shape == (len(array), 3, system.n_state)
    np.testing.assert_array_equal(X[:, 0], np.asarray(u0, dtype=np.float64))
    fine = plain_rollout(system.rhs, "rk4", X[:, 0], 0.05, 4)  # the default method, 2 fine steps a state
    np.testing.assert_allclose(X, fine[:, ::2], rtol=1e-10, atol=1e-10 * np.abs(fine).max())


def test_make_trajectories_reports_blow_up_explicitly():
    """A valid request whose trajectories diverge raises, it does not return NaN."""
    with pytest.raises(TrajectoryBlowUpError):
        make_trajectories(ElasticPendulum(), initial_conditions=[[0.1, 1e-8, 0.0, 0.0]], t_end=0.4, dt=0.2,
                          fine_dt=0.1)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(scale=st.sampled_from([1e-300, 1e-100, 1e-8, 1.0, 1e8, 1e100, 1e300]),
       method=st.sampled_from(sorted(INTEGRATORS)))
def test_make_trajectories_extreme_magnitudes_are_scaled_or_explicit(scale, method):
    """The chain is linear: trajectories from ``scale * u0`` are ``scale`` times those from
    ``u0`` (to rounding), unless they overflow, which is an explicit error."""
    u0 = np.array([[1.0, -0.5, 0.25, 2.0]])
    kwargs = dict(t_end=0.4, dt=0.2, fine_dt=0.05, method=method)
    unit = make_trajectories(SpringMass(n_masses=2), initial_conditions=u0, **kwargs)
    try:
        X = make_trajectories(SpringMass(n_masses=2), initial_conditions=u0 * scale, **kwargs)
    except TrajectoryBlowUpError:
        assert scale >= 1e300
        return
    np.testing.assert_allclose(X / scale, unit, rtol=1e-12, atol=1e-12 * np.abs(unit).max())


# --- benchmark loaders ----------------------------------------------------------------------

_BAD_LOADER_ARGUMENTS = {
    "scale": st.one_of(bad_positive, st.floats(min_value=1.0, exclude_min=True),
                       st.text(max_size=6).filter(lambda s: s not in ("paper", "quick", "tiny"))),
    "train_method": _BAD_ARGUMENTS["method"],
    "fine_dt": st.one_of(bad_positive, st.just(0.03)),
    "reference_fine_dt": st.one_of(bad_positive, st.just(0.03)),
    "data_home": st.one_of(st.integers(), st.floats(), st.just([1]), st.booleans()),
    "random_state": st.one_of(st.none(), st.integers(max_value=-1), st.floats(), st.text(max_size=2),
                              st.booleans()),
    "n_jobs": _BAD_ARGUMENTS["n_jobs"],
    "verbose": _BAD_ARGUMENTS["verbose"],
}


@pytest.mark.parametrize("name", sorted(_BAD_LOADER_ARGUMENTS) + ["n_masses", "n_links"])
@given(data=st.data())
def test_benchmark_loaders_name_each_bad_argument_before_making_data(name, data, tmp_path_factory):
    """Every argument is checked before any trajectory is made (the elastic pendulum's "tiny"
    split alone would take seconds): the alarm fails the test otherwise."""
    loaders = {"n_masses": [load_spring_mass], "n_links": [load_klink_pendulum]}.get(
        name, [load_spring_mass, load_elastic_pendulum, load_klink_pendulum])
    loader = data.draw(st.sampled_from(loaders), label="loader")
    bad = bad_count if name in ("n_masses", "n_links") else _BAD_LOADER_ARGUMENTS[name]
    value = data.draw(bad, label=name)
    arguments = {"scale": "tiny", "data_home": tmp_path_factory.getbasetemp() / "loaders", name: value}
    with raises_named(name, seconds=5):
        loader(**arguments)


# --- metrics ------------------------------------------------------------------------------


@given(data=st.data(), shape=st.tuples(st.integers(1, 4), st.integers(2, 5), st.integers(1, 3)),
       dtype=st.sampled_from([np.float64, np.float32, np.int64]),
       offsets=st.lists(st.integers(-30, 30), min_size=5, max_size=5))
def test_metrics_of_a_known_offset_on_valid_input(data, shape, dtype, offsets):
    """A prediction off by the integer ``offsets[k]`` in every component at time k has a
    squared error of exactly ``offsets[k]**2`` at that time (integers up to 1e3 and their
    sums are exact in float32 and float64), and the trajectory MSE averages times 1.. only."""
    elements = {np.int64: st.integers(-1000, 1000), np.float32: st.integers(-1000, 1000).map(float)}.get(
        dtype, st.integers(-1000, 1000).map(float))
    y_true = data.draw(arrays(dtype, shape, elements=elements))
    offset = np.array(offsets[: shape[1]], dtype=dtype)
    y_pred = y_true + offset[None, :, None]
    per_step = mse_per_step(y_true, y_pred)
    expected = offset.astype(np.float64) ** 2
    assert per_step.shape == (shape[1],) and per_step.dtype == np.float64
    np.testing.assert_array_equal(per_step, expected)
    value = trajectory_mse(y_true, y_pred)
    assert isinstance(value, float) and value == pytest.approx(expected[1:].mean(), rel=1e-15)
    assert trajectory_mse(y_true, y_true) == 0.0


@st.composite
def metric_pairs(draw):
    """A pair of which at least one side is bad in one way."""
    shape = draw(st.tuples(st.integers(1, 3), st.integers(2, 4), st.integers(1, 3)))
    y_true, y_pred = np.zeros(shape), np.ones(shape)
    kind = draw(st.sampled_from(["shape", "ndim", "empty", "complex", "text", "nan_reference", "ragged"]))
    side = draw(st.sampled_from(["y_true", "y_pred"]))
    if kind == "shape":
        other = list(shape)
        other[draw(st.integers(0, 2))] += draw(st.integers(1, 2))
        bad = np.zeros(other)
    elif kind == "ndim":
        bad = np.zeros(draw(st.sampled_from([(), (3,), (2, 3), (1, 2, 3, 1)])))
        y_true, y_pred = (bad, bad.copy())
        return y_true, y_pred, ("y_true", "y_pred")
    elif kind == "empty":
        empty = list(shape)
        empty[draw(st.integers(0, 2))] = 0
        return np.zeros(empty), np.zeros(empty), ("y_true", "y_pred")
    elif kind == "complex":
        bad = np.zeros(shape, dtype=complex)
    elif kind == "text":
        bad = np.full(shape, "a")
    elif kind == "ragged":
        bad = [[[0.0]], [[0.0], [1.0]]]
    else:
        side = "y_true"
        bad = np.zeros(shape)
        bad[(0,) * 3] = draw(non_finite)
    if side == "y_true":
        return bad, y_pred, ("y_true",) if kind != "shape" else ("y_true", "y_pred")
    return y_true, bad, ("y_pred",) if kind != "shape" else ("y_true", "y_pred")


@given(pair=metric_pairs())
def test_metrics_name_the_bad_argument(pair):
    y_true, y_pred, names = pair
    for metric in (trajectory_mse, mse_per_step):
        with raises_named(*names):
            metric(y_true, y_pred)


@given(shape=st.tuples(st.integers(1, 3), st.integers(2, 4), st.integers(1, 3)), bad=non_finite)
def test_trajectory_mse_is_inf_not_nan_for_blown_up_predictions(shape, bad):
    y_pred = np.zeros(shape)
    y_pred[-1, -1, -1] = bad
    with np.errstate(invalid="ignore", over="ignore"):
        assert trajectory_mse(np.zeros(shape), y_pred) == np.inf
