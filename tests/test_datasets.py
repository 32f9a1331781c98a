"""Trajectory generation and the cached benchmark loaders.

Accuracy is judged against scipy's DOP853 at tight tolerance (and, for u' = -u, the exact
exponential); the linear shortcut against plain stepping; blow-up against the analytic
blow-up time of u' = u^2.
"""

import pickle

import numpy as np
import pytest
from helpers import param_id
from scipy.integrate import solve_ivp
from sklearn.utils import Bunch

import sklearn_attns.datasets as datasets
from sklearn_attns.datasets import (
    TrajectoryBlowUpError,
    get_data_home,
    load_elastic_pendulum,
    load_klink_pendulum,
    load_spring_mass,
    make_trajectories,
)
from sklearn_attns.systems import ElasticPendulum, KLinkPendulum, ODESystem, SpringMass


def decay(u):
    return -u


def square(u):
    return u**2


def wrong_width(u):
    return u[:, :1]


def returns_int(u):
    return 0


def returns_int_array(u):
    return np.zeros(u.shape, dtype=np.int64)


def returns_list(u):
    return u.tolist()


# --- Accuracy against scipy's DOP853 ----------------------------------------------------------

def dop853(system, u0, t_end, dt):
    """All trajectories as one stacked system, rtol = atol = 1e-12, at the output times."""
    n, d = u0.shape
    times = dt * np.arange(int(round(t_end / dt)) + 1)
    sol = solve_ivp(lambda t, y: system.rhs(y.reshape(n, d)).ravel(), (0.0, t_end), u0.ravel(),
                    method="DOP853", rtol=1e-12, atol=1e-12, t_eval=times)
    assert sol.success
    return sol.y.T.reshape(len(times), n, d).transpose(1, 0, 2)


@pytest.mark.parametrize(
    "system, t_end, dt, fine_dt, tolerance",
    [
        # Max |X - DOP853| over 3 trajectories (RK4), measured:
        # 5.7e-9: the 20-mass chain over its full T = 20 at the training fine step
        (SpringMass(n_masses=20), 20.0, 0.2, 1e-3, 5e-8),
        # 2.0e-10 at the reference fine step (about DOP853's own error; the linear shortcut's
        # propagator R(h A)^k adds rounding of that order, plain stepping gives 8e-13 vs expm)
        (SpringMass(n_masses=20), 20.0, 0.2, 1e-4, 2e-9),
        # 1.2e-9, T = 10 of the benchmark's 50 (cost: one RK4 step per fine step in Python)
        (ElasticPendulum(), 10.0, 0.1, 1e-3, 1e-8),
        # 8.2e-12, T = 2
        (ElasticPendulum(), 2.0, 0.1, 1e-4, 1e-10),
        # 1.7e-10, the full T = 10
        (KLinkPendulum(n_links=2), 10.0, 0.1, 1e-3, 2e-9),
        # 3.8e-12, T = 1
        (KLinkPendulum(n_links=2), 1.0, 0.1, 1e-4, 1e-10),
    ],
    ids=param_id,
)
def test_fine_step_data_matches_dop853(system, t_end, dt, fine_dt, tolerance):
    u0 = system.sample_initial_conditions(3, random_state=0)
    X = make_trajectories(system, t_end=t_end, dt=dt, fine_dt=fine_dt, method="rk4", initial_conditions=u0)
    reference = dop853(system, u0, t_end, dt)
    discrepancy = np.abs(X - reference).max()
    print(f"{system!r} T={t_end} fine_dt={fine_dt}: max |X - DOP853| = {discrepancy:.2g}")
    assert discrepancy < tolerance


def test_exponential_decay_at_output_times():
    """X[:, k] is the state at t = k dt: compare with exp(-k dt) u0."""
    u0 = np.array([[1.0, -2.0], [0.5, 3.0]])
    X = make_trajectories(ODESystem(rhs=decay, n_state=2), t_end=2.0, dt=0.25, fine_dt=1e-3,
                          initial_conditions=u0)
    expected = np.exp(-0.25 * np.arange(9))[None, :, None] * u0[:, None, :]
    np.testing.assert_allclose(X, expected, rtol=1e-12)


