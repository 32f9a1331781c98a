"""Trajectory generation for conditioned systems: time-dependent right-hand sides,
parameters per trajectory and input signals sampled at the output times.

Judged against scipy's DOP853 at tight tolerance, against exact solutions (an integrated
piecewise-linear or piecewise-constant input; a linear ODE with a held input), and by the
convergence order of RK4 on a time-dependent problem, which only comes out as 4 when every
stage is evaluated at its own time.
"""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sklearn_attns._array import namespace
from sklearn_attns.datasets import make_trajectories
from sklearn_attns.systems import ElasticPendulum, ODESystem


def duffing(t, u, p):
    xp = namespace(u)
    x, v = u[:, 0], u[:, 1]
    return xp.stack([v, -p[:, 0] * v - x - x**3 + p[:, 1] * xp.cos(1.2 * t)], 1)


def unit_box(n, rng):
    return rng.uniform(-1.0, 1.0, size=(n, 2))


def integrate_input(t, u, p, w):
    """du/dt = w(t): u is the integral of the input signal."""
    return w + 0 * u


def relax_to_input(t, u, p, w):
    """du/dt = -u + w(t)."""
    return w - u


def forced_decay(t, u, p):
    """du/dt = -p u + sin(3 t): u(t) = e^{-p t} (u(0) - s(0)) + s(t) with s the forced response."""
    xp = namespace(u)
    return -p[:, :1] * u + xp.sin(3.0 * t)[:, None]


def forced_decay_exact(t, t0, u0, p):
    def s(t):  # particular solution of u' = -p u + sin(3t): (p sin 3t - 3 cos 3t) / (p^2 + 9)
        return (p * np.sin(3.0 * t) - 3.0 * np.cos(3.0 * t)) / (p**2 + 9.0)
    return np.exp(-p * (t - t0)) * (u0 - s(t0)) + s(t)


def pendulum_with_torque(t, u, p, w):
    """A damped pendulum driven by an input torque w (one input), damping p."""
    xp = namespace(u)
    theta, omega = u[:, 0], u[:, 1]
    return xp.stack([omega, -p[:, 0] * omega - xp.sin(theta) + w[:, 0]], 1)


def duffing_system():
    return ODESystem(rhs=duffing, n_state=2, n_params=2, time_dependent=True, initial_conditions=unit_box)


# --- The forced, parametric Duffing oscillator against DOP853 ------------------------------------

@pytest.mark.slow
def test_duffing_contract_matches_dop853():
    """The documented example, as given: 500 trajectories, T = 20; three against DOP853."""
    rng = np.random.RandomState(0)
    P = rng.uniform([0.1, 0.2], [0.4, 0.6], size=(500, 2))
    X = make_trajectories(duffing_system(), n_trajectories=500, t_end=20.0, dt=0.1, params=P, random_state=0)
    assert X.shape == (500, 201, 2) and X.dtype == np.float64
    np.testing.assert_array_equal(X[:, 0], duffing_system().sample_initial_conditions(500, random_state=0))
    times = 0.1 * np.arange(201)
    for i in (0, 17, 499):
        def f(t, y, p=P[i]):
            return duffing(np.array([t]), y[None], p[None])[0]
        ref = solve_ivp(f, (0.0, 20.0), X[i, 0], method="DOP853", rtol=1e-12, atol=1e-12, t_eval=times)
        # RK4 at fine_dt = 1e-3: measured max 4.3e-12 over the three
        assert np.abs(X[i] - ref.y.T).max() < 1e-10


def test_duffing_with_start_times_matches_dop853():
    """Per-trajectory start times shift the drive's phase: each trajectory against DOP853."""
    P = np.array([[0.1, 0.2], [0.3, 0.6], [0.25, 0.4]])
    t0 = np.array([0.0, 1.3, -2.0])
    u0 = np.array([[0.5, 0.0], [-1.0, 0.3], [0.2, -0.2]])
    X = make_trajectories(duffing_system(), t_end=5.0, dt=0.1, fine_dt=1e-3, initial_conditions=u0,
                          params=P, t0=t0)
    for i in range(3):
        def f(t, y, p=P[i]):
            return duffing(np.array([t]), y[None], p[None])[0]
        times = t0[i] + 0.1 * np.arange(51)
        ref = solve_ivp(f, (t0[i], times[-1]), u0[i], method="DOP853", rtol=1e-12, atol=1e-12, t_eval=times)
        # measured max 7.3e-12 over the three
        assert np.abs(X[i] - ref.y.T).max() < 1e-10, i


