"""Prediction with ``compile=True``: several steps per compiled call, states held column by
column, blocks of rows padded to one shape.

Expectations are independent of that path: the plain base integrator step by step
(``helpers.plain_rollout``; an untrained network adds nothing), the row-by-row eager
rollout for a trained network (the same arithmetic in another layout, so equal to the
float32 network's rounding), and the returned states themselves for the step at which a
rollout blows up.
``torch.compile`` is slow to run, so most tests replace it with a stand-in that returns the
function unchanged (the path's own logic is what they test); the slow test runs the real
compiler.
"""

import warnings

import numpy as np
import pytest
import torch
from helpers import identity_compile, plain_rollout

import sklearn_attns.rollout as rollout_module
from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns.rollout import RolloutWarning
from sklearn_attns.systems import ElasticPendulum, KLinkPendulum, ODESystem, SpringMass


@pytest.fixture
def stand_in_compiler(monkeypatch):
    monkeypatch.setattr(torch, "compile", identity_compile)


@pytest.fixture
def blocks_of_16(monkeypatch):
    """Blocks of 16 rows, so 37 rows are 16 + 16 + 5 (padded to 16)."""
    monkeypatch.setattr(rollout_module, "cpu_block_rows", lambda network: 16)


def untrained(system, dt, integrator="rk4"):
    u0 = np.full((4, system.n_state), 0.1)
    X = make_trajectories(system, t_end=2 * dt, dt=dt, fine_dt=dt / 4, method="rk4", initial_conditions=u0)
    return AttNSSolver(system=system, dt=dt, integrator=integrator, width=8, max_epochs=0, device="cpu",
                       random_state=0).fit(X)


@pytest.mark.parametrize("system", [ElasticPendulum(), SpringMass(n_masses=3)],
                         ids=["elastic", "linear-chain"])
@pytest.mark.parametrize("n_steps, save_every", [(0, 1), (1, 1), (7, 1), (12, 1), (12, 3), (10, 4)])
def test_compiled_prediction_of_an_untrained_network_is_the_plain_integrator(
        system, n_steps, save_every, stand_in_compiler, blocks_of_16):
    solver = untrained(system, 0.1).set_params(compile=True)
    u0 = system.sample_initial_conditions(37, random_state=1)
    expected = plain_rollout(system.rhs, "rk4", u0, 0.1, n_steps)
    paths = solver.predict(u0, n_steps, save_every=save_every)
    np.testing.assert_allclose(paths, expected[:, ::save_every], rtol=0, atol=1e-12)
    np.testing.assert_allclose(solver.predict(u0, n_steps, final_only=True), expected[:, -1], rtol=0,
                               atol=1e-12)
    if n_steps:  # the column path ran, on blocks of 16 rows
        assert {rows for _, rows in solver.model_.compiled_column_steps} == {16}


@pytest.mark.parametrize("make_system, dt", [(ElasticPendulum, 0.2), (lambda: KLinkPendulum(n_links=2), 0.1)],
                         ids=["elastic", "klink2"])
