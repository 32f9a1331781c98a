"""Integrators: convergence order, the paper's formulas, backends and the linear shortcut.

Nothing here compares against numbers produced by the code under test: the references are
closed-form solutions, the formulas of the paper's Table 5 written out by hand, and the
truncated exponential series that any s-stage method of order s <= 4 must reproduce.
"""

import math

import numpy as np
import pytest
import torch
from helpers import param_id
from hypothesis import given
from hypothesis import strategies as st

from sklearn_attns.integrators import INTEGRATORS, Integrator, get_integrator
from sklearn_attns.systems import ElasticPendulum, KLinkPendulum

ORDERS = {"euler": 1, "heun": 2, "rk3": 3, "rk4": 4}


# --- Problems with closed-form solutions (float64, nonlinear) --------------------------------

def logistic(u):
    return u * (1.0 - u)


def logistic_exact(u0, t):
    return 1.0 / (1.0 + (1.0 / u0 - 1.0) * np.exp(-t))


def nonlinear_rotation(u):
    """(x, y)' = (x^2 + y^2) (-y, x): rho is conserved, so the flow is a rotation at rho0^2."""
    rho2 = (u**2).sum(1, keepdims=True)
    return rho2 * np.stack([-u[:, 1], u[:, 0]], 1)


def nonlinear_rotation_exact(u0, t):
    angle = (u0**2).sum(1) * t
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * u0[:, 0] - s * u0[:, 1], s * u0[:, 0] + c * u0[:, 1]], 1)


PROBLEMS = {
    "logistic": (logistic, logistic_exact, np.array([[0.1], [0.5], [2.0]]), 2.0),
    "rotation": (nonlinear_rotation, nonlinear_rotation_exact, np.array([[1.2, 0.0], [0.3, -0.9]]), 1.0),
}


def observed_order(integrator, problem, n_steps=(32, 64, 128, 256)):
    rhs, exact, u0, t_end = PROBLEMS[problem]
    steps, errors = [], []
    for n in n_steps:
        u, dt = u0.copy(), t_end / n
        for _ in range(n):
            u = integrator.step(rhs, u, dt)
        steps.append(dt)
        errors.append(np.abs(u - exact(u0, t_end)).max())
    return np.polyfit(np.log(steps), np.log(errors), 1)[0], errors


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("name", sorted(ORDERS))
def test_observed_global_order(name, problem):
    # Measured slopes (step sizes T/32 .. T/256), euler / heun / rk3 / rk4:
    # logistic 1.001 / 2.029 / 3.061 / 4.021, rotation 1.018 / 2.005 / 2.947 / 3.999.
    slope, errors = observed_order(get_integrator(name), problem)
    print(f"{name} on {problem}: slope {slope:.3f}, errors {errors}")
    assert abs(slope - ORDERS[name]) < 0.2
    assert get_integrator(name).order == ORDERS[name]


def test_order_estimate_can_tell_a_wrong_tableau():
    """The order test has teeth: RK4's stages with equal weights is only second order."""
    rk4 = get_integrator("rk4")
    wrong = Integrator("wrong", rk4.a, (0.25, 0.25, 0.25, 0.25), 4)
    slope, _ = observed_order(wrong, "logistic")
    assert abs(slope - 4) > 1.5


# --- The paper's formulas (Table 5 and Appendix), written out by hand ------------------------

def paper_increment(name, f, u, dt):
    if name == "euler":
        return f(u)
    if name == "heun":
        return (f(u) + f(u + dt * f(u))) / 2
    if name == "rk3":
        k1 = f(u)
        k2 = f(u + dt / 2 * k1)
        k3 = f(u - dt * k1 + 2 * dt * k2)
        return k1 / 6 + 2 * k2 / 3 + k3 / 6
    j1 = f(u)
    j2 = f(u + dt / 2 * j1)
    j3 = f(u + dt / 2 * j2)
    j4 = f(u + dt * j3)
    return (j1 + 2 * j2 + 2 * j3 + j4) / 6


def make_nonlinear_rhs(seed, dim):
    w = np.random.RandomState(seed).normal(size=(dim, dim))

    def rhs(u):
        return np.sin(u @ w) + u**2 * 0.1

    return rhs


