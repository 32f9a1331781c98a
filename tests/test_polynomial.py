"""The polynomial correction (``module="polynomial"``), fitted by least squares.

Independent references: monomials written out here with NumPy, NumPy's own least-squares
solver on those monomials, and a map whose step residual is exactly a polynomial of the
state (so that a fit of that degree must reproduce it to rounding, and one of lower degree
cannot).
"""

import itertools
import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from helpers import raises_named

from sklearn_attns import AttNSSolver, HybridSolverRegressor, NeurVecSolver
from sklearn_attns.corrections import MAX_POLYNOMIAL_TERMS, Polynomial, build_network, cpu_block_rows
from sklearn_attns.persistence import load_model, save_model
from sklearn_attns.systems import SpringMass, linear_operator_of
from sklearn_attns.training import TeacherForcedData, fit_least_squares
from sklearn_attns.trajectories import check_trajectory_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SYSTEM = SpringMass(n_masses=2)
A = linear_operator_of(SYSTEM)
DT = 0.2


def numpy_monomials(z, degree):
    """Every product of at most ``degree`` columns of ``z``, the constant first."""
    columns = [np.prod(z[:, list(combo)], axis=1) if combo else np.ones(len(z))
               for d in range(degree + 1)
               for combo in itertools.combinations_with_replacement(range(z.shape[1]), d)]
    return np.stack(columns, 1)


def rk4_slope(u):
    """Classical RK4's slope for ``u' = A u``, written out (rows are states)."""
    k1 = u @ A.T
    k2 = (u + DT / 2 * k1) @ A.T
    k3 = (u + DT / 2 * k2) @ A.T
    k4 = (u + DT * k3) @ A.T
    return (k1 + 2 * k2 + 2 * k3 + k4) / 6


def residual(u):
    """A quadratic map of the state: what the true step adds to RK4's."""
    rng = np.random.RandomState(7)
    linear, quadratic = 0.02 * rng.randn(4, 4), 0.01 * rng.randn(4, 4, 4)
    return 1e-3 + u @ linear + np.einsum("ni,nj,kij->nk", u, u, quadratic)


def true_map(u0, n_steps):
    """RK4 plus the quadratic residual, iterated: ``(n, n_steps + 1, 4)``."""
    states = [u0]
    for _ in range(n_steps):
        u = states[-1]
        states.append(u + DT * rk4_slope(u) + residual(u))
    return np.stack(states, 1)


X_TRAIN = true_map(np.random.RandomState(0).uniform(-1, 1, (40, 4)), 5)
X_TEST = true_map(np.random.RandomState(1).uniform(-1, 1, (10, 4)), 5)


def polynomial_solver(**params):
    params = {"system": SYSTEM, "dt": DT, "module": "polynomial", "degree": 2, "dtype": "float64",
              "device": "cpu", "random_state": 0, **params}
    return NeurVecSolver(**params)


def test_terms_are_every_monomial_up_to_the_degree():
    poly = Polynomial(3, 2, degree=4)
    assert poly.n_terms == math.comb(3 + 4, 4) == len(set(poly.terms))
    z = torch.randn(6, 3, dtype=torch.float64)
    np.testing.assert_allclose(poly.monomials(z).numpy(), numpy_monomials(z.numpy(), 4), rtol=1e-14)


def test_untrained_polynomial_outputs_zero():
    net = build_network(5, n_outputs=3, module="polynomial", degree=2)
    assert net(torch.randn(4, 5)).abs().max().item() == 0 and net(torch.randn(4, 5)).shape == (4, 3)


