"""What ``fit`` promises whatever goes wrong: errors that name the cause, no half-fitted
state, reproducible fits in threads, and scikit-learn's stopping rule.

Each test here failed on an earlier version of the library (the fault it names)."""

import pickle
import warnings
from unittest import mock

import joblib
import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.neural_network import MLPRegressor
from sklearn.utils.validation import check_is_fitted

from sklearn_attns import HybridSolverRegressor, make_trajectories, training
from sklearn_attns.persistence import load_model, save_model
from sklearn_attns.systems import ODESystem, SpringMass

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SYSTEM = SpringMass(n_masses=2)
X = make_trajectories(SYSTEM, n_trajectories=16, t_end=2.0, dt=0.2, fine_dt=1e-2, random_state=0)


def small(**params):
    defaults = dict(system=SYSTEM, dt=0.2, width=16, max_epochs=2, batch_size=64, device="cpu",
                    random_state=0)
    return HybridSolverRegressor(**{**defaults, **params})


# --- warm_start and a changed network ---------------------------------------------------------


@pytest.mark.parametrize("change", [
    {"width": 8}, {"depth": 3}, {"module": "lstm"}, {"activation": "tanh"}, {"skip_connection": True},
    {"dtype": "float64"}, {"correction": "none"}, {"correction": "neurvec"}, {"attention_input": "S*dt"},
], ids=lambda change: ",".join(f"{k}={v}" for k, v in change.items()))
def test_warm_start_refuses_a_changed_network_and_names_the_parameter(change):
    est = small(warm_start=True).fit(X)
    before = est.predict(X[:, 0], 3)
    name = next(iter(change))
    with pytest.raises(ValueError, match=rf"\b{name}="):
        est.set_params(**change).fit(X)
    # the fitted model is untouched, and still pickles and saves
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X[:, 0], 3), before)


def test_warm_start_with_the_same_network_continues_and_round_trips(tmp_path):
    est = small(warm_start=True).fit(X)
    est.set_params(max_epochs=1, learning_rate=1e-4).fit(X)  # a training parameter may change
    assert est.n_iter_ == 3
    save_model(est, tmp_path / "m.npz")
    np.testing.assert_array_equal(load_model(tmp_path / "m.npz").predict(X[:, 0], 3), est.predict(X[:, 0], 3))


def test_a_pickle_rebuilds_the_fitted_network_not_the_current_parameters():
    est = small().fit(X)
    expected = est.predict(X[:, 0], 3)
    est.set_params(width=4)  # without a refit the fitted network still has width 16
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X[:, 0], 3), expected)


# --- the user's right-hand side ---------------------------------------------------------------


def one_column_rhs(u):
    """Returns (n, 1) for a 2-state system: broadcasting would hide the mistake."""
    return u[:, :1] * 0 - u[:, 1:]


def torch_cat_typo_rhs(u):
    """A pendulum with a typo: ``torch.cat`` of 1-D slices along dim 1 (meant ``stack``)."""
    return torch.cat([u[:, 1], -torch.sin(u[:, 0])], 1)


def numpy_only_pendulum(u):
    return np.stack([u[:, 1], -np.sin(u[:, 0])], 1)


PENDULUM_X = make_trajectories(ODESystem(rhs=numpy_only_pendulum, n_state=2), n_trajectories=8, t_end=2.0,
                               dt=0.2, fine_dt=1e-2, initial_conditions=np.full((8, 2), 0.3))


def test_rhs_of_the_wrong_shape_is_refused_with_both_shapes():
    with pytest.raises(ValueError, match=r"rhs.*\(2, 2\).*\(2, 1\)"):
        small(system=ODESystem(rhs=one_column_rhs, n_state=2)).fit(PENDULUM_X)


def test_a_bug_in_a_torch_rhs_propagates_with_its_own_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "does not accept torch tensors" guess
        with pytest.raises((IndexError, RuntimeError), match="[Dd]imension out of range"):
            small(system=ODESystem(rhs=torch_cat_typo_rhs, n_state=2)).fit(PENDULUM_X)


def test_a_numpy_only_rhs_still_falls_back_with_a_warning():
    with pytest.warns(UserWarning, match="does not accept torch tensors"):
        est = small(system=ODESystem(rhs=numpy_only_pendulum, n_state=2), correction="none").fit(PENDULUM_X)
    # the plain integrator through NumPy round trips is RK4 on the NumPy rhs
    from sklearn_attns.integrators import get_integrator

    expected = get_integrator("rk4").step(numpy_only_pendulum, PENDULUM_X[:, 0], 0.2)
    np.testing.assert_allclose(est.predict(PENDULUM_X[:, 0], 1)[:, 1], expected, rtol=1e-12)


