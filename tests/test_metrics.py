"""Metrics, checked against values worked out by hand."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sklearn_attns.metrics import mse_per_step, trajectory_mse


def test_trajectory_mse_leaves_out_the_initial_state():
    y_true = np.zeros((2, 3, 2))
    y_pred = np.zeros((2, 3, 2))
    y_pred[:, 0] = 1e6  # a wrong initial state is not counted
    assert trajectory_mse(y_true, y_pred) == 0.0
    y_pred[0, 1, 0] = 2.0  # one error of 2 among 2 trajectories x 2 times x 2 components
    y_pred[1, 2, 1] = -4.0  # and one of 4
    assert trajectory_mse(y_true, y_pred) == pytest.approx((4.0 + 16.0) / 8)


def test_trajectory_mse_two_times():
    y_true = np.array([[[1.0], [2.0]], [[3.0], [5.0]]])
    y_pred = np.array([[[0.0], [2.5]], [[9.0], [4.0]]])
    assert trajectory_mse(y_true, y_pred) == pytest.approx((0.25 + 1.0) / 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_trajectory_mse_is_inf_for_non_finite_predictions(bad):
    y_true = np.zeros((2, 4, 3))
    y_pred = np.zeros((2, 4, 3))
    y_pred[1, 2, 0] = bad  # 1e300 squared overflows: also infinite error
    with np.errstate(over="ignore", invalid="ignore"):
        assert trajectory_mse(y_true, y_pred) == np.inf


@pytest.mark.parametrize(
    "shape_true, shape_pred",
    [((2, 3, 4), (2, 3, 5)), ((2, 3, 4), (2, 4, 4)), ((2, 3, 4), (3, 3, 4)), ((3, 4), (3, 4)),
     ((2, 3, 4, 1), (2, 3, 4, 1))],
)
def test_shape_mismatch_raises(shape_true, shape_pred):
    for metric in (trajectory_mse, mse_per_step):
        with pytest.raises(ValueError, match="y_true and y_pred"):
            metric(np.zeros(shape_true), np.zeros(shape_pred))


def test_trajectory_mse_needs_two_times():
    with pytest.raises(ValueError, match="2 times"):
        trajectory_mse(np.zeros((2, 1, 3)), np.ones((2, 1, 3)))


def test_mse_per_step_by_hand():
    y_true = np.zeros((2, 2, 2))
    y_pred = np.array([[[1.0, 0.0], [0.0, 3.0]],
                       [[0.0, 1.0], [1.0, 1.0]]])
    # time 0: errors 1, 0, 0, 1 -> 2/4; time 1: 0, 9, 1, 1 -> 11/4
    np.testing.assert_allclose(mse_per_step(y_true, y_pred), [0.5, 2.75])
    np.testing.assert_allclose(mse_per_step(y_pred, y_true), [0.5, 2.75])  # symmetric


def test_accepts_lists():
    assert trajectory_mse([[[0.0], [1.0]]], [[[5.0], [3.0]]]) == pytest.approx(4.0)


finite = st.floats(-1e3, 1e3, allow_nan=False)


@given(
    data=st.data(),
    shape=st.tuples(st.integers(1, 4), st.integers(2, 5), st.integers(1, 3)),
)
def test_against_loops(data, shape):
    y_true = data.draw(arrays(np.float64, shape, elements=finite))
    y_pred = data.draw(arrays(np.float64, shape, elements=finite))
    n, t, d = shape
    per_step = [sum((y_pred[i, k, j] - y_true[i, k, j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
                for k in range(t)]
    np.testing.assert_allclose(mse_per_step(y_true, y_pred), per_step, rtol=1e-12, atol=1e-12)
    overall = sum(per_step[1:]) / (t - 1)
    assert trajectory_mse(y_true, y_pred) == pytest.approx(overall, rel=1e-12, abs=1e-12)
    assert trajectory_mse(y_true, y_true) == 0.0
