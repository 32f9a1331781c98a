"""The correction pieces: the rational activation, the network builder and one hybrid step."""

import warnings

import numpy as np
import pytest
import torch
from torch.func import functional_call

import sklearn_attns.rollout as rollout_module
from sklearn_attns import AttNSSolver, HybridSolverRegressor, make_trajectories
from sklearn_attns.corrections import CPU_BLOCK_BYTES, Rational, build_network, cpu_block_rows
from sklearn_attns.integrators import get_integrator
from sklearn_attns.systems import ODESystem, SpringMass, linear_operator_of

pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.usefixtures("one_torch_thread")]


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
    with torch.no_grad():  # the in-place inference path
        np.testing.assert_allclose(rational(torch.tensor(x)).numpy(), expected, rtol=1e-13, atol=1e-13)
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


@pytest.mark.parametrize("block_rows", [None, 3])
def test_rollout_step_flags_rows_that_are_no_longer_finite(trained_chain, block_rows):
    _, X, est = trained_chain
    step = est.model_.with_network(est.model_.network, est.model_.input_mean, est.model_.input_scale,
                                   est.model_.output_scale)
    u = torch.as_tensor(X[:6, 0].copy())
    u[1, 2], u[3, 0], u[5, 5] = float("nan"), float("inf"), float("-inf")
    with torch.no_grad():
        u_next, finite = step.rollout_step(u, block_rows)
        expected = step.step(u[[0, 2, 4]])
    assert finite.tolist() == [True, False, True, False, True, False]
    np.testing.assert_allclose(u_next[[0, 2, 4]], expected, rtol=1e-6, atol=1e-9)


def test_cpu_blocks_keep_the_hidden_layer_within_the_budget_per_thread(trained_chain, monkeypatch):
    _, X, est = trained_chain
    network = est.model_.network
    for threads in (1, 2, 3):
        rows = cpu_block_rows(network, threads)
        assert rows * 32 * 4 <= threads * CPU_BLOCK_BYTES < (rows + 1) * 32 * 4
    assert cpu_block_rows(network) == cpu_block_rows(network, torch.get_num_threads())
    # Predicting in blocks of 7 rows or in one batch (40 rows < rows) gives the same
    # rollouts, up to float32 rounding of products of other shapes.
    whole = est.predict(X[:, 0], n_steps=5)
    seen = []

    def seven_rows(network):
        seen.append(network)
        return 7

    monkeypatch.setattr(rollout_module, "cpu_block_rows", seven_rows)
    np.testing.assert_allclose(est.predict(X[:, 0], n_steps=5), whole, rtol=1e-6, atol=1e-9)
    assert seen == [network]


def test_sequence_modules_are_not_blocked():
    assert cpu_block_rows(build_network(6, width=8, module="lstm")) is None
    assert cpu_block_rows(build_network(6, width=8, module="transformer", skip_connection=True)) is None
    assert cpu_block_rows(None) is None


class DampedChain(SpringMass):
    """A chain whose rhs is not its inherited linear_operator."""

    def rhs(self, u):
        return super().rhs(u) - 0.5 * u


@pytest.mark.parametrize("operator", [None, "not a matrix", np.ones((6, 5)), np.eye(6)])
def test_only_an_operator_that_agrees_with_rhs_is_used(operator):
    system = ODESystem(rhs=SpringMass(n_masses=3).rhs, n_state=6)
    system.linear_operator = operator
    assert linear_operator_of(system) is None  # eye(6) is square but is not the chain's A


def test_a_subclass_rhs_wins_over_an_inherited_linear_operator(trained_chain):
    system, X, _ = trained_chain
    damped = DampedChain(n_masses=3)
    assert linear_operator_of(system) is not None and linear_operator_of(damped) is None
    est = HybridSolverRegressor(system=damped, dt=0.2, correction="none", device="cpu").fit(X)
    assert est.model_.slope_matrix_t is None
    expected = get_integrator("rk4").step(damped.rhs, X[:5, 0], 0.2)
    np.testing.assert_allclose(est.predict(X[:5, 0], n_steps=1)[:, 1], expected, rtol=1e-12, atol=1e-12)
    data = make_trajectories(damped, n_trajectories=2, t_end=0.4, dt=0.2, fine_dt=0.1, method="euler",
                             initial_conditions=X[:2, 0])
    np.testing.assert_allclose(data[:, 1], get_integrator("euler").step(
        damped.rhs, get_integrator("euler").step(damped.rhs, X[:2, 0], 0.1), 0.1), rtol=1e-12)


def test_warm_start_with_another_integrator_rebuilds_the_slope(trained_chain):
    system, X, _ = trained_chain
    est = AttNSSolver(system=system, dt=0.2, width=16, max_epochs=1, warm_start=True, device="cpu",
                      random_state=0).fit(X)
    est.set_params(integrator="euler", max_epochs=1).fit(X)
    u = torch.as_tensor(X[:5, 3])
    expected = get_integrator("euler").increment(system.rhs, X[:5, 3], 0.2)
    np.testing.assert_allclose(est.model_.slope(u), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("activation", ["sine", "rational", "tanh"])
def test_an_untrained_network_outputs_zero_at_any_depth(depth, activation):
    # With depth 1 the first layer is the last: SIREN's first-layer init must not touch it.
    network = build_network(4, depth=depth, width=8, activation=activation)
    assert network(torch.randn(5, 4)).abs().max().item() == 0.0
