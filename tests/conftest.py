"""Shared test configuration.

* A fixed hypothesis profile, "ci": reproducible (derandomized) and without deadlines, so
  a slow CI machine never turns a timing into a failure. ``HYPOTHESIS_PROFILE`` selects
  another registered profile (for a longer local search, register one and name it).
* No test writes into the user's ``~/sklearn_attns_data``: every test runs with
  ``SKLEARN_ATTNS_DATA`` pointing into a temporary folder of the session, and the
  ``data_home`` fixture gives a test a fresh, empty cache folder of its own.
* ``one_torch_thread`` runs a module on one torch thread: the tests' networks are tiny, and
  several threads on a busy machine wait on each other (``test_estimator.py``'s LSTM test
  measured 0.7 s on one thread and 4.5 s on two, on two shared cores).
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=25, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def _session_data_home(tmp_path_factory):
    return tmp_path_factory.mktemp("sklearn_attns_data")


@pytest.fixture(autouse=True)
def _isolated_data_home(_session_data_home, monkeypatch):
    """Keep every test's dataset cache out of the home folder."""
    monkeypatch.setenv("SKLEARN_ATTNS_DATA", str(_session_data_home))


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    """A fresh, empty cache folder that ``SKLEARN_ATTNS_DATA`` points at for this test."""
    path = tmp_path / "sklearn_attns_data"
    monkeypatch.setenv("SKLEARN_ATTNS_DATA", str(path))
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for the module (``pytestmark = pytest.mark.usefixtures(...)``)."""
    from sklearn_attns.parallel import limit_torch_threads

    previous = limit_torch_threads(1)
    yield
    limit_torch_threads(previous)


@pytest.fixture(scope="module")
def chain_data():
    """A small spring-mass dataset: SpringMass(2), 24 trajectories, T = 2, spacing 0.1."""
    from sklearn_attns import make_trajectories
    from sklearn_attns.systems import SpringMass

    system = SpringMass(n_masses=2)
    X = make_trajectories(system, n_trajectories=24, t_end=2.0, dt=0.1, fine_dt=1e-3, random_state=0)
    return system, X