@pytest.mark.parametrize("method", ["euler", "heun", "rk3", "rk4"])
@pytest.mark.parametrize("t_end, fine_dt", [(4.0, 1e-3), (20.0, 1e-2)])
def test_linear_shortcut_matches_plain_stepping(method, t_end, fine_dt):
    # measured max discrepancy: 2.0e-12 (T = 4, fine_dt 1e-3) and 3.2e-12 (T = 20, fine_dt 1e-2)
    chain = SpringMass(n_masses=20)
    plain = ODESystem(rhs=chain.rhs, n_state=40)
    assert getattr(plain, "linear_operator", None) is None  # so it takes the stepping path
    u0 = chain.sample_initial_conditions(3, random_state=0)
    kwargs = dict(t_end=t_end, dt=0.2, fine_dt=fine_dt, method=method, initial_conditions=u0)
    shortcut, stepped = make_trajectories(chain, **kwargs), make_trajectories(plain, **kwargs)
    scale = np.abs(stepped).max()
    print(f"{method} T={t_end} fine_dt={fine_dt}: {np.abs(shortcut - stepped).max():.2g} (scale {scale:.3g})")
    np.testing.assert_allclose(shortcut, stepped, rtol=0, atol=1e-10 * max(1.0, scale / 10))


# --- Shapes, reproducibility, parallelism -----------------------------------------------------

@pytest.mark.parametrize(
    "system", [SpringMass(n_masses=3), ElasticPendulum(), KLinkPendulum(n_links=3)], ids=param_id
)
def test_shape_dtype_and_initial_conditions(system):
    u0 = system.sample_initial_conditions(5, random_state=1).astype(np.float32)
    X = make_trajectories(system, t_end=1.0, dt=0.1, fine_dt=0.01, initial_conditions=u0)
    assert X.shape == (5, 11, system.n_state) and X.dtype == np.float64
    np.testing.assert_array_equal(X[:, 0], u0.astype(np.float64))
    X = make_trajectories(system, n_trajectories=4, t_end=0.6, dt=0.2, fine_dt=0.05, random_state=0)
    assert X.shape == (4, round(0.6 / 0.2) + 1, system.n_state)
    np.testing.assert_array_equal(X[:, 0], system.sample_initial_conditions(4, random_state=0))


def test_default_number_of_trajectories_and_integer_input():
    assert make_trajectories(SpringMass(n_masses=2), t_end=0.2, dt=0.2).shape == (100, 2, 4)
    X = make_trajectories(ODESystem(rhs=decay, n_state=1), t_end=0.1, dt=0.1, fine_dt=0.1,
                          method="euler", initial_conditions=[[1], [2]])
    np.testing.assert_allclose(X[:, 1, 0], [0.9, 1.8])


@pytest.mark.parametrize("system", [SpringMass(n_masses=4), ElasticPendulum()], ids=param_id)
def test_same_random_state_same_data(system):
    kwargs = dict(n_trajectories=3, t_end=1.0, dt=0.1, fine_dt=0.01)
    a = make_trajectories(system, random_state=7, **kwargs)
    np.testing.assert_array_equal(a, make_trajectories(system, random_state=7, **kwargs))
    assert not np.allclose(a, make_trajectories(system, random_state=8, **kwargs))


def test_parallel_equals_serial():
    system = ElasticPendulum()
    kwargs = dict(n_trajectories=9, t_end=2.0, dt=0.1, fine_dt=0.01, random_state=0)
    np.testing.assert_allclose(make_trajectories(system, n_jobs=2, **kwargs),
                               make_trajectories(system, n_jobs=1, **kwargs), rtol=1e-15, atol=0)