@given(seed=st.integers(0, 2**32 - 1), dt=st.floats(1e-3, 0.5), dim=st.integers(1, 5))
@pytest.mark.parametrize("name", sorted(ORDERS))
def test_increment_matches_paper_formulas(name, seed, dt, dim):
    rhs = make_nonlinear_rhs(seed, dim)
    u = np.random.RandomState(seed + 1).normal(size=(3, dim))
    integrator = get_integrator(name)
    expected = paper_increment(name, rhs, u, dt)
    np.testing.assert_allclose(integrator.increment(rhs, u, dt), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(integrator.step(rhs, u, dt), u + dt * expected, rtol=1e-12, atol=1e-12)


# --- Backends: torch and NumPy give the same numbers, each keeps its dtype --------------------

@pytest.mark.parametrize("system", [ElasticPendulum(), KLinkPendulum(n_links=3)], ids=param_id)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(ORDERS))
def test_torch_matches_numpy_and_keeps_dtype(name, dtype, system):
    integrator = get_integrator(name)
    u = system.sample_initial_conditions(6, random_state=0)
    u[:, system.n_state // 2:] = np.random.RandomState(1).normal(size=(6, system.n_state // 2))
    expected = integrator.step(system.rhs, u, 0.05)
    for dt in (0.05, np.float64(0.05)):  # a NumPy scalar step must not upcast the tensor
        out = integrator.step(system.rhs, torch.as_tensor(u, dtype=dtype), dt)
        assert isinstance(out, torch.Tensor) and out.dtype == dtype
        tol = 1e-12 if dtype == torch.float64 else 2e-5
        np.testing.assert_allclose(out.numpy(), expected, rtol=tol, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(ORDERS))
def test_numpy_dtype_is_kept(name, dtype):
    u = np.random.RandomState(0).normal(size=(4, 2)).astype(dtype)
    assert get_integrator(name).step(nonlinear_rotation, u, 0.1).dtype == dtype
    assert get_integrator(name).increment(nonlinear_rotation, u, 0.1).dtype == dtype


def test_torch_step_is_differentiable():
    """Gradients flow through a step (hybrid solvers train through it): d step/d u0 for
    u' = -u with Euler is 1 - dt."""
    u = torch.ones(2, 1, dtype=torch.float64, requires_grad=True)
    get_integrator("euler").step(lambda v: -v, u, 0.1).sum().backward()
    np.testing.assert_allclose(u.grad.numpy(), 0.9)


# --- Lookup by name ---------------------------------------------------------------------------

def test_improved_euler_is_heun():
    assert get_integrator("improved_euler") is INTEGRATORS["heun"]
    assert get_integrator("improved_euler") is get_integrator("heun")


def test_names_are_case_insensitive_and_integrators_pass_through():
    assert get_integrator("RK4") is INTEGRATORS["rk4"]
    custom = Integrator("mine", ((),), (1.0,), 1)
    assert get_integrator(custom) is custom


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="integrator") as info:
        get_integrator("rk5")
    for valid in ("euler", "heun", "improved_euler", "rk3", "rk4"):
        assert repr(valid) in str(info.value)
    assert "rk5" in str(info.value)


@pytest.mark.parametrize("bad", [4, None, np.float64(1.0)])
def test_non_string_raises_type_error(bad):
    with pytest.raises(TypeError, match="integrator"):
        get_integrator(bad)


# --- Stability polynomial ---------------------------------------------------------------------

@given(seed=st.integers(0, 2**32 - 1), dim=st.integers(1, 6), dt=st.floats(1e-3, 1.0))
@pytest.mark.parametrize("name", sorted(ORDERS))
def test_stability_polynomial_and_slope_matrix_match_stepping_a_linear_system(name, seed, dim, dt):
    rng = np.random.RandomState(seed)
    a = rng.normal(size=(dim, dim))
    u = rng.normal(size=(5, dim))
    integrator = get_integrator(name)
    for matrix, expected in ((integrator.stability_polynomial(dt * a),
                              integrator.step(lambda v: v @ a.T, u, dt)),
                             (integrator.slope_matrix(a, dt),
                              integrator.increment(lambda v: v @ a.T, u, dt))):
        np.testing.assert_allclose(u @ matrix.T, expected, rtol=1e-10,
                                   atol=1e-10 * (1 + np.abs(expected).max()))