# --- a fit that fails midway ------------------------------------------------------------------


def _failing_after(batches):
    original, calls = training.TeacherForcedData.batch_loss, []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > batches:
            raise RuntimeError("out of memory (simulated)")
        return original(self, *args, **kwargs)

    return mock.patch.object(training.TeacherForcedData, "batch_loss", failing)


def test_a_failed_first_fit_leaves_the_estimator_unfitted():
    est = small(max_epochs=3, batch_size=8)
    with _failing_after(3), pytest.raises(RuntimeError, match="simulated"):
        est.fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


@pytest.mark.parametrize("warm_start", [False, True])
def test_a_failed_refit_keeps_the_previous_model(warm_start):
    est = small(max_epochs=3, batch_size=8, warm_start=warm_start).fit(X)
    before, n_iter, curve = est.predict(X[:, 0], 5), est.n_iter_, list(est.loss_curve_)
    with _failing_after(3), pytest.raises(RuntimeError, match="simulated"):
        est.set_params(random_state=1).fit(X)
    np.testing.assert_array_equal(est.predict(X[:, 0], 5), before)
    assert est.n_iter_ == n_iter and est.loss_curve_ == curve


# --- fits in threads --------------------------------------------------------------------------


def _fit_predict(seed):
    return small(max_epochs=1, random_state=seed).fit(X).predict(X[:, 0], 5)


def test_fits_in_threads_repeat_the_serial_fit_and_leave_the_global_rng_alone():
    serial = [_fit_predict(seed) for seed in (0, 1)]
    state = torch.get_rng_state()
    with joblib.parallel_config(backend="threading", n_jobs=4):
        threaded = joblib.Parallel()(joblib.delayed(_fit_predict)(seed) for seed in [0, 1] * 8)
    for i, paths in enumerate(threaded):
        np.testing.assert_array_equal(paths, serial[i % 2])
    assert torch.equal(torch.get_rng_state(), state)


def test_a_fit_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    small().fit(X)
    assert torch.equal(torch.get_rng_state(), state)


# --- the stopping rule ------------------------------------------------------------------------


@pytest.mark.parametrize("patience", [1, 3])
def test_stopping_rule_is_scikit_learns(patience):
    # A tol no epoch can beat: scikit-learn's MLPRegressor stops after the first epoch and
    # ``n_iter_no_change + 1`` epochs without improvement; so must we.
    rng = np.random.RandomState(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPRegressor(hidden_layer_sizes=(4,), max_iter=50, n_iter_no_change=patience, tol=1e9,
                           random_state=0).fit(rng.normal(size=(20, 2)), rng.normal(size=20))
    est = small(max_epochs=50, n_iter_no_change=patience, tol=1e9).fit(X)
    assert est.n_iter_ == mlp.n_iter_ == patience + 2


def test_without_early_stopping_the_last_weights_are_kept():
    with mock.patch.object(training.EarlyStopping, "restore") as restore:
        small(max_epochs=3).fit(X)
    restore.assert_not_called()
    with mock.patch.object(training.EarlyStopping, "restore") as restore:
        small(max_epochs=3, early_stopping=True).fit(X)
    restore.assert_called_once()


# --- smaller faults -----------------------------------------------------------------------------


@pytest.mark.parametrize("param", [{"module": "bogus"}, {"activation": "bogus"}, {"width": 0}])
def test_network_parameters_are_checked_even_without_a_network(param):
    name = next(iter(param))
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        small(correction="none", **param).fit(X)


def test_a_validation_fraction_leaving_nothing_says_so():
    with pytest.raises(ValueError) as info:
        small(early_stopping=True, validation_fraction=0.999).fit(X)
    message = str(info.value)
    assert "validation_fraction=0.999" in message and "16 of the 16" in message and "none to train" in message


# --- the default training budget ------------------------------------------------------------


def test_a_default_fit_converges_without_a_warning_and_a_short_one_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = HybridSolverRegressor(system=SYSTEM, dt=0.2, device="cpu", random_state=0).fit(X)
    # 16 trajectories x 10 steps: batches of 128 (the floor), 2 per epoch, 300 epochs (the cap)
    assert est.n_iter_ == 300
    with pytest.warns(ConvergenceWarning, match="still falling"):
        HybridSolverRegressor(system=SYSTEM, dt=0.2, max_epochs=12, device="cpu", random_state=0).fit(X)
