"""Running the estimators on many processes: torch threads per worker.

scikit-learn's searches and :func:`sklearn_attns.make_trajectories` parallelise through
joblib, so joblib's ``dask`` and ``ray`` backends run them on a cluster unchanged (see
the user guide's "Scaling out" page). Two rules keep such runs fast and safe:

* **One torch thread per worker thread.** torch starts one intra-op thread per core
  in every process; with several worker processes on a machine they oversubscribe the
  cores. :func:`limit_torch_threads` caps the current process and
  :class:`TorchThreadsPlugin` caps every worker of a ``dask.distributed`` cluster,
  including workers that join or restart later. Equal thread counts also make CPU
  fits with a fixed ``random_state`` repeat bit for bit across processes.
* **No CUDA before a fork.** A process that has initialised CUDA cannot fork
  workers that use it. ``device="auto"`` resolves only in ``fit`` (through
  ``torch.cuda.is_available()``, which initialises the CUDA driver unless
  ``PYTORCH_NVML_BASED_CUDA_CHECK=1``), so constructing estimators is safe; start
  workers with ``spawn`` or ``forkserver`` (Dask's LocalCluster, loky and Ray all do)
  or before anything touches CUDA.
"""

import numbers

import torch

try:  # dask.distributed is optional; the plugin needs its base class to be registered.
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - exercised only without distributed
    _WorkerPlugin = object

__all__ = ["TorchThreadsPlugin", "limit_torch_threads"]


def limit_torch_threads(n_threads=1):
    """Set the number of torch intra-op threads of this process.

    Parameters
    ----------
    n_threads : int, default=1
        Threads for torch's CPU operations in this process.

    Returns
    -------
    previous : int
        The number before the call, to restore it later.

    Examples
    --------
    >>> import torch
    >>> from sklearn_attns.parallel import limit_torch_threads
    >>> previous = limit_torch_threads(1)
    >>> torch.get_num_threads()
    1
    >>> _ = limit_torch_threads(previous)
    """
    n_threads = _check_n_threads(n_threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    return previous


class TorchThreadsPlugin(_WorkerPlugin):
    """A ``dask.distributed`` worker plugin capping torch's threads on every worker.

    Register it once per client; workers that start later (scaling, restarts) run it
    too. With ``threads_per_worker=t`` on a machine of ``c`` cores shared by ``w``
    workers, ``n_threads = c // (w * t)`` keeps the cores busy without oversubscribing
    them; 1 is the safe choice and the one that makes fits repeat bit for bit.

    Parameters
    ----------
    n_threads : int, default=1
        Torch intra-op threads per worker process.

    Examples
    --------
    On a cluster (needs ``dask[distributed]``):

    >>> from distributed import Client, LocalCluster                  # doctest: +SKIP
    >>> client = Client(LocalCluster(n_workers=2, threads_per_worker=1))  # doctest: +SKIP
    >>> client.register_plugin(TorchThreadsPlugin(1))                 # doctest: +SKIP

    What each worker runs when it starts:

    >>> import torch
    >>> from sklearn_attns.parallel import TorchThreadsPlugin
    >>> previous = torch.get_num_threads()
    >>> TorchThreadsPlugin(1).setup(worker=None)
    >>> torch.get_num_threads()
    1
    >>> torch.set_num_threads(previous)
    """

    name = "sklearn-attns-torch-threads"  # registering again replaces, not duplicates

    def __init__(self, n_threads=1):
        self.n_threads = _check_n_threads(n_threads)

    def setup(self, worker):
        limit_torch_threads(self.n_threads)


def _check_n_threads(n_threads):
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}.")
    return int(n_threads)
