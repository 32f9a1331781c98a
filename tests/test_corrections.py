"""The correction pieces: the rational activation, the network builder and one hybrid step."""

import warnings

import numpy as np
import pytest
import torch
from torch.func import functional_call

from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns.corrections import CPU_BLOCK_BYTES, Rational, build_network
from sklearn_attns.systems import SpringMass


@pytest.mark.parametrize("safe", [True, False])
def test_rational_is_its_formula_with_exact_gradients(safe):
    rational = Rational(safe=safe).double()
    with torch.no_grad():
        rational.numerator.copy_(torch.tensor([0.3, -0.7, 1.1, 0.4], dtype=torch.float64))
        rational.denominator.copy_(torch.tensor([2.5, 0.6, -0.2], dtype=torch.float64))
    x = np.linspace(-3, 3, 61)
    a, b = [0.3, -0.7, 1.1, 0.4], [2.5, 0.6, -0.2]
    p = a[0] + a[1] * x + a[2] * x**2 + a[3] * x**3
    q = b[1] * x + b[2] * x**2
    expected = p / (1 + np.abs(q)) if safe else p / (b[0] + q)
    np.testing.assert_allclose(rational(torch.tensor(x)).detach().numpy(), expected, rtol=1e-13, atol=1e-13)
    # Away from the kink of |q| (q = 0 at x = 0 and x = 3), autograd agrees with finite
    # differences, for the input and for the coefficients.
    inputs = torch.tensor([-2.1, -0.8, 0.45, 1.7, 2.6], dtype=torch.float64, requires_grad=True)
    coefficients = (rational.numerator.detach().clone().requires_grad_(),
                    rational.denominator.detach().clone().requires_grad_())

    def call(x, numerator, denominator):
        return functional_call(rational, {"numerator": numerator, "denominator": denominator}, (x,))

    assert torch.autograd.gradcheck(call, (inputs, *coefficients))


def test_rational_starts_as_the_relu_fit():
    # Boulle et al. (2020) initialise with the best (3, 2) approximation of ReLU on [-1, 1];
    # their reported maximal error is about 2e-2.
    x = torch.linspace(-1, 1, 2001)
    assert (Rational()(x) - torch.relu(x)).abs().max() < 0.025


def test_network_has_the_requested_shape_and_starts_at_zero():
    net = build_network(6, depth=3, width=16)
    shapes = [tuple(m.weight.shape) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert shapes == [(16, 6), (16, 16), (6, 16)]
    assert net(torch.randn(4, 6)).abs().max() == 0


@pytest.fixture(scope="module")
def trained_chain():
    system = SpringMass(n_masses=3)
    X = make_trajectories(system, n_trajectories=40, t_end=4.0, dt=0.2, fine_dt=1e-3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = AttNSSolver(system=system, dt=0.2, width=32, max_epochs=3, device="cpu", random_state=0).fit(X)
    return system, X, est


def test_linear_system_slope_is_one_product_equal_to_the_stage_loop(trained_chain):
    system, X, est = trained_chain
    step = est.model_
    assert step.slope_matrix_t is not None
    # The same step, but through the integrator's stage loop on the right-hand side.
    general = type(step)(system.rhs, step.integrator, step.dt, step.correction).with_network(
        step.network, step.input_mean, step.input_scale, step.output_scale)
    assert general.slope_matrix_t is None
    u = torch.as_tensor(X[:, 5])
    with torch.no_grad():
        np.testing.assert_allclose(step.slope(u), general.slope(u), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(step(u), general(u), rtol=1e-9, atol=1e-9)
        assert (step(u) - u - step.dt * step.slope(u)).abs().max() > 0  # the network is not zero
    # The slope matrix follows from the parameters, so it is not saved with the weights.
    assert "slope_matrix_t" not in step.state_dict()


def test_rollout_step_flags_rows_that_are_no_longer_finite(trained_chain):
    _, X, est = trained_chain
    u = torch.as_tensor(X[:4, 0].copy())
    u[1, 2], u[3, 0] = float("nan"), float("inf")
    with torch.no_grad():
        u_next, finite = est.model_.rollout_step(u)
    assert finite.tolist() == [True, False, True, False]
    assert torch.isfinite(u_next[[0, 2]]).all()


def test_cpu_blocks_keep_the_hidden_layer_within_the_budget(trained_chain):
    _, X, est = trained_chain
    rows = est.model_.cpu_block_rows
    assert rows * 32 * 4 <= CPU_BLOCK_BYTES < (rows + 1) * 32 * 4
    # Predicting in blocks of that size or in one batch gives the same rollouts.
    blocked = est.predict(X[:, 0], n_steps=5)
    est.model_.cpu_block_rows = 7
    try:
        np.testing.assert_allclose(est.predict(X[:, 0], n_steps=5), blocked, rtol=1e-12, atol=1e-12)
    finally:
        est.model_.cpu_block_rows = rows
