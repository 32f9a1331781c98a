"""Time-dependent, parametric and forced systems, and trajectories of different lengths.

References are independent: scipy's DOP853 at tight tolerance, and a plain RK4 loop
written here with the stage times of the classical method (0, 1/2, 1/2, 1)."""

import pickle

import numpy as np
import pytest
import sklearn
import torch
from scipy.integrate import solve_ivp
from sklearn.model_selection import GridSearchCV, cross_val_score

from sklearn_attns import AttNSSolver, HybridSolverRegressor
from sklearn_attns.persistence import load_model, save_model
from sklearn_attns.systems import ODESystem
from sklearn_attns.trajectories import from_solve_ivp

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

OMEGA = 1.2


def duffing(t, u, p):
    xp = torch if isinstance(u, torch.Tensor) else np
    x, v = u[:, 0], u[:, 1]
    return xp.stack([v, -p[:, 0] * v - x - x**3 + p[:, 1] * xp.cos(OMEGA * t)], 1)


def driven(t, u, p, w):
    """A damped oscillator driven by a measured signal ``w``."""
    xp = torch if isinstance(u, torch.Tensor) else np
    return xp.stack([u[:, 1], -0.3 * u[:, 1] - u[:, 0] + w[:, 0]], 1)


DUFFING = ODESystem(rhs=duffing, n_state=2, n_params=2, time_dependent=True)


def reference(rhs, u0, params, t0, t_end, dt):
    """scipy's DOP853 at tight tolerance, sampled every ``dt`` from ``t0`` to ``t_end``."""
    runs = []
    for u, p, start in zip(u0, params, t0):
        times = start + np.arange(0, t_end + 1e-9, dt)
        runs.append(solve_ivp(lambda t, y: rhs(np.array([t]), y[None], p[None])[0], (start, times[-1]), u,
                              method="DOP853", rtol=1e-12, atol=1e-12, t_eval=times))
    return runs


def duffing_data(n, t_end=4.0, seed=0):
    rng = np.random.RandomState(seed)
    P = rng.uniform([0.1, 0.2], [0.4, 0.6], size=(n, 2))
    u0 = rng.uniform(-1, 1, size=(n, 2))
    t0 = rng.uniform(0, 5, size=n)
    X, t0, _ = from_solve_ivp(reference(duffing, u0, P, t0, t_end, 0.1))
    return np.stack(X), P, t0


X_TRAIN, P_TRAIN, T0_TRAIN = duffing_data(60)
X_TEST, P_TEST, T0_TEST = duffing_data(20, seed=1)


def plain_rk4(rhs, u0, params, t0, dt, n_steps, inputs=None):
    """The classical RK4 loop with explicit stage times (and linearly interpolated inputs)."""
    u, t, path = u0.copy(), t0.copy(), [u0]
    for n in range(n_steps):
        def f(c, state):
            if inputs is None:
                return rhs(t + c * dt, state, params)
            w = inputs[:, n] + c * (inputs[:, n + 1] - inputs[:, n])
            return rhs(t + c * dt, state, params, w[:, None])
        k1 = f(0, u)
        k2 = f(0.5, u + dt / 2 * k1)
        k3 = f(0.5, u + dt / 2 * k2)
        k4 = f(1, u + dt * k3)
        u, t = u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), t + dt
        path.append(u)
    return np.stack(path, 1)


def small(**params):
    defaults = dict(system=DUFFING, dt=0.2, data_dt=0.1, width=32, max_epochs=30, batch_size=128,
                    device="cpu", random_state=0)
    return AttNSSolver(**{**defaults, **params})