@given(seed=st.integers(0, 2**32 - 1), dim=st.integers(1, 6), dt=st.floats(1e-3, 2.0))
@pytest.mark.parametrize("name", sorted(ORDERS))
def test_stability_polynomial_and_slope_matrix_are_truncated_exponentials(name, seed, dim, dt):
    """An explicit method with s = p stages (p <= 4) has R(dt A) = sum_{k<=p} (dt A)^k / k!,
    and its slope matrix is M = (R(dt A) - I) / dt = sum_{1<=k<=p} dt^(k-1) A^k / k!."""
    a = np.random.RandomState(seed).normal(size=(dim, dim))
    integrator, order = get_integrator(name), ORDERS[name]
    powers = [np.linalg.matrix_power(a, k) / math.factorial(k) for k in range(order + 1)]
    for matrix, expected in ((integrator.stability_polynomial(dt * a),
                              sum(dt**k * p for k, p in enumerate(powers))),
                             (integrator.slope_matrix(a, dt),
                              sum(dt ** (k - 1) * p for k, p in enumerate(powers) if k))):
        np.testing.assert_allclose(matrix, expected, rtol=1e-12, atol=1e-12 * (1 + np.abs(expected).max()))


# --- Substeps ----------------------------------------------------------------------------------

@pytest.mark.parametrize("substeps", [2, 3])
@pytest.mark.parametrize("name", ["heun", "rk4", "dop853"])
def test_substeps_are_that_many_steps_of_the_fraction(name, substeps):
    """One step of dt with m substeps is m plain steps of dt / m, also where the right-hand
    side depends on the time within the step (each stage at its own node of its substep)."""
    integrator = get_integrator(name)
    many = integrator.with_substeps(substeps)
    u, dt = np.array([[0.3, -1.1], [1.2, 0.4]]), 0.3
    autonomous = nonlinear_rotation

    def forced(node, v):  # the step starts at t = 0: a node is a time in units of dt
        return nonlinear_rotation(v) + np.sin(3.0 * node * dt)

    expected_autonomous, expected_forced = u, u
    for j in range(substeps):
        expected_autonomous = integrator.step(autonomous, expected_autonomous, dt / substeps)
        start = j * dt / substeps
        at_substep = lambda node, v, start=start: forced((start + node * dt / substeps) / dt, v)  # noqa: E731
        expected_forced = integrator.step(at_substep, expected_forced, dt / substeps, at_nodes=True)
    np.testing.assert_allclose(many.step(autonomous, u, dt), expected_autonomous, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(many.step(forced, u, dt, at_nodes=True), expected_forced, rtol=1e-13,
                               atol=1e-14)
    assert many.order == integrator.order and many.name == integrator.name


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_substeps_keep_the_order_and_divide_the_error_by_m_to_the_order(problem):
    """RK4 with 2 substeps: global order 4, errors 2^4 = 16 times smaller at each step size."""
    rk4 = get_integrator("rk4")
    slope, errors = observed_order(rk4.with_substeps(2), problem)
    _, plain = observed_order(rk4, problem)
    assert abs(slope - 4) < 0.2
    np.testing.assert_allclose(np.array(plain) / np.array(errors), 16, rtol=0.15)


@given(seed=st.integers(0, 2**32 - 1), dim=st.integers(1, 5), dt=st.floats(1e-3, 1.0),
       substeps=st.integers(2, 4))
def test_substeps_stability_polynomial_is_the_power_of_the_substeps(seed, dim, dt, substeps):
    """R(dt A) with m substeps is R(dt A / m)^m, and its slope matrix steps a linear system."""
    rng = np.random.RandomState(seed)
    a, u = rng.normal(size=(dim, dim)), rng.normal(size=(3, dim))
    rk4 = get_integrator("rk4")
    many = rk4.with_substeps(substeps)
    power = np.linalg.matrix_power(rk4.stability_polynomial(dt * a / substeps), substeps)
    np.testing.assert_allclose(many.stability_polynomial(dt * a), power, rtol=1e-10,
                               atol=1e-10 * (1 + np.abs(power).max()))
    expected = many.increment(lambda v: v @ a.T, u, dt)
    np.testing.assert_allclose(u @ many.slope_matrix(a, dt).T, expected, rtol=1e-10,
                               atol=1e-10 * (1 + np.abs(expected).max()))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_substeps_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="substeps must be a positive int"):
        get_integrator("rk4").with_substeps(bad)


# --- DOP853's 8th-order method as a fixed-step tableau -----------------------------------------

# Step counts in each problem's asymptotic range and above rounding (errors 1e-10 .. 1e-14):
# the logistic solution starting at 2 has a pole at t = -log 2, so its errors settle later.
DOP853_STEPS = {"rotation": (5, 6, 8, 10, 12), "logistic": (16, 20, 24, 32)}