def test_verbose_prints_a_summary(capsys):
    make_trajectories(ElasticPendulum(), n_trajectories=3, t_end=0.2, dt=0.1, fine_dt=0.05, verbose=1)
    out = capsys.readouterr().out
    assert "make_trajectories" in out and "3 trajectories" in out and "ElasticPendulum" in out
    make_trajectories(ElasticPendulum(), n_trajectories=3, t_end=0.2, dt=0.1, fine_dt=0.05, verbose=0)
    assert capsys.readouterr().out == ""


# --- Input validation -------------------------------------------------------------------------

U0 = ElasticPendulum().sample_initial_conditions(3, random_state=0)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(dt=0.0), ValueError, "dt"),
        (dict(dt=-0.1), ValueError, "dt"),
        (dict(dt="0.1"), TypeError, "dt"),
        (dict(fine_dt=0.0), ValueError, "fine_dt"),
        (dict(fine_dt=-1e-3), ValueError, "fine_dt"),
        (dict(fine_dt=0.03), ValueError, "fine_dt"),  # does not divide dt = 0.1
        (dict(fine_dt=0.2), ValueError, "fine_dt"),  # larger than dt
        (dict(t_end=1.05), ValueError, "t_end"),  # not a multiple of dt
        (dict(t_end=0.0), ValueError, "t_end"),
        (dict(t_end=np.inf), ValueError, "t_end"),
        (dict(initial_conditions=np.zeros((3, 3))), ValueError, "initial_conditions"),
        (dict(initial_conditions=np.zeros(4)), ValueError, "initial_conditions"),
        (dict(initial_conditions=[[np.nan, 10.0, 0.0, 0.0]]), ValueError, "initial_conditions"),
        (dict(initial_conditions=[[0.1, np.inf, 0.0, 0.0]]), ValueError, "initial_conditions"),
        (dict(initial_conditions=[["a", "b", "c", "d"]]), TypeError, "initial_conditions"),
        (dict(initial_conditions=U0, n_trajectories=5), ValueError, "n_trajectories"),
        (dict(initial_conditions=None, n_trajectories=0), ValueError, "n_trajectories"),
        (dict(initial_conditions=None, n_trajectories=2.5), TypeError, "n_trajectories"),
        (dict(system=ODESystem(rhs=wrong_width, n_state=4)), ValueError, "rhs"),
        (dict(system=ODESystem(rhs=returns_int, n_state=4)), TypeError, "rhs"),
        (dict(system=ODESystem(rhs=returns_int_array, n_state=4)), TypeError, "rhs"),
        (dict(system=ODESystem(rhs=returns_list, n_state=4)), TypeError, "rhs"),
        (dict(system=3), TypeError, "system"),
        (dict(method="rk5"), ValueError, "method must be one of"),
    ],
    ids=param_id,
)
def test_bad_input_raises_naming_the_argument(change, error, match):
    kwargs = dict(system=ElasticPendulum(), t_end=1.0, dt=0.1, fine_dt=0.01, initial_conditions=U0)
    kwargs.update(change)
    with pytest.raises(error, match=match):
        make_trajectories(**kwargs)


# --- Blow-up ----------------------------------------------------------------------------------

def test_blow_up_names_trajectories_and_times():
    """u' = u^2 has u = u0 / (1 - u0 t): it blows up at t = 1/u0 for u0 > 0."""
    u0 = np.array([[0.5], [1.0], [-1.0], [0.25], [0.8]])  # blow-up at 2, 1, never, 4 (> T), 1.25
    with pytest.raises(TrajectoryBlowUpError) as info:
        make_trajectories(ODESystem(rhs=square, n_state=1), t_end=3.0, dt=0.1, fine_dt=1e-3,
                          initial_conditions=u0)
    error = info.value
    np.testing.assert_array_equal(error.indices, [0, 1, 4])
    analytic = 1.0 / u0[error.indices, 0]
    # The first output time with a non-finite state is the first one past the singularity
    # (measured 2.1, 1.1, 1.3): the RK4 map is a polynomial, so the discrete solution is still
    # finite at t = 1/u0 itself, then overflows within a few fine steps.
    assert np.all(error.times > analytic) and np.all(error.times <= analytic + 0.1 + 1e-9)
    message = str(error)
    assert "3 of 5" in message
    for index, time in zip(error.indices, error.times):
        assert f"#{index} at t={time:g}" in message
    assert isinstance(error, FloatingPointError)