def test_compiled_nested_horner_sums_equal_the_monomials_times_the_coefficients():
    poly = Polynomial(3, 2, degree=3).double()
    with torch.no_grad():
        poly.coefficients.copy_(torch.randn(poly.coefficients.shape, dtype=torch.float64))
    z = torch.randn(7, 3, dtype=torch.float64)
    expected = numpy_monomials(z.numpy(), 3) @ poly.coefficients.detach().numpy()
    with torch.no_grad():
        eager = poly(z)
        compiled = torch.compile(poly, fullgraph=True, dynamic=False)(z)
    np.testing.assert_allclose(eager.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(compiled.numpy(), expected, rtol=1e-12)


def test_a_polynomial_residual_of_the_fitted_degree_is_recovered():
    """The true step is RK4 plus a quadratic of the state: degree 2 reproduces it to
    rounding over several steps from new states; degree 1 cannot."""
    solver = polynomial_solver().fit(X_TRAIN)
    assert solver.n_iter_ == 1 and solver.loss_curve_[0] < 1e-20
    np.testing.assert_allclose(solver.predict(X_TEST[:, 0], n_steps=5), X_TEST, rtol=1e-9, atol=1e-11)
    affine = polynomial_solver(degree=1).fit(X_TRAIN)
    assert affine.loss_curve_[0] > 1e-4
    assert -affine.score(X_TEST) > 1e6 * -solver.score(X_TEST)


def test_least_squares_across_blocks_matches_numpy():
    """The blockwise QR gives NumPy's least-squares coefficients on the monomials of the
    standardised inputs (here AttNS with the state: inputs [S, u]), for a target that no
    polynomial fits exactly."""
    X = X_TRAIN + 1e-3 * np.sin(7 * X_TRAIN)
    solver = AttNSSolver(system=SYSTEM, dt=DT, module="polynomial", degree=2, state_input=True,
                         dtype="float64", device="cpu").fit(X)
    step = solver.model_
    data = TeacherForcedData(check_trajectory_set(X, SYSTEM), 1, step, "cpu", 64)
    fit_least_squares(step, data, loss_scale=data.loss_scale, block_rows=7)  # many blocks
    with torch.no_grad():
        z = (step.network_input(data.u, data.slope) - step.input_mean) / step.input_scale
        target = (data.residual / step.output_scale).numpy()
    expected = np.linalg.lstsq(numpy_monomials(z.numpy(), 2), target, rcond=None)[0]
    np.testing.assert_allclose(step.network.coefficients.detach().numpy(), expected, rtol=1e-8, atol=1e-10)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # compiled steps that disagree fall back, warning
def test_compiled_prediction_equals_eager():
    solver = polynomial_solver().fit(X_TRAIN)
    eager = solver.predict(X_TEST[:, 0], n_steps=5)
    compiled = solver.set_params(compile=True).predict(X_TEST[:, 0], n_steps=5)
    np.testing.assert_allclose(compiled, eager, rtol=1e-10, atol=1e-13)


def test_saved_and_pickled_solvers_predict_the_same(tmp_path):
    solver = polynomial_solver(degree=3).fit(X_TRAIN)
    assert solver.model_params_["degree"] == 3 and "width" not in solver.model_params_
    save_model(solver, tmp_path / "poly.npz")
    expected = solver.predict(X_TEST[:, 0], n_steps=5)
    for copy in (load_model(tmp_path / "poly.npz"), pickle.loads(pickle.dumps(solver))):
        np.testing.assert_array_equal(copy.predict(X_TEST[:, 0], n_steps=5), expected)


def test_early_stopping_scores_the_held_out_trajectories_once():
    solver = polynomial_solver(early_stopping=True, validation_fraction=0.25).fit(X_TRAIN)
    assert len(solver.validation_scores_) == 1 and solver.best_loss_ is None
    held_out = np.setdiff1d(np.arange(len(X_TRAIN)), solver.train_indices_)
    assert len(held_out) == 10
    assert solver.best_validation_score_ == pytest.approx(solver.score(X_TRAIN[held_out]), rel=1e-9)


def test_warm_start_refits_and_keeps_the_degree():
    solver = polynomial_solver(warm_start=True).fit(X_TRAIN[:20])
    solver.fit(X_TRAIN)
    assert solver.n_iter_ == 2 and solver.loss_curve_[1] < 1e-20
    with raises_named("degree"):
        solver.set_params(degree=3).fit(X_TRAIN)


def test_blocks_of_cpu_inference_count_the_monomials_until_compiled():
    """Eager, the matrix of monomials is a layer of n_terms; compiled, the step runs the
    polynomial's constant form, which builds no matrix and takes whole batches."""
    net = build_network(8, n_outputs=4, module="polynomial", degree=4).double()
    assert cpu_block_rows(net, threads=1) == 2 * 2**20 // (net.n_terms * 8)
    step = polynomial_solver().fit(X_TRAIN).model_
    assert step.traced_network is step.network
    step.compile()
    assert isinstance(step.traced_network, Polynomial) and step.traced_network is not step.network
    assert cpu_block_rows(step.traced_network) is None
    z = torch.randn(5, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(step.traced_network(z), step.network(z), rtol=0, atol=0)


@pytest.mark.parametrize("params, named", [
    ({"degree": 0}, "degree"), ({"degree": 2.5}, "degree"), ({"degree": True}, "degree"),
    ({"degree": 17}, "degree"),                       # comb(4 + 17, 17) terms: above the limit
    ({"rollout_steps": 2}, "rollout_steps"), ({"input_noise": 1e-5}, "input_noise"),
    ({"correction": "attns-m"}, "correction"),
])
def test_settings_a_least_squares_fit_cannot_take_are_refused(params, named):
    solver = polynomial_solver(**params)
    with raises_named(named):
        solver.fit(X_TRAIN)
    assert not hasattr(solver, "model_")


def test_fewer_steps_than_terms_warns():
    with pytest.warns(UserWarning, match="200 training steps for the 210 terms"):
        polynomial_solver(degree=6).fit(X_TRAIN)     # comb(4 + 6, 6) = 210 terms, 40 x 5 steps


def test_monomials_that_overflow_are_a_clear_error():
    """A one-state decay seen by NeurVec: 401 terms at degree 400, and one state far out in
    the tails (some 14 standard deviations of 200) whose power 400 overflows float64."""
    from sklearn_attns.systems import ODESystem

    decay = ODESystem(rhs=lambda u: -u, n_state=1)
    X = np.random.RandomState(0).uniform(0.5, 1.5, (200, 1, 1)) * np.exp(-0.2 * np.arange(2))[:, None]
    X[0] *= 1e6
    solver = NeurVecSolver(system=decay, dt=0.2, module="polynomial", degree=400, dtype="float64",
                           device="cpu")
    with raises_named("degree") as info:
        solver.fit(X)
    assert "overflow" in str(info.value) and not hasattr(solver, "model_")


def test_a_moved_or_reloaded_step_forgets_its_compiled_form():
    """The compiled form is a snapshot of the coefficients: loading other weights or moving
    the step drops it (and the compiled functions), so stepping follows the new weights."""
    first = polynomial_solver().fit(X_TRAIN).model_
    other = polynomial_solver().fit(X_TRAIN + 1e-3 * np.sin(X_TRAIN)).model_
    first.compile()
    assert first.network_for_compiler is not None
    first.load_state_dict(other.state_dict())
    assert first.network_for_compiler is None and first.compiled_step is None
    u = torch.as_tensor(X_TEST[:, 0])
    with torch.no_grad():
        torch.testing.assert_close(first.step(u), other.step(u), rtol=0, atol=0)
    first.compile()
    first.to(torch.float64)
    assert first.network_for_compiler is None and first.compiled_column_steps == {}


def test_the_term_limit_names_the_count():
    assert math.comb(4 + 16, 16) < MAX_POLYNOMIAL_TERMS < math.comb(4 + 17, 17)
    with pytest.raises(ValueError, match=f"{math.comb(21, 17)} terms"):
        polynomial_solver(degree=17).fit(X_TRAIN)


def test_a_parametric_system_is_corrected_through_its_conditioning():
    """Duffing-like oscillator with a damping parameter: the polynomial sees it and beats
    plain RK4 by orders of magnitude on new parameters and states."""
    from sklearn_attns import make_trajectories
    from sklearn_attns.systems import ODESystem

    def rhs(t, u, p):
        xp = torch if isinstance(u, torch.Tensor) else np
        return xp.stack([u[:, 1], -p[:, 0] * u[:, 1] - u[:, 0] - u[:, 0] ** 3], 1)

    system = ODESystem(rhs=rhs, n_state=2, n_params=1,
                       initial_conditions=lambda n, rng: rng.uniform(-1, 1, (n, 2)))
    rng = np.random.RandomState(0)
    train, test = rng.uniform(0.1, 0.4, (60, 1)), rng.uniform(0.1, 0.4, (10, 1))
    X = make_trajectories(system, 60, t_end=2.0, dt=0.4, fine_dt=0.01, params=train, random_state=0)
    X_new = make_trajectories(system, 10, t_end=2.0, dt=0.4, fine_dt=0.01, params=test, random_state=1)
    params = {"system": system, "dt": 0.4, "device": "cpu", "dtype": "float64", "state_input": True}
    hybrid = HybridSolverRegressor(module="polynomial", degree=3, **params).fit(X, params=train)
    plain = HybridSolverRegressor(correction="none", **params).fit(X, params=train)
    assert -hybrid.score(X_new, params=test) < 1e-3 * -plain.score(X_new, params=test)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a GPU machine)")
def test_a_gpu_fit_and_its_compiled_rollouts_agree_with_the_cpu():
    """The least squares on the device (QR there, the small triangle solved on the host) and
    the compiled constant form in a GPU kernel: the CPU's coefficients and rollouts."""
    cpu = polynomial_solver(degree=3).fit(X_TRAIN)
    gpu = polynomial_solver(degree=3, device="cuda").fit(X_TRAIN)
    assert gpu.device_.type == "cuda"
    np.testing.assert_allclose(gpu.model_.network.coefficients.detach().cpu().numpy(),
                               cpu.model_.network.coefficients.detach().numpy(), rtol=1e-7, atol=1e-9)
    expected = cpu.predict(X_TEST[:, 0], n_steps=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a compiled step that disagrees falls back, warning
        compiled = gpu.set_params(compile=True).predict(X_TEST[:, 0], n_steps=5)
    np.testing.assert_allclose(compiled, expected, rtol=1e-9, atol=1e-11)