def test_plain_solver_is_rk4_with_the_stage_times():
    est = small(correction="none").fit(X_TRAIN, params=P_TRAIN, t0=T0_TRAIN)
    paths = est.predict(X_TEST[:, 0], n_steps=20, params=P_TEST, t0=T0_TEST)
    expected = plain_rk4(duffing, X_TEST[:, 0], P_TEST, T0_TEST, 0.2, 20)
    np.testing.assert_allclose(paths, expected, rtol=1e-12, atol=1e-12)
    # and it is RK4: its error against DOP853 shrinks 16-fold when the step halves
    half = plain_rk4(duffing, X_TEST[:, 0], P_TEST, T0_TEST, 0.1, 40)[:, ::2]
    coarse_error = np.abs(paths[:, -1] - X_TEST[:, -1]).max()
    fine_error = np.abs(half[:, -1] - X_TEST[:, -1]).max()
    assert 10 < coarse_error / fine_error < 24


def test_plain_solver_with_substeps_is_rk4_at_the_fraction_with_its_stage_times():
    """Two substeps of a time-dependent system: each substep's stages at their own times."""
    est = small(correction="none", substeps=2).fit(X_TRAIN, params=P_TRAIN, t0=T0_TRAIN)
    paths = est.predict(X_TEST[:, 0], n_steps=20, params=P_TEST, t0=T0_TEST)
    expected = plain_rk4(duffing, X_TEST[:, 0], P_TEST, T0_TEST, 0.1, 40)[:, ::2]
    np.testing.assert_allclose(paths, expected, rtol=1e-12, atol=1e-12)


def test_a_forced_parametric_correction_beats_plain_rk4():
    plain = small(correction="none").fit(X_TRAIN, params=P_TRAIN, t0=T0_TRAIN)
    attns = small().fit(X_TRAIN, params=P_TRAIN, t0=T0_TRAIN)
    assert attns.model_params_["n_conditioning"] == 3  # t, and the two parameters
    assert (attns.score(X_TEST, params=P_TEST, t0=T0_TEST)
            > 10 * plain.score(X_TEST, params=P_TEST, t0=T0_TEST))


def test_without_conditioning_the_network_sees_the_correction_input_alone():
    est = small(condition_network=False, max_epochs=1).fit(X_TRAIN, params=P_TRAIN, t0=T0_TRAIN)
    assert est.model_params_["n_conditioning"] == 0
    assert est.model_.network[0].in_features == 2


@pytest.mark.parametrize("call, message", [
    (lambda est: est.fit(X_TRAIN), r"params is required"),
    (lambda est: est.fit(X_TRAIN, params=P_TRAIN[:5]), r"params must have shape"),
    (lambda est: est.fit(X_TRAIN, params=P_TRAIN, t0=np.zeros(3)), r"t0 must be"),
    (lambda est: est.fit(X_TRAIN, params=P_TRAIN, inputs=X_TRAIN), r"inputs was given"),
])
def test_missing_or_misshapen_conditioning_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call(small(max_epochs=1))


def test_predict_names_missing_params():
    est = small(max_epochs=1).fit(X_TRAIN, params=P_TRAIN)
    with pytest.raises(ValueError, match="params is required"):
        est.predict(X_TEST[:, 0], n_steps=3)


def test_conditioned_models_pickle_and_save(tmp_path):
    est = small(max_epochs=2).fit(X_TRAIN, params=P_TRAIN, t0=T0_TRAIN)
    expected = est.predict(X_TEST[:, 0], 5, params=P_TEST, t0=T0_TEST)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X_TEST[:, 0], 5, params=P_TEST,
                                                                          t0=T0_TEST), expected)
    save_model(est, tmp_path / "duffing.npz")
    loaded = load_model(tmp_path / "duffing.npz", system=DUFFING)
    np.testing.assert_array_equal(loaded.predict(X_TEST[:, 0], 5, params=P_TEST, t0=T0_TEST), expected)


def test_metadata_routing_carries_params_through_searches():
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(small(max_epochs=2), {"dt": [0.1, 0.2]}, cv=3, n_jobs=2)
        search.fit(X_TRAIN, params=P_TRAIN, t0=T0_TRAIN)
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()
        scores = cross_val_score(small(max_epochs=2), X_TRAIN, cv=3,
                                 params={"params": P_TRAIN, "t0": T0_TRAIN})
    assert scores.shape == (3,) and (scores < 0).all()