def test_input_driven_pendulum_matches_dop853_per_sample_interval():
    """A linearly interpolated torque, against DOP853 restarted at every sample (where the
    interpolated signal has a kink) with the signal given by np.interp."""
    rng = np.random.RandomState(1)
    n_times, dt = 31, 0.1
    W = rng.normal(size=(2, n_times, 1))
    P = np.array([[0.1], [0.5]])
    u0 = np.array([[0.3, 0.0], [-0.5, 1.0]])
    system = ODESystem(rhs=pendulum_with_torque, n_state=2, n_params=1, n_inputs=1)
    X = make_trajectories(system, t_end=3.0, dt=dt, fine_dt=1e-3, initial_conditions=u0, params=P, inputs=W)
    times = dt * np.arange(n_times)
    for i in range(2):
        def f(t, y, i=i):
            w = np.interp(t, times, W[i, :, 0])
            return pendulum_with_torque(None, y[None], P[i][None], np.array([[w]]))[0]
        y, path = u0[i], [u0[i]]
        for k in range(n_times - 1):
            y = solve_ivp(f, (times[k], times[k + 1]), y, method="DOP853", rtol=1e-12, atol=1e-12).y[:, -1]
            path.append(y)
        # measured max 2.3e-13 over the two
        assert np.abs(X[i] - np.array(path)).max() < 1e-11


# --- Input signals against exact solutions ------------------------------------------------------

def test_linear_input_is_integrated_exactly():
    """du/dt = w with w linear between samples: u(t_k) = u0 + the trapezoid sums of the
    samples (exact); RK4 integrates the quadratic u exactly, whatever fine_dt. A stage
    that saw the input at the wrong time would be off by O(fine_dt)."""
    rng = np.random.RandomState(0)
    W = rng.normal(size=(4, 21, 3))
    u0 = rng.normal(size=(4, 3))
    system = ODESystem(rhs=integrate_input, n_state=3, n_inputs=3)
    X = make_trajectories(system, t_end=2.0, dt=0.1, fine_dt=0.025, initial_conditions=u0, inputs=W)
    trapezoids = 0.1 * (W[:, 1:] + W[:, :-1]) / 2
    expected = u0[:, None] + np.concatenate([np.zeros((4, 1, 3)), np.cumsum(trapezoids, axis=1)], axis=1)
    np.testing.assert_allclose(X, expected, rtol=0, atol=1e-13)


def test_held_input_is_integrated_exactly():
    """With "hold", du/dt = w integrates to u0 + dt times the left samples."""
    rng = np.random.RandomState(0)
    W = rng.normal(size=(3, 11, 2))
    system = ODESystem(rhs=integrate_input, n_state=2, n_inputs=2, input_interpolation="hold")
    X = make_trajectories(system, t_end=1.0, dt=0.1, fine_dt=0.02, initial_conditions=np.zeros((3, 2)),
                          inputs=W)
    expected = np.concatenate([np.zeros((3, 1, 2)), np.cumsum(0.1 * W[:, :-1], axis=1)], axis=1)
    np.testing.assert_allclose(X, expected, rtol=0, atol=1e-13)


def test_held_input_drives_the_exact_piecewise_solution():
    """du/dt = -u + w, w held at w_k on [t_k, t_k+1): u_{k+1} = w_k + (u_k - w_k) e^{-dt}."""
    rng = np.random.RandomState(2)
    W = rng.normal(size=(3, 41, 1))
    u0 = rng.normal(size=(3, 1))
    system = ODESystem(rhs=relax_to_input, n_state=1, n_inputs=1, input_interpolation="hold")
    X = make_trajectories(system, t_end=4.0, dt=0.1, fine_dt=1e-3, initial_conditions=u0, inputs=W)
    expected = [u0]
    for k in range(40):
        expected.append(W[:, k] + (expected[-1] - W[:, k]) * np.exp(-0.1))
    # measured 4.7e-15 (RK4's local error at h = 1e-3 is ~1e-16 per step)
    np.testing.assert_allclose(X, np.stack(expected, axis=1), rtol=0, atol=1e-12)


# --- Stage times: the convergence order ---------------------------------------------------------

