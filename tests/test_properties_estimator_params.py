"""Estimator parameters, predict input, interrupted fits and extreme magnitudes: each bad value named,
nothing silently wrong."""

import re
import warnings

import numpy as np
import pytest
from helpers import interrupt_training_after
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_attns import HybridSolverRegressor, make_trajectories
from sklearn_attns.systems import SpringMass

pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.usefixtures("one_torch_thread")]
SYSTEM = SpringMass(n_masses=2)
X = make_trajectories(SYSTEM, n_trajectories=6, t_end=0.4, dt=0.1, fine_dt=0.01, random_state=0)


def small(**p):
    return HybridSolverRegressor(
        **{
            **dict(system=SYSTEM, dt=0.1, width=8, max_epochs=1, batch_size=8, device="cpu", random_state=0),
            **p,
        }
    )


def named(exc, name):
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", str(exc))


@pytest.mark.parametrize(
    "name, value",
    [
        ("validation_fraction", "a"),
        ("validation_fraction", None),
        ("input_noise", np.inf),
        ("tol", np.inf),
        ("early_stopping", "no"),
        ("warm_start", "no"),
        ("skip_connection", "no"),
        ("verbose", "x"),
        ("verbose", -1),
        ("random_state", "x"),
        ("random_state", -1),
        ("random_state", 1.5),
        ("activation", 0),
        ("activation", ""),
        ("substeps", 0),
        ("substeps", 1.5),
    ],
)
def test_fit_bad_param(name, value):
    with pytest.raises((ValueError, TypeError)) as info:
        small(**{name: value}).fit(X)
    assert named(info.value, name), str(info.value)


BEYOND_INT64 = [(name, -2**63 - 1) for name in ("depth", "width", "batch_size", "max_epochs", "rollout_steps",
                                                "n_iter_no_change")]
BEYOND_INT64 += [(name, -10**400) for name in ("dt", "learning_rate", "tol")]


@pytest.mark.parametrize("name, value", BEYOND_INT64)
def test_fit_names_integers_beyond_int64(name, value):
    """An int below -2**63 is as wrong as -1, and the error must say which parameter it is."""
    with pytest.raises((ValueError, TypeError)) as info:
        small(**{name: value}).fit(X)
    assert named(info.value, name), str(info.value)


@pytest.mark.parametrize(
    "X0", [np.ones(4), np.ones((2, 3, 4)), 1.0, "abc", np.ones((2, 4), complex), np.ones((0, 4))]
)
def test_predict_names_X(X0):
    est = small().fit(X)
    with pytest.raises((ValueError, TypeError)) as info:
        est.predict(X0, 2)
    assert named(info.value, "X"), str(info.value)


def test_predict_final_only_must_be_bool():
    with pytest.raises(TypeError, match="final_only"):
        small().fit(X).predict(X[:, 0], 2, final_only="no")


@settings(max_examples=15)
@given(k=st.integers(0, 12), max_epochs=st.integers(1, 3), early_stopping=st.booleans())
def test_interrupted_fit_attributes_are_consistent(k, max_epochs, early_stopping):
    """The recorded best is the best of the recorded history, whatever batch Ctrl-C hit.

    (``best_loss_`` and ``best_validation_score_`` are None or finite by construction, so
    their finiteness proves nothing; their definitions do: the least epoch loss, the
    greatest validation score, None before any epoch ended or for the other kind of fit.)
    """
    est = small(max_epochs=max_epochs, batch_size=4, early_stopping=early_stopping)
    with interrupt_training_after(k), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est.fit(X)
        except KeyboardInterrupt:
            pass  # reaches the caller; the estimator keeps the best weights so far
    assert len(est.loss_curve_) == est.n_iter_ <= max_epochs
    if early_stopping:
        assert est.best_loss_ is None and len(est.validation_scores_) == est.n_iter_
        assert est.best_validation_score_ == (max(est.validation_scores_) if est.n_iter_ else None)
    else:
        assert est.best_validation_score_ is None and est.validation_scores_ is None
        assert est.best_loss_ == (min(est.loss_curve_) if est.n_iter_ else None)


@pytest.fixture(scope="module")
def unit_predictions():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return small(max_epochs=2).fit(X).predict(X[:, 0], 3)


@pytest.mark.parametrize("magnitude", [1e40, 1e150])
def test_large_but_finite_data_fit_the_scaled_model(magnitude, unit_predictions):
    """Independent expectation: the chain is linear and the solver standardises its inputs
    and scales its outputs by the data, so the fit on ``magnitude * X`` predicts exactly
    ``magnitude`` times what the fit on ``X`` predicts (powers of ten above 1 leave the
    standardised float32 inputs as they are, up to float64 rounding)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = small(max_epochs=2).fit(X * magnitude)
        paths = est.predict(X[:, 0] * magnitude, 3)
    np.testing.assert_allclose(paths / magnitude, unit_predictions, rtol=1e-9,
                               atol=1e-9 * np.abs(unit_predictions).max())
