"""Property-based robustness of the estimators: fit, predict and score.

* every bad parameter or input gets a ``ValueError`` or ``TypeError`` that names it;
* valid, small fits give finite predictions (or an explicit warning), and their score is
  minus the trajectory MSE of those predictions (the score itself is capped, so always
  finite: its finiteness proves nothing);
* where the correction is zero (no training yet, ``correction="none"``, or a fit
  interrupted before its first epoch ended), predictions are the plain integrator's;
* the chain is linear and the solvers standardise their inputs: data scaled by any
  factor give the same solver, scaled;
* the same ``random_state`` gives the same CPU predictions, whatever the global RNGs did;
* a fit interrupted (Ctrl-C) at any batch leaves a usable estimator.

Fits are tiny (a two-mass chain, width 8, one or two epochs) so that the file runs in seconds.
"""

import warnings
from functools import partial

import helpers
import numpy as np
import pytest
import torch
from helpers import damping, interrupt_training_after, plain_rollout
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.exceptions import ConvergenceWarning

from sklearn_attns import HybridSolverRegressor, make_trajectories
from sklearn_attns.corrections import CORRECTIONS
from sklearn_attns.estimator import MAX_SCORE_ERROR
from sklearn_attns.integrators import INTEGRATORS
from sklearn_attns.metrics import trajectory_mse
from sklearn_attns.rollout import RolloutWarning
from sklearn_attns.systems import ODESystem, SpringMass

pytestmark = [pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.usefixtures("one_torch_thread")]


# This module's fits are the slowest: a minute before a call counts as hanging.
no_hang = partial(helpers.no_hang, seconds=60)
raises_named = partial(helpers.raises_named, seconds=60)


SYSTEM = SpringMass(n_masses=2)
# 6 trajectories of 5 states, 0.1 apart (so dt=0.2 has stride 2 and dt=0.1 stride 1).
X = make_trajectories(SYSTEM, n_trajectories=6, t_end=0.4, dt=0.1, fine_dt=0.01, random_state=0)
SMALL = dict(system=SYSTEM, dt=0.1, width=8, max_epochs=1, batch_size=8, device="cpu", random_state=0)


def small(**params):
    return HybridSolverRegressor(**{**SMALL, **params})


@pytest.fixture(scope="module")
def fitted():
    return small().fit(X)


@pytest.fixture(scope="module")
def untrained():
    """Fitted without training: its correction is zero, so it predicts as plain RK4 does."""
    return small(max_epochs=0).fit(X)


def rollout_mse(est, data, stride):
    """Minus ``est.score(data)`` by definition: the trajectory MSE of ``est.predict``'s
    rollouts from ``data[:, 0]`` against the states of ``data`` every ``stride`` samples."""
    reference = data[:, ::stride]
    return trajectory_mse(reference, est.predict(data[:, 0], reference.shape[1] - 1))


# --- bad parameters -------------------------------------------------------------------------

not_a_number = st.one_of(st.none(), st.text(max_size=3), st.just([1]), st.complex_numbers(allow_nan=False))
non_finite = st.sampled_from([np.nan, np.inf, -np.inf])
# Integers beyond int64 are left to test_properties_estimator_params.py's
# test_fit_names_integers_beyond_int64 (refused, but without the parameter's name).
bad_count = st.one_of(not_a_number, st.booleans(), st.integers(min_value=-2**63, max_value=0),
                      st.floats(allow_nan=True))
bad_positive = st.one_of(not_a_number, st.booleans(), non_finite, st.floats(max_value=0.0))
bad_name = st.one_of(st.none(), st.integers(), st.text(max_size=4))
ACTIVATIONS = ("rational", "rational-original", "sine", "relu", "tanh", "gelu")

