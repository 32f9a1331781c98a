"""scikit-learn's own estimator checks, GridSearchCV and friends, cloning and pickling."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
from helpers import damping, plain_rollout
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV, cross_val_score, cross_validate
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_attns import AttNSSolver, HybridSolverRegressor, NeurVecSolver
from sklearn_attns.metrics import trajectory_mse
from sklearn_attns.systems import SpringMass

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _small(**params):
    defaults = dict(system=damping, dt=0.1, width=8, max_epochs=2, batch_size=64, device="cpu",
                    random_state=0)
    return HybridSolverRegressor(**{**defaults, **params})


# Each exclusion with its reason. Our estimator learns from trajectories and predicts
# trajectories: `predict(X0, n_steps)` returns (n, n_steps + 1, n_state), not a target
# vector y, so the checks that compare predict's output with a y do not apply.
EXPECTED_FAILED = {
    "check_regressors_train": "predict returns trajectories (n, n_steps+1, n_state), not y of shape (n,)",
    "check_regressor_data_not_an_array": "predict returns trajectories, compared with y by the check",
    "check_supervised_y_2d": "y is ignored: the targets are the trajectories themselves",
    "check_supervised_y_no_nan": "y is ignored (the targets are the trajectories): an inf in y is no error",
}


def _expected_failed(estimator):
    return EXPECTED_FAILED


@parametrize_with_checks([_small()], expected_failed_checks=_expected_failed)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def _solver(system, **params):
    defaults = dict(system=system, dt=0.2, data_dt=0.1, width=16, max_epochs=2, batch_size=256, device="cpu",
                    random_state=0)
    return AttNSSolver(**{**defaults, **params})


def _plain_score(system, X, integrator="rk4", dt=0.2):
    """Minus the trajectory MSE of the plain integrator on ``X`` (spacing 0.1) at step ``dt``."""
    reference = X[:, ::int(round(dt / 0.1))]
    return -trajectory_mse(reference, plain_rollout(system.rhs, integrator, reference[:, 0], dt,
                                                    reference.shape[1] - 1))


# The correction starts at zero (the plain integrator) and two epochs at the default learning
# rate move it little on this data: every score lies within 10% of its plain integrator's
# (measured: within 2%). A search that scored another integrator, step or stride would be off
# by orders of magnitude (Euler against RK4 at these steps: 1e6 to 1e7).
NEAR_PLAIN = 0.1


def test_clone_get_set_params_keep_class_and_defaults():
    est = NeurVecSolver(system=SpringMass(n_masses=3), dt=0.1)
    assert est.correction == "neurvec"
    copy = clone(est)
    assert type(copy) is NeurVecSolver and copy.get_params()["dt"] == 0.1
    assert copy.get_params()["system__n_masses"] == 3
    copy.set_params(system__n_masses=5, correction="csm")
    assert copy.system.n_masses == 5 and copy.correction == "csm" and est.system.n_masses == 3


@pytest.mark.slow  # starts two worker processes, each importing torch
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_over_integrator_correction_and_dt_in_parallel(chain_data):
    system, X = chain_data
    grid = {"integrator": ["euler", "rk4"], "correction": ["attns", "neurvec"], "dt": [0.1, 0.2]}
    search = GridSearchCV(_solver(system), grid, cv=2, n_jobs=2).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 8
    # Two folds of 12 trajectories each: the mean of the fold scores is the score on all 24.
    plain = [_plain_score(system, X, p["integrator"], p["dt"]) for p in search.cv_results_["params"]]
    np.testing.assert_allclose(scores, plain, rtol=NEAR_PLAIN)
    # Independent of training: a 4th-order base method beats Euler by orders of magnitude
    # at these steps, so the best candidate uses RK4.
    assert search.best_params_["integrator"] == "rk4"
    assert search.best_estimator_.predict(X[:2, 0], n_steps=3).shape == (2, 4, 4)


@pytest.mark.slow  # starts two worker processes, each importing torch
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_randomized_search_and_cross_validation_in_parallel(chain_data):
    """Each score is the score of its own folds (scores are capped, so finite by
    construction: they are compared with the plain RK4 integrator's on the same folds)."""
    system, X = chain_data
    search = RandomizedSearchCV(_solver(system), {"width": [8, 16], "learning_rate": [1e-3, 3e-3]}, n_iter=2,
                                cv=2, n_jobs=2, random_state=0).fit(X)
    assert search.best_score_ == pytest.approx(_plain_score(system, X), rel=NEAR_PLAIN)
    scores = cross_val_score(_solver(system), X, cv=3, n_jobs=2)
    folds = list(KFold(3).split(X))  # what cv=3 means for a regressor
    np.testing.assert_allclose(scores, [_plain_score(system, X[test]) for _, test in folds], rtol=NEAR_PLAIN)
    results = cross_validate(_solver(system), X, cv=2, n_jobs=2, return_train_score=True)
    folds = list(KFold(2).split(X))
    np.testing.assert_allclose(results["train_score"], [_plain_score(system, X[train]) for train, _ in folds],
                               rtol=NEAR_PLAIN)
    np.testing.assert_allclose(results["test_score"], [_plain_score(system, X[test]) for _, test in folds],
                               rtol=NEAR_PLAIN)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pickle_and_joblib_round_trips_predict_identically(chain_data, tmp_path):
    system, X = chain_data
    est = _solver(system).fit(X)
    expected = est.predict(X[:5, 0], n_steps=10)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict(X[:5, 0], n_steps=10), expected)
    joblib.dump(est, tmp_path / "solver.joblib")
    loaded = joblib.load(tmp_path / "solver.joblib")
    np.testing.assert_array_equal(loaded.predict(X[:5, 0], n_steps=10), expected)
    assert restored.loss_curve_ == est.loss_curve_
