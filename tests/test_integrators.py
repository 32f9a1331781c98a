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
    for matrix, expected in ((integrator.stability_polynomial(dt * a), integrator.step(lambda v: v @ a.T, u, dt)),
                             (integrator.slope_matrix(a, dt), integrator.increment(lambda v: v @ a.T, u, dt))):
        np.testing.assert_allclose(u @ matrix.T, expected, rtol=1e-10, atol=1e-10 * (1 + np.abs(expected).max()))


@given(seed=st.integers(0, 2**32 - 1), dim=st.integers(1, 6), dt=st.floats(1e-3, 2.0))
@pytest.mark.parametrize("name", sorted(ORDERS))
def test_stability_polynomial_and_slope_matrix_are_truncated_exponentials(name, seed, dim, dt):
    """An explicit method with s = p stages (p <= 4) has R(dt A) = sum_{k<=p} (dt A)^k / k!,
    and its slope matrix is M = (R(dt A) - I) / dt = sum_{1<=k<=p} dt^(k-1) A^k / k!."""
    a = np.random.RandomState(seed).normal(size=(dim, dim))
    integrator, order = get_integrator(name), ORDERS[name]
    powers = [np.linalg.matrix_power(a, k) / math.factorial(k) for k in range(order + 1)]
    for matrix, expected in ((integrator.stability_polynomial(dt * a), sum(dt**k * p for k, p in enumerate(powers))),
                             (integrator.slope_matrix(a, dt), sum(dt ** (k - 1) * p for k, p in enumerate(powers) if k))):
        np.testing.assert_allclose(matrix, expected, rtol=1e-12, atol=1e-12 * (1 + np.abs(expected).max()))