BAD_PARAMETERS = {
    "system": st.one_of(st.integers(), st.text(max_size=3), st.just(np.ones(3)),
                        st.just(SpringMass(n_masses=3))),
    "dt": bad_positive,
    "data_dt": st.one_of(bad_positive.filter(lambda v: v is not None), st.just(0.03)),
    "integrator": bad_name.filter(
        lambda v: not (isinstance(v, str) and v.lower() in (*INTEGRATORS, "improved_euler"))),
    "correction": bad_name.filter(lambda v: not (isinstance(v, str) and v.lower() in CORRECTIONS)),
    "data_fraction": st.one_of(bad_positive, st.floats(1.0, exclude_min=True), st.just(0.1)),
    "depth": bad_count,
    "width": bad_count,
    "activation": st.one_of(st.integers(), st.text(max_size=4)).filter(lambda v: v not in ACTIVATIONS),
    "module": bad_name.filter(lambda v: v not in ("mlp", "lstm", "transformer")),
    "attention_input": st.one_of(st.none(), st.integers(),
                                 st.text(max_size=4).filter(lambda s: s not in ("S", "S*dt"))),
    "rollout_steps": st.one_of(bad_count, st.integers(5, 10)),
    "input_noise": st.one_of(not_a_number, st.floats(max_value=0.0, exclude_max=True), st.just(np.nan)),
    "learning_rate": bad_positive,
    "max_epochs": st.one_of(not_a_number, st.integers(min_value=-2**63, max_value=-1), st.floats()),
    "batch_size": bad_count,
    "validation_fraction": st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), st.just(np.nan)),
    "n_iter_no_change": bad_count,
    "tol": st.one_of(not_a_number, st.floats(max_value=0.0, exclude_max=True), st.just(np.nan)),
    "device": st.one_of(st.integers(min_value=-5, max_value=-1),
                        st.sampled_from(["gpu", "meta", "cuda:99", "tpu"])),
    "dtype": st.one_of(st.none(),
                       st.sampled_from(["float16", "bfloat16", "int32", np.float32, torch.float32])),
    "compile": st.one_of(st.none(), st.integers(), st.text(max_size=2)),
}


@pytest.mark.parametrize("name", sorted(BAD_PARAMETERS))
@given(data=st.data())
def test_fit_names_each_bad_parameter(name, data):
    value = data.draw(BAD_PARAMETERS[name], label=name)
    if name == "device" and str(value).startswith("cuda") and torch.cuda.device_count() > 99:
        return
    names = {"system": ("system", "n_state"), "data_dt": ("data_dt", "dt"),
             "rollout_steps": ("rollout_steps",), "data_fraction": ("data_fraction",)}.get(name, (name,))
    with raises_named(*names):
        small(**{name: value}).fit(X)


# --- bad inputs -----------------------------------------------------------------------------


@st.composite
def any_values_array(draw, shape, magnitude):
    """An array of ``shape`` in one of several dtypes, with values up to ``magnitude``,
    NaN or inf."""
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int16, np.bool_, np.complex128]))
    elements = None
    if dtype in (np.float64, np.float32):
        elements = st.one_of(st.floats(-magnitude, magnitude, width=32),
                             st.sampled_from([np.nan, np.inf, -np.inf]))
    elif dtype == np.int16:
        elements = st.integers(-magnitude, magnitude)
    elif dtype == np.complex128:
        elements = st.complex_numbers(max_magnitude=magnitude)
    return draw(arrays(dtype, shape, elements=elements))


