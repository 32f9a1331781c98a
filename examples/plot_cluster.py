"""
Scaling out: parallel searches and data generation
==================================================

Everything that runs several jobs (:func:`~sklearn_attns.datasets.make_trajectories` for
non-linear systems, :class:`~sklearn.model_selection.GridSearchCV`,
:func:`~sklearn.model_selection.cross_validate`) goes through joblib, so one
:func:`joblib.parallel_config` block chooses where the jobs run: local processes with
the ``"loky"`` backend, or a Dask (or Ray) cluster, with no change to the code inside.

Two rules keep workers healthy (see :mod:`sklearn_attns.parallel`): cap the threads
each worker's torch uses, so that ``n_jobs`` workers do not each start one thread per
core; and do not initialise CUDA in a process before it forks workers (loky, Dask and
Ray start theirs with ``spawn``-like methods, which is safe).
"""

import time
import warnings

from joblib import parallel_config
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from sklearn_attns import AttNSSolver, make_trajectories
from sklearn_attns.parallel import TorchThreadsPlugin, limit_torch_threads
from sklearn_attns.systems import KLinkPendulum

warnings.filterwarnings("ignore", category=ConvergenceWarning)

system = KLinkPendulum(n_links=2)
solver = AttNSSolver(system=system, dt=0.1, width=128, max_epochs=10, batch_size=256, device="cpu",
                     random_state=0)
grid = {"correction": ["attns", "neurvec"], "integrator": ["heun", "rk4"]}

# %%
# Local processes (loky)
# ----------------------
# ``n_jobs`` is left at its default (None) in the calls, so the block decides: two
# worker processes. ``inner_max_num_threads=1`` gives each worker one thread for
# torch, BLAS and OpenMP. The double pendulum has no linear shortcut, so
# ``make_trajectories`` steps batches of trajectories in the workers too.
with parallel_config(backend="loky", n_jobs=2, inner_max_num_threads=1):
    start = time.perf_counter()
    X = make_trajectories(system, n_trajectories=48, t_end=5.0, dt=0.1, fine_dt=1e-3, random_state=0)
    print(f"data {X.shape} in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    search = GridSearchCV(solver, grid, cv=2).fit(X)
    print(f"grid search ({len(search.cv_results_['params'])} candidates x 2 folds) "
          f"in {time.perf_counter() - start:.1f} s")
for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    print(f"  {params}: CV MSE {-score:.3g}")
print("best:", search.best_params_)

# %%
# The solver, its system and the data are pickled to the workers. Built-in systems
# pickle; for your own system, define ``rhs`` with ``def`` in an importable module (see
# :doc:`/auto_examples/plot_own_ode`).
#
# A Dask cluster
# --------------
# With ``dask.distributed`` installed, the same code runs on a cluster: connect a
# ``Client`` to the scheduler and switch the backend. On a real cluster that is::
#
#     from dask.distributed import Client
#
#     client = Client("tcp://scheduler-address:8786")
#     client.register_plugin(TorchThreadsPlugin(1))  # one torch thread per worker
#     with parallel_config(backend="dask"):
#         search = GridSearchCV(solver, grid, cv=2).fit(X)
#
# The workers need this package and the same torch installed. Here, when Dask is
# importable, a small in-process cluster stands in for the real one (``processes=False``
# runs the worker as threads of this process, so the example stays quick and needs no
# ``if __name__ == "__main__":`` guard; the plugin then caps this process's torch
# threads, which we restore afterwards). Without Dask this part is skipped.
try:
    from dask.distributed import Client, LocalCluster
except ImportError:
    print("dask.distributed is not installed: skipping the Dask part.")
else:
    previous = limit_torch_threads(1)
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
    with cluster, Client(cluster) as client:
        client.register_plugin(TorchThreadsPlugin(1))
        with parallel_config(backend="dask"):
            start = time.perf_counter()
            dask_search = GridSearchCV(solver, grid, cv=2).fit(X)
        print(f"grid search on Dask in {time.perf_counter() - start:.1f} s; best: {dask_search.best_params_}")
    limit_torch_threads(previous)
