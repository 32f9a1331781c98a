"""A hybrid solver with a local correction on a grid, through the estimator."""

import io
import pickle

import numpy as np
import pytest

from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns.persistence import load_model, save_model
from sklearn_attns.systems import Burgers, SpringMass

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SHORT = Burgers(n_points=32)
LONG = Burgers(n_points=64, length=2 * SHORT.length)  # the same spacing
X = make_trajectories(SHORT, 16, t_end=0.4, dt=0.02, fine_dt=1e-3, random_state=0)


@pytest.fixture(scope="module")
def local():
    return AttNSSolver(system=SHORT, dt=0.04, data_dt=0.02, module="conv", width=8, max_epochs=20,
                       batch_size=64, device="cpu", random_state=0).fit(X)


def test_a_local_correction_beats_the_plain_solver(local):
    plain = AttNSSolver(system=SHORT, dt=0.04, data_dt=0.02, correction="none", device="cpu").fit(X)
    assert local.score(X) > 1.2 * plain.score(X)  # scores are negative MSEs


def test_on_a_doubled_periodic_domain_a_doubled_state_gives_the_doubled_rollout(local):
    # Burgers is translation-invariant and the domain periodic: two copies of a state on
    # twice the domain evolve as two copies of its solution, under the exact equation, the
    # base integrator and a local, weight-shared correction alike.
    expected = local.predict(X[:4, 0], n_steps=10)
    long = pickle.loads(pickle.dumps(local)).set_params(system=LONG)
    doubled = long.predict(np.tile(X[:4, 0], 2), n_steps=10)
    np.testing.assert_allclose(doubled, np.tile(expected, 2), rtol=1e-9, atol=1e-12)


def test_another_domain_needs_the_system_on_it(local):
    with pytest.raises(ValueError, match="same equation there"):
        local.predict(np.tile(X[:2, 0], 2), n_steps=2)  # system still the 32-point one
    other_spacing = pickle.loads(pickle.dumps(local)).set_params(system=Burgers(n_points=64))
    with pytest.raises(ValueError, match="spacing"):
        other_spacing.predict(np.tile(X[:2, 0], 2), n_steps=2)


def test_a_local_solver_saves_in_the_safe_format(local):
    buffer = io.BytesIO()
    save_model(local, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(load_model(buffer).predict(X[:3, 0], 5), local.predict(X[:3, 0], 5))


def test_conv_needs_a_grid():
    chain = SpringMass(n_masses=2)
    data = make_trajectories(chain, 4, t_end=0.4, dt=0.2, random_state=0)
    with pytest.raises(ValueError, match="module='conv' needs a system with a grid layout"):
        AttNSSolver(system=chain, module="conv", max_epochs=1, device="cpu").fit(data)