def test_blow_up_error_survives_pickling():
    """So that it can come back from a joblib worker."""
    error = pickle.loads(pickle.dumps(TrajectoryBlowUpError([1, 4], [0.5, 1.5], 6)))
    assert isinstance(error, TrajectoryBlowUpError)
    np.testing.assert_array_equal(error.indices, [1, 4])
    np.testing.assert_array_equal(error.times, [0.5, 1.5])
    assert str(error) == str(TrajectoryBlowUpError([1, 4], [0.5, 1.5], 6))


def test_blow_up_on_the_linear_shortcut():
    """Euler is unstable on an undamped oscillator (|R(i w h)| > 1): at h = 0.2 the chain
    overflows well before 2000 steps; the shortcut must report it like stepping does."""
    with pytest.raises(TrajectoryBlowUpError) as info:
        make_trajectories(SpringMass(n_masses=4), n_trajectories=3, t_end=600.0, dt=0.2, fine_dt=0.2,
                          method="euler", random_state=0)
    np.testing.assert_array_equal(info.value.indices, [0, 1, 2])


# --- Cached benchmark loaders -----------------------------------------------------------------

def test_get_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SKLEARN_ATTNS_DATA", str(tmp_path / "from_env"))
    assert get_data_home() == tmp_path / "from_env" and (tmp_path / "from_env").is_dir()
    assert get_data_home(tmp_path / "explicit") == tmp_path / "explicit" and (tmp_path / "explicit").is_dir()