def test_compiled_and_eager_predictions_of_a_trained_network_agree(make_system, dt, stand_in_compiler,
                                                                   blocks_of_16):
    system = make_system()
    X = make_trajectories(system, 40, t_end=10 * dt, dt=dt, fine_dt=dt / 10, method="rk4", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver = AttNSSolver(system=system, dt=dt, width=16, max_epochs=20, device="cpu",
                             random_state=0).fit(X)
    eager = solver.predict(X[:37, 0], 10, save_every=2)
    plain = plain_rollout(system.rhs, "rk4", X[:37, 0], dt, 10)[:, ::2]
    assert np.abs(eager - plain).max() > 1e-6  # the network corrects the steps
    compiled = solver.set_params(compile=True).predict(X[:37, 0], 10, save_every=2)
    assert solver.model_.compiled_column_steps
    # The same float32 network on transposed inputs: equal to its rounding.
    np.testing.assert_allclose(compiled, eager, rtol=0, atol=1e-6 * np.abs(eager).max())


@pytest.mark.parametrize("compile", [False, True])
def test_a_blow_up_is_reported_at_the_first_non_finite_state(compile, stand_in_compiler, blocks_of_16):
    system = ODESystem(rhs=lambda u: u * u, n_state=1)  # du/dt = u^2 blows up from u0 > 0
    solver = untrained(system, 0.1, integrator="euler").set_params(compile=compile)
    u0 = np.concatenate([np.full((20, 1), 0.1), [[3.0], [20.0]], np.full((15, 1), -0.2)])
    with pytest.warns(RolloutWarning) as record:
        paths = solver.predict(u0, 15)
    bad = ~np.isfinite(paths[:, :, 0])
    assert list(np.flatnonzero(bad.any(1))) == [20, 21]
    # Non-finite from then on, and the warning names the first such step of all rows.
    assert all(bad[row, np.argmax(bad[row]):].all() for row in (20, 21))
    first = min(np.argmax(bad[row]) for row in (20, 21))
    assert str(record[0].message) == f"2 of 37 rollouts became non-finite, the first at step {first}."


def test_compiled_steps_that_disagree_with_the_eager_ones_are_not_used(monkeypatch, blocks_of_16):
    def wrong(function, **kwargs):
        def compiled(*args):
            out = function(*args)
            return (out[0] * (1 + 1e-3), *out[1:]) if isinstance(out, tuple) else out

        return compiled

    monkeypatch.setattr(torch, "compile", wrong)
    system = ElasticPendulum()
    solver = untrained(system, 0.1).set_params(compile=True)
    u0 = system.sample_initial_conditions(37, random_state=1)
    with pytest.warns(RuntimeWarning, match="compiled prediction steps disagree"):
        solver.predict(u0, 8)
    np.testing.assert_allclose(solver.predict(u0, 8), plain_rollout(system.rhs, "rk4", u0, 0.1, 8), rtol=0,
                               atol=1e-12)


@pytest.mark.slow
def test_really_compiled_prediction_agrees_with_eager_prediction():
    """torch.compile itself (tens of seconds): the compiled steps pass their check and are used."""
    system = KLinkPendulum(n_links=2)  # its linear solves are rewritten elementwise when compiled
    X = make_trajectories(system, 40, t_end=1.0, dt=0.1, fine_dt=0.01, method="rk4", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver = AttNSSolver(system=system, dt=0.1, width=16, max_epochs=20, device="cpu",
                             random_state=0).fit(X)
    eager = solver.predict(X[:, 0], 8)
    solver.set_params(compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback to the eager steps
        solver.predict(X[:, 0], 8)
        compiled = solver.predict(X[:, 0], 8)
    (checked,) = solver.model_.compiled_column_steps.values()
    assert checked.function is not checked.eager
    np.testing.assert_allclose(compiled, eager, rtol=0, atol=1e-6 * np.abs(eager).max())


@pytest.mark.parametrize("fuse", [1, 3, 4])
def test_first_non_finite_step_is_found_from_the_counts_per_call(fuse):
    n_calls = 5
    n_steps = n_calls * fuse
    # One row per possible first bad step (1 .. n_steps), and one that stays finite.
    first_bad = np.array([*range(1, n_steps + 1), -1])
    # finite[row, step - 1]: whether the state after that step is finite
    finite = np.array([[not 0 < bad <= step for step in range(1, n_steps + 1)] for bad in first_bad])
    per_call = finite.reshape(len(first_bad), n_calls, fuse).cumprod(2).sum(2).T
    found = rollout_module.first_non_finite_step(torch.as_tensor(per_call), fuse)
    np.testing.assert_array_equal(found.numpy(), first_bad)
    # Every row finite after every call (the shortcut without the column search): none found.
    all_finite = rollout_module.first_non_finite_step(torch.full((n_calls, 3), fuse), fuse)
    np.testing.assert_array_equal(all_finite.numpy(), [-1, -1, -1])