def test_rk4_converges_at_order_four_on_a_time_dependent_problem():
    """Halving fine_dt divides the error by ~16 only when the stages see their own times
    (a stage evaluated at the step's start gives order 1)."""
    p = np.array([[0.5], [2.0]])
    t0 = np.array([0.0, 0.7])
    u0 = np.array([[1.0], [-0.5]])
    system = ODESystem(rhs=forced_decay, n_state=1, n_params=1, time_dependent=True)
    exact = forced_decay_exact(t0[:, None] + 0.4 * np.arange(11), t0[:, None], u0, p)
    errors = []
    for fine_dt in (0.1, 0.05, 0.025):
        X = make_trajectories(system, t_end=4.0, dt=0.4, fine_dt=fine_dt, initial_conditions=u0, params=p,
                              t0=t0)
        errors.append(np.abs(X[..., 0] - exact).max())
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    print("errors", errors, "ratios", ratios)
    assert errors[-1] < 1e-7
    assert np.all((ratios > 13) & (ratios < 19)), ratios


@pytest.mark.parametrize("method, order", [("euler", 1), ("heun", 2), ("rk3", 3)])
def test_lower_order_methods_keep_their_order_on_a_time_dependent_problem(method, order):
    p, u0 = np.array([[1.0]]), np.array([[1.0]])
    system = ODESystem(rhs=forced_decay, n_state=1, n_params=1, time_dependent=True)
    exact = forced_decay_exact(0.4 * np.arange(11), 0.0, u0, p)
    kwargs = dict(t_end=4.0, dt=0.4, method=method, initial_conditions=u0, params=p)
    errors = [np.abs(make_trajectories(system, fine_dt=h, **kwargs)[..., 0] - exact).max()
              for h in (0.01, 0.005)]
    assert 0.8 * 2**order < errors[0] / errors[1] < 1.2 * 2**order


# --- Shapes, counts, parallel runs ----------------------------------------------------------------

def test_number_of_trajectories_from_params():
    P = np.full((7, 2), 0.3)
    X = make_trajectories(duffing_system(), t_end=0.2, dt=0.1, fine_dt=0.05, params=P, random_state=0)
    assert X.shape == (7, 3, 2)


def test_parallel_equals_serial_with_conditions():
    rng = np.random.RandomState(0)
    system = ODESystem(rhs=pendulum_with_torque, n_state=2, n_params=1, n_inputs=1, time_dependent=True,
                       initial_conditions=unit_box)
    kwargs = dict(n_trajectories=9, t_end=1.0, dt=0.1, fine_dt=0.01, random_state=0,
                  params=rng.uniform(0, 1, (9, 1)), inputs=rng.normal(size=(9, 11, 1)), t0=rng.normal(size=9))
    np.testing.assert_array_equal(make_trajectories(system, n_jobs=2, **kwargs),
                                  make_trajectories(system, n_jobs=1, **kwargs))


# --- Input validation --------------------------------------------------------------------------

U0 = np.zeros((3, 2))


@pytest.mark.parametrize(
    "system, change, error, match",
    [
        (duffing_system(), dict(), ValueError, "params is required"),
        (duffing_system(), dict(params=np.ones((2, 2))), ValueError, "params must have shape"),
        (duffing_system(), dict(params=np.ones((3, 1))), ValueError, "params must have shape"),
        (duffing_system(), dict(params=np.full((3, 2), np.nan)), ValueError, "params must be finite"),
        (duffing_system(), dict(params=np.ones((3, 2)), t0=np.zeros(2)), ValueError, "t0"),
        (duffing_system(), dict(params=np.ones((3, 2)), inputs=np.ones((3, 11, 1))), ValueError,
         "inputs was given"),
        (ElasticPendulum(), dict(params=np.ones((3, 2))), ValueError, "params was given"),
        (ODESystem(rhs=integrate_input, n_state=2, n_inputs=2), dict(), ValueError, "inputs is required"),
        (ODESystem(rhs=integrate_input, n_state=2, n_inputs=2), dict(inputs=np.ones((3, 10, 2))), ValueError,
         r"inputs\[0\] must have shape"),
        (ODESystem(rhs=integrate_input, n_state=2, n_inputs=2, input_interpolation="cubic"),
         dict(inputs=np.ones((3, 11, 2))), ValueError, "input_interpolation"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_conditioning_raises_naming_the_argument(system, change, error, match):
    u0 = np.zeros((3, system.n_state))
    with pytest.raises(error, match=match):
        make_trajectories(system, t_end=1.0, dt=0.1, fine_dt=0.05, initial_conditions=u0, **change)


def test_conditioned_system_without_a_sampler_says_how_to_give_initial_conditions():
    system = ODESystem(rhs=duffing, n_state=2, n_params=2, time_dependent=True)
    with pytest.raises(ValueError, match="initial_conditions"):
        make_trajectories(system, n_trajectories=3, t_end=1.0, dt=0.1, params=np.ones((3, 2)))