@pytest.mark.parametrize("problem", sorted(DOP853_STEPS))
def test_dop853_observed_order_is_8(problem):
    # Measured slopes: rotation 8.003 (errors 1.2e-10 .. 1.1e-13), logistic 7.926 (2.5e-12 .. 1.0e-14).
    slope, errors = observed_order(get_integrator("dop853"), problem, DOP853_STEPS[problem])
    print(f"dop853 on {problem}: slope {slope:.3f}, errors {errors}")
    assert abs(slope - 8) < 0.2
    assert get_integrator("dop853").order == 8


def _tableau_arrays(integrator):
    n = len(integrator.a)
    a = np.zeros((n, n))
    for i, row in enumerate(integrator.a):
        a[i, : len(row)] = row
    return a, np.array(integrator.b), np.array(integrator.c)


def test_dop853_meets_the_order_conditions_of_its_order():
    """Two families of order conditions, written from the theory rather than the code: the
    quadrature conditions sum(b c^(k-1)) = 1/k and, for the linear test equation, the
    Taylor coefficients b A^(k-1) 1 = 1/k! of exp(z), both for k = 1..8."""
    a, b, c = _tableau_arrays(get_integrator("dop853"))
    ones = np.ones(len(b))
    for k in range(1, 9):
        assert b @ c ** (k - 1) == pytest.approx(1 / k, rel=1e-13, abs=1e-14)
        assert b @ np.linalg.matrix_power(a, k - 1) @ ones == pytest.approx(1 / math.factorial(k), rel=1e-11)
    np.testing.assert_allclose(a.sum(1), c, rtol=0, atol=1e-14)
    # Not of order 9: the ninth Taylor coefficient is 2% off (rounding here is below 1e-15).
    assert abs(b @ np.linalg.matrix_power(a, 8) @ ones * math.factorial(9) - 1) > 0.01


def test_dop853_step_matches_scipys_runge_kutta_step():
    """scipy's DOP853 advances its 8th-order solution with ``rk_step`` on the same 12 stages."""
    from scipy.integrate._ivp import dop853_coefficients as coefficients
    from scipy.integrate._ivp.rk import rk_step

    u = np.array([1.2, -0.3])
    h = 0.3
    k = np.empty((coefficients.N_STAGES + 1, 2))
    stages = slice(None, coefficients.N_STAGES)
    expected, _ = rk_step(lambda t, y: nonlinear_rotation(y[None])[0], 0.0, u, nonlinear_rotation(u[None])[0],
                          h, coefficients.A[stages, stages], coefficients.B, coefficients.C[stages], k)
    ours = get_integrator("dop853").step(nonlinear_rotation, u[None], h)[0]
    np.testing.assert_allclose(ours, expected, rtol=1e-14, atol=1e-15)


# --- A tableau checks itself -----------------------------------------------------------------

BROKEN_TABLEAUX = {
    "upper triangle": (((0.5,), (1.0,)), (0.5, 0.5), 2, None, "strictly lower triangular"),
    "weights do not sum to 1": (((), (1.0,)), (0.5, 0.4), 2, None, r"sum\(b\) == 1"),
    "second-order condition": (((), (1.0,)), (1.0, 0.0), 2, None, r"sum\(b \* c\) == 1/2"),
    "nodes not the row sums": (((), (1.0,)), (0.5, 0.5), 2, (0.0, 0.5), "differs from the sum of row 1"),
    "one weight missing": (((), (1.0,)), (1.0,), 1, None, "one weight per stage"),
    "no stage": ((), (), 1, None, "at least one stage"),
    "non-finite": (((), (float("nan"),)), (0.5, 0.5), 1, None, "finite"),
    "order zero": (((),), (1.0,), 0, None, "order must be a positive int"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_TABLEAUX))
def test_broken_tableau_raises_value_error_naming_it(case):
    a, b, order, c, message = BROKEN_TABLEAUX[case]
    with pytest.raises(ValueError, match=message) as info:
        Integrator("broken", a, b, order, c)
    assert "'broken'" in str(info.value)


def test_a_corrupted_dop853_weight_is_caught():
    """One weight of the real tableau moved by 1e-6 (sum(b) is then 1 + 1e-6) does not pass."""
    dop853 = get_integrator("dop853")
    b = list(dop853.b)
    b[5] += 1e-6
    with pytest.raises(ValueError, match=r"sum\(b\) == 1"):
        Integrator("dop853-corrupted", dop853.a, tuple(b), 8, dop853.c)


def test_first_order_tableau_is_not_held_to_the_second_order_condition():
    """Euler's weights fail sum(b c) = 1/2 by construction; claiming order 1 is consistent."""
    assert Integrator("euler-like", ((), (1.0,)), (1.0, 0.0), 1).c == (0.0, 1.0)