def test_ragged_trajectories_fit_and_score_as_their_points_weigh():
    lengths = [41, 31, 21, 41]
    X = [X_TRAIN[i, :length] for i, length in enumerate(lengths)]
    est = small(correction="none").fit(X, params=P_TRAIN[:4], t0=T0_TRAIN[:4])
    errors, counts = [], []
    for x, p, t0 in zip(X, P_TRAIN[:4], T0_TRAIN[:4]):
        n_steps = (len(x) - 1) // 2
        path = plain_rk4(duffing, x[None, 0], p[None], np.array([t0]), 0.2, n_steps)[0]
        errors.append(((path[1:] - x[::2][1:]) ** 2).mean(1).sum())
        counts.append(n_steps)
    expected = sum(errors) / sum(counts)
    np.testing.assert_allclose(-est.score(X, params=P_TRAIN[:4], t0=T0_TRAIN[:4]), expected, rtol=1e-10)


def test_forcing_given_as_data_is_interpolated_within_a_step():
    system = ODESystem(rhs=driven, n_state=2, n_inputs=1)
    rng = np.random.RandomState(0)
    # A drive measured every 0.1 while the solver steps 0.2: RK4's stages at c = 0, 1/2, 1
    # fall on measured samples 2n, 2n + 1, 2n + 2.
    u0 = rng.normal(size=(5, 2))
    inputs = np.sin(np.linspace(0, 4, 41) * rng.uniform(1, 3, (5, 1)))[:, :, None]
    X = np.repeat(u0[:, None], 41, 1)  # the plain solver learns nothing from the states
    est = HybridSolverRegressor(system=system, dt=0.2, data_dt=0.1, correction="none", device="cpu").fit(
        X, inputs=inputs)
    paths = est.predict(u0, n_steps=20, inputs=inputs)
    u, expected, dt = u0, [u0], 0.2
    for n in range(20):
        def f(k, state):
            return driven(None, state, None, inputs[:, 2 * n + k])
        k1 = f(0, u)
        k2 = f(1, u + dt / 2 * k1)
        k3 = f(1, u + dt / 2 * k2)
        k4 = f(2, u + dt * k3)
        u = u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        expected.append(u)
    np.testing.assert_allclose(paths, np.stack(expected, 1), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"inputs\[0\] must have shape"):
        est.predict(u0, n_steps=20, inputs=inputs[:, :21])


def test_parametric_spring_chain_conserves_its_scaled_energy_and_rescales_time():
    from sklearn_attns.systems import ParametricSpringMass, SpringMass

    system = ParametricSpringMass(n_masses=3)
    u0 = system.sample_initial_conditions(3, random_state=0)
    P = system.sample_params(3, random_state=1)
    runs = reference(system.evaluate, u0, P, np.zeros(3), 2.0, 0.5)
    X = np.stack([run.y.T for run in runs])
    energy = np.stack([system.energy(X[:, k], P) for k in range(X.shape[1])], 1)
    np.testing.assert_allclose(energy, np.repeat(energy[:, :1], energy.shape[1], 1), rtol=1e-9)
    # Positions follow the unit chain with time scaled by sqrt(stiffness / mass scale),
    # from the same positions and velocities.
    chain = SpringMass(n_masses=3)
    for u, p, run in zip(u0, P, runs):
        rate = np.sqrt(p[0] / p[1])
        start = np.concatenate([u[:3], u[3:] / (p[1] * rate)])  # same velocity in rescaled time
        unit = solve_ivp(lambda t, y: chain.rhs(y[None])[0], (0, 2.0 * rate), start, method="DOP853",
                         rtol=1e-12, atol=1e-12, t_eval=run.t * rate)
        np.testing.assert_allclose(run.y[:3], unit.y[:3], atol=1e-8)
