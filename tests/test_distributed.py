"""Searches and data generation on a real ``dask.distributed`` cluster of worker processes.

A ``LocalCluster`` of two worker *processes* (one thread each) is started once for the
module; joblib's ``dask`` backend sends the work there. Each result is compared with the
same computation run serially in the test process.

Why the results can be compared bit for bit: a CPU fit with an integer ``random_state``
draws its subset, initial weights and shuffling from its own seeded generators, so the
only thing that could change the arithmetic between processes is the number of torch
threads (a float32 matrix product split over more threads sums in another order).
Torch threads are therefore capped to 1 on both sides: in the workers by
:class:`sklearn_attns.parallel.TorchThreadsPlugin` (Dask's nanny also exports
``OMP_NUM_THREADS=1`` to the workers it spawns), in the test process by
:func:`sklearn_attns.parallel.limit_torch_threads` for the serial run.
"""

import logging
import os
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score

from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns.parallel import TorchThreadsPlugin, limit_torch_threads
from sklearn_attns.systems import ElasticPendulum

GRID = {"integrator": ["euler", "rk4"], "correction": ["attns", "neurvec"], "width": [8, 16]}

# The cluster's two worker processes each start an interpreter and import torch (half a
# minute on two busy cores): every test that uses it is slow.
on_the_cluster = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    import dask

    # Workers are started with spawn (Dask's default, checked here): a fresh interpreter
    # inherits no CUDA state from this process, whatever it did before.
    assert dask.config.get("distributed.worker.multiprocessing-method") == "spawn"
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    client.register_plugin(TorchThreadsPlugin(1))
    yield client
    client.close()
    cluster.close()


def _solver(system):
    return AttNSSolver(system=system, dt=0.2, data_dt=0.1, width=16, max_epochs=3, batch_size=64,
                       device="cpu", random_state=0)


def _worker_state():
    return {"pid": os.getpid(), "torch_threads": torch.get_num_threads(),
            "cuda_initialized": torch.cuda.is_initialized()}


def _on_each_worker(client, fn):
    """Run ``fn`` in the task thread of every worker (``client.run`` uses another thread)."""
    workers = list(client.scheduler_info()["workers"])
    futures = [client.submit(fn, workers=[w], pure=False, allow_other_workers=False) for w in workers]
    return dict(zip(workers, client.gather(futures)))


def _ran_on_workers(client, stream):
    workers = set(client.scheduler_info()["workers"])
    return len(stream.data) > 0 and all(task["worker"] in workers for task in stream.data)


@on_the_cluster
def test_workers_are_separate_processes_with_one_torch_thread(client):
    states = _on_each_worker(client, _worker_state)
    assert len(states) == 2
    assert len({s["pid"] for s in states.values()} | {os.getpid()}) == 3
    assert all(s["torch_threads"] == 1 and not s["cuda_initialized"] for s in states.values()), states


@on_the_cluster
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_on_dask_matches_serial(client, chain_data, one_torch_thread):
    from distributed import get_task_stream

    system, X = chain_data
    serial = GridSearchCV(_solver(system), GRID, cv=2).fit(X)
    with get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        distributed = GridSearchCV(_solver(system), GRID, cv=2, n_jobs=-1).fit(X)

    # The 8 candidates x 2 folds ran as tasks on the worker processes (joblib batches
    # them; the scheduler decides which worker runs which batch).
    assert _ran_on_workers(client, stream)
    assert len(serial.cv_results_["params"]) == 8
    assert distributed.cv_results_["params"] == serial.cv_results_["params"]
    assert distributed.best_params_ == serial.best_params_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        # Same seeds, same single thread: identical in practice; the tolerance only
        # leaves room for a platform whose math library dispatches differently per process.
        np.testing.assert_allclose(distributed.cv_results_[key], serial.cv_results_[key], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(distributed.cv_results_["rank_test_score"],
                                  serial.cv_results_["rank_test_score"])
    # The refit best estimator came back from the search and predicts like the serial one.
    np.testing.assert_allclose(distributed.best_estimator_.predict(X[:3, 0], n_steps=5),
                               serial.best_estimator_.predict(X[:3, 0], n_steps=5), rtol=1e-12, atol=0)
    # Neither this process nor the workers touched CUDA (device="cpu").
    assert not torch.cuda.is_initialized()
    assert not any(s["cuda_initialized"] for s in _on_each_worker(client, _worker_state).values())


@on_the_cluster
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_cross_val_score_on_dask_matches_serial(client, chain_data, one_torch_thread):
    system, X = chain_data
    serial = cross_val_score(_solver(system), X, cv=3)
    with joblib.parallel_config(backend="dask"):
        distributed = cross_val_score(_solver(system), X, cv=3, n_jobs=-1)
    np.testing.assert_allclose(distributed, serial, rtol=1e-12, atol=0)


@on_the_cluster
def test_make_trajectories_on_dask_matches_serial(client):
    from distributed import get_task_stream

    # A nonlinear system: the spring chain takes a linear shortcut that needs no joblib.
    system = ElasticPendulum()
    kwargs = {"n_trajectories": 64, "t_end": 1.0, "dt": 0.1, "fine_dt": 1e-3, "random_state": 0}
    serial = make_trajectories(system, **kwargs)
    with get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        assert joblib.effective_n_jobs(-1) == 2
        distributed = make_trajectories(system, n_jobs=-1, **kwargs)
    assert _ran_on_workers(client, stream)
    # Row-wise float64 arithmetic, so the chunking into batches cannot change a bit.
    np.testing.assert_array_equal(distributed, serial)


def test_device_auto_is_resolved_only_in_fit(chain_data, monkeypatch):
    """Building, cloning and pickling estimators never asks torch about CUDA.

    ``torch.cuda.is_available()`` initialises the CUDA driver (unless
    ``PYTORCH_NVML_BASED_CUDA_CHECK=1``), after which forked workers cannot use CUDA;
    so the parent of a search must not call it before the workers exist.
    """
    calls = []
    real = torch.cuda.is_available
    monkeypatch.setattr(torch.cuda, "is_available", lambda: calls.append(1) or real())
    system, X = chain_data
    est = AttNSSolver(system=system, dt=0.2, data_dt=0.1, width=8, max_epochs=1, device="auto",
                      random_state=0)
    search = GridSearchCV(est, {"width": [8, 16]}, cv=2)
    pickle.loads(pickle.dumps(clone(search)))
    clone(est).set_params(width=4).get_params()
    assert calls == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    assert calls


def test_torch_thread_helpers(one_torch_thread):
    assert limit_torch_threads(2) == 1 and torch.get_num_threads() == 2
    TorchThreadsPlugin(1).setup(worker=None)
    assert torch.get_num_threads() == 1
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n_threads"):
            limit_torch_threads(bad)
        with pytest.raises(ValueError, match="n_threads"):
            TorchThreadsPlugin(bad)