@st.composite
def any_trajectories(draw):
    """Arrays of any small shape and dtype with any values, or things that are no arrays."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.none(), st.text(max_size=3), st.just([[[1.0] * 4], [[1.0] * 4] * 2]),
                              st.just(np.array([[None] * 4] * 3)), st.floats()))
    shape = draw(st.one_of(
        st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple),
        st.tuples(st.integers(1, 3), st.integers(0, 6), st.sampled_from([3, 4, 5])),
        st.tuples(st.integers(0, 6), st.sampled_from([3, 4, 5])),
    ))
    return draw(any_values_array(shape, magnitude=10))


def _is_valid_trajectories(X_, min_times):
    if not isinstance(X_, np.ndarray) or X_.dtype == np.complex128 or X_.ndim not in (2, 3):
        return False
    X3 = X_[None] if X_.ndim == 2 else X_
    return (X3.shape[0] >= 1 and X3.shape[1] >= min_times and X3.shape[2] == 4
            and bool(np.isfinite(X3.astype(np.float64)).all()))


@pytest.fixture(scope="module")
def fitted_at():
    """A solver fitted on ``X`` (spacing 0.1) for each coarse step of the oracle below."""
    return {dt: small(dt=dt, data_dt=0.1).fit(X) for dt in (0.1, 0.2)}


@settings(max_examples=40)
@given(X_=any_trajectories(), dt=st.sampled_from([0.1, 0.2]))
def test_fit_and_score_input_oracle(fitted_at, X_, dt):
    """fit (and score) work exactly on real, finite, 2-D or 3-D arrays with 4 state columns
    and more than dt/data_dt times; anything else is a named error."""
    est = small(dt=dt, data_dt=0.1)
    if not _is_valid_trajectories(X_, min_times=2 + (dt == 0.2)):
        with raises_named("X"):
            est.fit(X_)
        with raises_named("X"):
            fitted_at[dt].score(X_)
        return
    with no_hang(), warnings.catch_warnings():
        warnings.simplefilter("error", RolloutWarning)
        est.fit(X_)
        score = est.score(X_)
        # The score is capped (always finite): check that it is what it says it is.
        X3 = np.asarray(X_ if X_.ndim == 3 else X_[None], dtype=np.float64)
        expected = -rollout_mse(est, X3, stride=int(round(dt / 0.1)))
    assert score == pytest.approx(expected, rel=1e-12, abs=1e-300)


@st.composite
def any_initial_states(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.none(), st.text(max_size=3), st.just([[1.0] * 4, [1.0] * 3]), st.floats()))
    shape = draw(st.one_of(st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple),
                           st.tuples(st.integers(0, 4), st.sampled_from([3, 4, 5]))))
    return draw(any_values_array(shape, magnitude=3))


@settings(max_examples=50)
@given(X0=any_initial_states(), n_steps=st.integers(0, 5), save_every=st.integers(1, 3),
       final_only=st.booleans())
def test_predict_input_oracle(untrained, X0, n_steps, save_every, final_only):
    """predict works exactly on real, finite (n >= 1, 4) arrays; anything else is refused.

    The solver is untrained, so its correction is zero and a valid call must return the
    plain RK4 rollout of the float64 states, every ``save_every``-th state (or the last).
    (Only the type of the error is checked here: the messages are checked in
    ``test_properties_estimator_params.py``.)
    """
    valid = (isinstance(X0, np.ndarray) and X0.dtype != np.complex128 and X0.ndim == 2 and len(X0) >= 1
             and X0.shape[1] == 4 and bool(np.isfinite(X0.astype(np.float64)).all()))
    if not valid:
        with no_hang(), pytest.raises((ValueError, TypeError)):
            untrained.predict(X0, n_steps, save_every=save_every, final_only=final_only)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error", RolloutWarning)
        paths = untrained.predict(X0, n_steps, save_every=save_every, final_only=final_only)
    plain = plain_rollout(SYSTEM.rhs, "rk4", X0, 0.1, n_steps)
    expected = plain[:, -1] if final_only else plain[:, ::save_every]
    assert paths.dtype == np.float64
    np.testing.assert_allclose(paths, expected, rtol=1e-12, atol=1e-12)


@given(n_steps=bad_count.filter(lambda v: not (isinstance(v, int) and v == 0)), save_every=st.just(1))
def test_predict_names_bad_n_steps(fitted, n_steps, save_every):
    with raises_named("n_steps"):
        fitted.predict(X[:, 0], n_steps, save_every=save_every)


@given(save_every=bad_count)
def test_predict_names_bad_save_every(fitted, save_every):
    with raises_named("save_every"):
        fitted.predict(X[:, 0], 3, save_every=save_every)


@given(X0=arrays(np.float64, st.tuples(st.integers(1, 4), st.sampled_from([3, 5, 6])),
                 elements=st.floats(-1, 1)))
def test_predict_and_score_name_a_wrong_state_dimension(fitted, X0):
    with raises_named("X"):
        fitted.predict(X0, 2)
    with raises_named("X"):
        fitted.score(np.stack([X0, X0], 1))


# --- valid fits: finite output ------------------------------------------------------------------

configs = st.fixed_dictionaries({
    "correction": st.sampled_from(sorted(CORRECTIONS)),
    "integrator": st.sampled_from(sorted(INTEGRATORS)),
    "dt": st.sampled_from([0.1, 0.2]),
    "depth": st.integers(1, 3),
    "activation": st.sampled_from([None, "rational", "rational-original", "sine", "relu", "tanh", "gelu"]),
    "skip_connection": st.booleans(),
    "module": st.sampled_from(["mlp", "mlp", "lstm", "transformer"]),
    "attention_input": st.sampled_from(["S", "S*dt"]),
    "rollout_steps": st.integers(1, 2),
    "input_noise": st.sampled_from([0.0, 1e-5]),
    "learning_rate": st.sampled_from([1e-4, 1e-3, 1e-2]),
    "max_epochs": st.integers(0, 2),
    "batch_size": st.integers(1, 64),
    "early_stopping": st.booleans(),
    "data_fraction": st.sampled_from([0.5, 1.0]),
    "dtype": st.sampled_from(["float32", "float64"]),
})


@settings(max_examples=20)
@given(config=configs, seed=st.integers(0, 2**31 - 1), magnitude=st.sampled_from([1e-6, 1e-2, 1.0, 1e2, 1e6]))
def test_valid_small_fits_predict_and_score_consistently(config, seed, magnitude):
    """Any valid configuration fits, predicts finitely and scores what it predicts.

    Independent expectations: with a zero correction (``max_epochs=0`` or
    ``correction="none"``) the rollouts are the plain integrator's; the score is minus the
    trajectory MSE of the rollouts against the data; two epochs are too few for the stopping
    rule (it needs more than ``n_iter_no_change=10`` epochs without improvement), so
    every requested epoch runs.
    """
    data = X * magnitude  # the chain is linear: a scaled trajectory is a trajectory
    est = small(**config, data_dt=0.1, random_state=seed)
    stride = int(round(config["dt"] / 0.1))
    with no_hang(), warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning, RolloutWarning or NaN warnings...
        warnings.simplefilter("ignore", ConvergenceWarning)  # ...but one or two epochs do not converge
        est.fit(data)
        paths = est.predict(data[:, 0], n_steps=4)
        score = est.score(data)
        expected_score = -rollout_mse(est, data, stride)
    assert paths.shape == (6, 5, 4) and np.isfinite(paths).all()
    trains = config["correction"] != "none" and config["max_epochs"] > 0
    if not trains:
        plain = plain_rollout(SYSTEM.rhs, config["integrator"], data[:, 0], config["dt"], 4)
        np.testing.assert_allclose(paths, plain, rtol=1e-12, atol=1e-12 * magnitude)
    assert score == pytest.approx(expected_score, rel=1e-12, abs=1e-300)
    assert est.n_iter_ == (config["max_epochs"] if trains else 0)
    assert len(est.loss_curve_) == est.n_iter_ and np.isfinite(est.loss_curve_).all()


@settings(max_examples=10)
@given(magnitude=st.sampled_from([1e-300, 1e-150, 1e40, 1e150, 1e300]), seed=st.integers(0, 100))
def test_extreme_magnitudes_give_the_scaled_solver_or_an_explicit_warning(magnitude, seed):
    """Beyond what float64 can hold, the rollouts may fail, but never silently.

    Independent expectation: the chain is linear and the solver standardises its inputs and
    scales its outputs, so the fit on ``magnitude * X`` predicts ``magnitude`` times what the
    fit on ``X`` predicts (to 1e-5 of the state: at tiny magnitudes a float32 network sees
    inputs rounded differently); where the rollouts overflow, a RolloutWarning says so and
    the score is the cap. The score, capped, is minus the MSE of the rollouts either way.
    """
    data = X * magnitude
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unit = small(max_epochs=2, random_state=seed).fit(X).predict(X[:, 0], n_steps=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = small(max_epochs=2, random_state=seed).fit(data)
        paths = est.predict(data[:, 0], n_steps=4)
        score = est.score(data)
    if np.isfinite(paths).all():
        np.testing.assert_allclose(paths / magnitude, unit, rtol=0, atol=1e-5 * np.abs(unit).max())
    else:
        assert any(issubclass(w.category, RolloutWarning) for w in caught)
    with np.errstate(over="ignore", invalid="ignore"):
        assert score == -min(trajectory_mse(data, paths), MAX_SCORE_ERROR)


def test_plain_rhs_system_of_any_dimension():
    """A dimension-agnostic rhs, u' = -u/2, fits at any state width.

    Independent expectation: the exact solution u0 exp(-t/2). Four RK4 steps of 0.1 err by
    at most 4 (0.05)^5 / 120 |u0| = 1.1e-8 |u0|; one epoch of a correction trained on residuals
    of that size (output scaled by them) adds less than that again, so 5e-8 holds with room.
    """
    times = 0.1 * np.arange(5)
    for n_state in (1, 2, 3):
        u0 = np.random.RandomState(n_state).uniform(-1, 1, (4, n_state))
        data = make_trajectories(ODESystem(rhs=damping, n_state=n_state), initial_conditions=u0, t_end=0.4,
                                 dt=0.1, fine_dt=0.05)
        est = small(system=damping).fit(data)
        assert est.n_features_in_ == n_state
        exact = u0[:, None, :] * np.exp(-0.5 * times)[None, :, None]
        np.testing.assert_allclose(est.predict(data[:, 0], 4), exact, rtol=0, atol=5e-8)
        assert -est.score(data) < (5e-8) ** 2  # data and rollouts both lie within 5e-8 of exact


# --- determinism --------------------------------------------------------------------------------


@settings(max_examples=12)
@given(config=configs, seed=st.integers(0, 2**32 - 1), noise=st.integers(0, 2**31 - 1),
       as_generator=st.booleans())
def test_same_random_state_gives_the_same_cpu_predictions(config, seed, noise, as_generator):
    def fit():
        random_state = np.random.RandomState(seed) if as_generator else seed
        return small(**config, data_dt=0.1, random_state=random_state).fit(X)

    first = fit()
    # Whatever else the process draws in between must not matter.
    torch.manual_seed(noise)
    np.random.seed(noise % 2**32)
    torch.rand(7), np.random.rand(3)
    second = fit()
    np.testing.assert_array_equal(first.predict(X[:, 0], 4), second.predict(X[:, 0], 4))
    np.testing.assert_array_equal(first.loss_curve_, second.loss_curve_)
    np.testing.assert_array_equal(first.train_indices_, second.train_indices_)
    assert first.score(X) == second.score(X)


# --- interrupted training -----------------------------------------------------------------------


@settings(max_examples=15)
@given(k=st.integers(0, 12), max_epochs=st.integers(1, 3), batch_size=st.sampled_from([4, 8, 16]),
       early_stopping=st.booleans(), correction=st.sampled_from(["attns", "neurvec", "csm", "fsnet"]))
def test_training_interrupted_after_k_batches_leaves_a_usable_estimator(k, max_epochs, batch_size,
                                                                        early_stopping, correction):
    est = small(max_epochs=max_epochs, batch_size=batch_size, early_stopping=early_stopping,
                correction=correction)
    n_train = len(X) - early_stopping  # early stopping holds out ceil(10% of 6) = 1 trajectory
    n_batches = -(-n_train * 4 // batch_size)  # 4 single steps per trajectory
    interrupted = k < max_epochs * n_batches
    with interrupt_training_after(k), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.fit(X)
        except KeyboardInterrupt:  # Ctrl-C reaches the caller...
            assert interrupted
        else:
            assert not interrupted
    if interrupted:
        assert any("interrupted" in str(w.message) for w in caught)
        assert est.n_iter_ == k // n_batches  # ...after the complete epochs, kept
    else:
        assert est.n_iter_ == max_epochs  # too few epochs for the stopping rule to end a fit
    with warnings.catch_warnings():
        warnings.simplefilter("error", RolloutWarning)
        paths = est.predict(X[:, 0], 4)
        score = est.score(X)
    if est.n_iter_ == 0:
        # No epoch ended: the best weights so far are the starting ones, whose output is zero.
        np.testing.assert_allclose(paths, plain_rollout(SYSTEM.rhs, "rk4", X[:, 0], 0.1, 4), rtol=1e-12,
                                   atol=1e-12)
    assert score == pytest.approx(-trajectory_mse(X, paths), rel=1e-12)  # X: 5 states, 0.1 apart
    # and it can go on: a warm start continues from the interrupted state, one more epoch
    n_iter = est.n_iter_
    est.set_params(warm_start=True, max_epochs=1).fit(X)
    assert est.n_iter_ == n_iter + 1 and len(est.loss_curve_) == n_iter + 1
    assert np.isfinite(est.predict(X[:, 0], 4)).all()