def forbid_generation(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the data should have come from the cache")

    monkeypatch.setattr(datasets, "make_trajectories", fail)


def test_load_spring_mass_tiny_and_cache(data_home, monkeypatch):
    data = load_spring_mass(scale="tiny")
    assert isinstance(data, Bunch)
    # Table 3 sizes 5k / 0.1k / 5k times 0.002, at least 1; T = 20, dt = 0.2
    assert data.train.shape == (10, 101, 40)
    assert data.validation.shape == (1, 101, 40)
    assert data.test.shape == (10, 101, 40)
    assert data.dt == 0.2 and data.t_end == 20.0 and isinstance(data.system, SpringMass)
    for split in (data.train, data.validation, data.test):
        assert split.dtype == np.float64 and np.isfinite(split).all()
        assert np.abs(split[:, 0]).max() <= 2.5
    # the splits start from different states
    assert not np.isin(data.test[:, 0, 0], data.train[:, 0, 0]).any()
    assert data.path.parent == data_home and data.path.exists()

    # train: the given method at fine_dt; validation and test: RK4 at reference_fine_dt
    common = dict(t_end=20.0, dt=0.2, method="rk4")
    np.testing.assert_allclose(
        data.train,
        make_trajectories(data.system, fine_dt=1e-3, initial_conditions=data.train[:, 0], **common),
        rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        data.test, make_trajectories(data.system, fine_dt=1e-4, initial_conditions=data.test[:, 0], **common),
        rtol=0, atol=1e-12)

    mtime = data.path.stat().st_mtime_ns
    forbid_generation(monkeypatch)
    again = load_spring_mass(scale="tiny")
    assert again.path == data.path and data.path.stat().st_mtime_ns == mtime
    for split in ("train", "validation", "test"):
        np.testing.assert_array_equal(again[split], data[split])


def test_load_spring_mass_train_method(data_home):
    rk4 = load_spring_mass(n_masses=5, scale="tiny")
    euler = load_spring_mass(n_masses=5, scale="tiny", train_method="euler")
    assert euler.path != rk4.path
    np.testing.assert_array_equal(euler.test, rk4.test)  # the reference does not depend on it
    np.testing.assert_array_equal(euler.train[:, 0], rk4.train[:, 0])
    np.testing.assert_allclose(
        euler.train,
        make_trajectories(SpringMass(n_masses=5), t_end=20.0, dt=0.2, fine_dt=1e-3, method="euler",
                          initial_conditions=euler.train[:, 0]), rtol=0, atol=1e-12)
    assert euler.train.shape == (10, 101, 10)


# The pendulums step in Python: at the default fine steps (1e-3 train, 1e-4 reference) the
# tiny elastic pendulum alone takes 78 s with the NumPy steps (measured: one RK4 step costs
# ~60 us and a reference split needs 500k of them, whatever the number of trajectories), and
# compiling the torch steps, which compile="auto" would then do, takes tens of seconds; so
# these use 1e-2 (the NumPy steps, a second or two).
FAST = dict(fine_dt=1e-2, reference_fine_dt=1e-2)


def test_load_elastic_pendulum_tiny(data_home, monkeypatch):
    data = load_elastic_pendulum(scale="tiny", **FAST)
    # 20k / 1k / 10k times 0.002; T = 50, dt = 0.1
    assert data.train.shape == (40, 501, 4)
    assert data.validation.shape == (2, 501, 4)
    assert data.test.shape == (20, 501, 4)
    assert data.dt == 0.1 and data.t_end == 50.0
    assert data.path.parent == data_home
    np.testing.assert_array_equal(data.train[:, 0, 1], 10.0)
    forbid_generation(monkeypatch)
    np.testing.assert_array_equal(load_elastic_pendulum(scale="tiny", **FAST).test, data.test)


def test_load_klink_pendulum_float_scale(data_home):
    data = load_klink_pendulum(n_links=3, scale=0.0005, **FAST)
    # 20k / 1k / 10k times 0.0005 = 10 / 0.5 -> at least 1 / 5; T = 10, dt = 0.1
    assert data.train.shape == (10, 101, 6)
    assert data.validation.shape == (1, 101, 6)
    assert data.test.shape == (5, 101, 6)
    assert isinstance(data.system, KLinkPendulum) and data.system.n_links == 3


def test_cache_key_depends_on_arguments(data_home, monkeypatch):
    a = load_spring_mass(n_masses=2, scale="tiny", random_state=0)
    b = load_spring_mass(n_masses=2, scale="tiny", random_state=1)
    assert a.path != b.path and not np.allclose(a.train[:, 0], b.train[:, 0])
    other = data_home.parent / "elsewhere"
    c = load_spring_mass(n_masses=2, scale="tiny", random_state=0, data_home=other)
    assert c.path.parent == other
    np.testing.assert_array_equal(c.train, a.train)
    assert sorted(p.name for p in data_home.iterdir()) == sorted([a.path.name, b.path.name])  # no temporaries


@pytest.mark.parametrize("scale", ["huge", "Paper ", 0.0, -0.1, 1.5, np.nan])
def test_bad_scale(scale, data_home):
    with pytest.raises(ValueError, match="scale"):
        load_spring_mass(n_masses=2, scale=scale)
    assert not data_home.exists() or not any(data_home.iterdir())  # nothing cached


def test_bad_loader_arguments(data_home):
    with pytest.raises(ValueError, match="train_method must be one of"):
        load_spring_mass(n_masses=2, scale="tiny", train_method="rk5")
    with pytest.raises(TypeError, match="random_state"):
        load_spring_mass(n_masses=2, scale="tiny", random_state=None)


def test_plain_rhs_callable_takes_n_state_from_initial_conditions():
    chain = SpringMass(n_masses=2)
    u0 = chain.sample_initial_conditions(3, random_state=0)
    stepped = make_trajectories(chain.rhs, t_end=1.0, dt=0.2, fine_dt=1e-2, initial_conditions=u0)
    reference = make_trajectories(chain, t_end=1.0, dt=0.2, fine_dt=1e-2, initial_conditions=u0)
    np.testing.assert_allclose(stepped, reference, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="initial_conditions"):
        make_trajectories(chain.rhs, t_end=1.0, dt=0.2, fine_dt=1e-2)
