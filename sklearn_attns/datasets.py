"""Fine-step trajectory data: generation, and the paper's benchmarks cached on disk.

Dtype policy: all data is made and returned in float64 NumPy arrays, whatever the
system computes internally, because it is the reference the hybrid solvers are judged by.
"""

import numbers
import os
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.utils import Bunch, gen_even_slices
from threadpoolctl import threadpool_limits

from ._validation import check_count, check_multiple, check_positive, check_states
from .conditions import Conditions, input_at
from .integrators import get_integrator
from .systems import ElasticPendulum, KLinkPendulum, SpringMass, as_system, linear_operator_of
from .trajectories import check_conditions

__all__ = [
    "TrajectoryBlowUpError",
    "make_trajectories",
    "get_data_home",
    "load_spring_mass",
    "load_elastic_pendulum",
    "load_klink_pendulum",
    "load_pde_trajectories",
]

# Rows per work unit of the stepping path: a (rows, n_state) float64 batch and its stage
# temporaries stay within a core's L2 cache, where the elementwise updates run fastest.
_CACHE_FRIENDLY_VALUES = 16_384


class TrajectoryBlowUpError(FloatingPointError):
    """Raised when generated trajectories become non-finite.

    Attributes
    ----------
    indices : ndarray of int
        The trajectories that blew up.
    times : ndarray of float
        For each, the first output time at which its state was non-finite.
    """

    def __init__(self, indices, times, n_trajectories):
        self.indices = np.asarray(indices)
        self.times = np.asarray(times)
        self.n_trajectories = n_trajectories
        shown = ", ".join(f"#{i} at t={t:g}" for i, t in zip(self.indices[:10], self.times[:10]))
        more = f" and {len(self.indices) - 10} more" if len(self.indices) > 10 else ""
        super().__init__(
            f"{len(self.indices)} of {n_trajectories} trajectories became non-finite: {shown}{more}. "
            "Use a smaller fine_dt or a more accurate method."
        )

    def __reduce__(self):
        # The default rebuilds from self.args (the message alone), which does not fit
        # __init__: without this the error cannot cross a process boundary (joblib workers).
        return type(self), (self.indices, self.times, self.n_trajectories)


def make_trajectories(
    system,
    n_trajectories=None,
    t_end=20.0,
    dt=0.2,
    fine_dt=1e-3,
    method="rk4",
    initial_conditions=None,
    random_state=None,
    n_jobs=None,
    verbose=0,
    *,
    params=None,
    inputs=None,
    t0=0.0,
    device=None,
    compile="auto",
):
    """Integrate many trajectories with a fine step and keep every ``dt``.

    Parameters
    ----------
    system : ODESystem
        The system to integrate.
    n_trajectories : int, default=None
        Number of trajectories; if None, the length of ``initial_conditions``, else of
        ``params`` or ``inputs``, else 100.
    t_end : float, default=20.0
        Final time; a multiple of ``dt``.
    dt : float, default=0.2
        Spacing of the returned states.
    fine_dt : float, default=1e-3
        Integration step; ``dt`` must be an integer multiple of it.
    method : str, default="rk4"
        Integrator of the fine steps (see :func:`sklearn_attns.integrators.get_integrator`).
    initial_conditions : array-like of shape (n_trajectories, n_state), default=None
        Starting states; drawn with ``system.sample_initial_conditions`` if None.
    random_state : int, RandomState instance or None, default=None
        Seed of the initial conditions when they are drawn.
    n_jobs : int, default=None
        Processes for the stepping path, through joblib: None means 1 unless in a
        ``joblib.parallel_config`` context (which also selects a Dask or Ray backend);
        -1 means all cores.
    verbose : int, default=0
        Progress output: 1 prints a summary with the rate, larger values joblib's progress.
    params : array-like of shape (n_trajectories, n_params), default=None
        For a system with ``n_params > 0``: the parameters of each trajectory, fixed
        along it.
    inputs : array-like of shape (n_trajectories, round(t_end / dt) + 1, n_inputs), default=None
        For a system with ``n_inputs > 0``: the input signal of each trajectory, sampled
        at the output times ``t0 + k dt``. Between two samples the fine steps see it
        interpolated as ``system.input_interpolation`` says: ``"linear"``, or ``"hold"``
        (the earlier sample).
    t0 : float or array-like of shape (n_trajectories,), default=0.0
        Start time of each trajectory, for a system that depends on time.
    device : {"cpu", "cuda", "cuda:N", "auto"}, torch.device or None, default=None
        None steps on the CPU, with NumPy or (for a large job whose right-hand side
        accepts torch tensors) compiled torch steps, whichever is faster. A device steps
        with torch on it, in float64, in batches that fit its memory; ``system.rhs``
        must then accept torch tensors. On a GPU ``n_jobs`` is ignored, and a linear
        system's shortcut (see Notes) runs there too. The results agree with the NumPy
        steps to rounding.
    compile : {"auto", True, False}, default="auto"
        Fuse the fine steps with ``torch.compile`` (the right-hand side must accept
        torch tensors). Compiling takes 20-120 s the first time in a process (on the CPU
        two candidate fusions are compiled and the faster kept; less when Inductor's on-disk
        cache already holds the graphs), so ``"auto"`` compiles only when the job would
        keep the NumPy steps busy for over two minutes (estimated from a few timed steps).
        A compiled step is checked against the eager one once; if they disagree or
        compiling fails, the eager steps run, with a warning.

    Returns
    -------
    X : ndarray of shape (n_trajectories, round(t_end / dt) + 1, n_state), float64
        ``X[:, 0]`` are the initial conditions, rows are ``dt`` apart.

    Raises
    ------
    TrajectoryBlowUpError
        If any trajectory becomes non-finite; it names which ones and when.

    Notes
    -----
    Systems with a ``linear_operator`` (``du/dt = A u``, such as :class:`SpringMass`)
    take a shortcut that is exact in arithmetic: one step of an explicit Runge-Kutta
    method is multiplication by its stability polynomial ``R(fine_dt A)``, so the
    ``dt / fine_dt`` fine steps between outputs are one product with ``R^k`` (with NumPy,
    or with torch on a GPU ``device``). It agrees with stepping to about 1e-10 (rounding
    in the matrix power). Other systems step batch
    by batch, spread over ``n_jobs`` processes (one thread each), a block of output times
    at a time; with ``verbose``, a line every few seconds gives the progress, the rate and
    an estimate of the time left. Memory stays that of the output, whatever the number of
    fine steps.

    The torch steps hold a batch as ``(n_state, rows)``, so that each state component is
    contiguous across trajectories (the right-hand side sees the usual ``(rows,
    n_state)`` view), and ``torch.compile`` fuses several fine steps into one vectorised
    kernel; small batched ``torch.linalg.solve`` calls (up to 4 x 4) become elementwise
    elimination. In one process this ran 3.5x (elastic pendulum), 12x (2-link pendulum)
    and 3.8x (Lorenz-96, 40 variables) as fast as a plain NumPy RK4 loop (see the
    benchmarks page). Worker processes import the system by name: a right-hand side
    defined in the ``__main__`` of a script cannot be compiled there (dynamo cannot guard
    on its globals), and steps eagerly with a warning; define it in an importable module.

    A conditioned system (see :class:`~sklearn_attns.systems.ODESystem`) is evaluated at
    each stage's time: within output interval ``n``, fine step ``j`` of ``k = dt / fine_dt``
    evaluates the stage of node ``c`` at ``rhs(t0 + n dt + (j + c) fine_dt, u, p, w)``, ``w``
    the input signal at that time.

    Examples
    --------
    >>> from sklearn_attns.systems import SpringMass
    >>> from sklearn_attns.datasets import make_trajectories
    >>> X = make_trajectories(SpringMass(n_masses=20), n_trajectories=10, t_end=2.0,
    ...                       dt=0.2, fine_dt=1e-3, random_state=0)
    >>> X.shape
    (10, 11, 40)

    A forced Duffing oscillator whose damping and drive vary between trajectories:

    >>> import numpy as np
    >>> from sklearn_attns.systems import ODESystem
    >>> def duffing(t, u, p):
    ...     x, v = u[:, 0], u[:, 1]
    ...     return np.stack([v, -p[:, 0] * v - x - x**3 + p[:, 1] * np.cos(1.2 * t)], axis=1)
    >>> def at_rest(n, rng):
    ...     return rng.uniform(-1.0, 1.0, size=(n, 2))
    >>> system = ODESystem(rhs=duffing, n_state=2, n_params=2, time_dependent=True,
    ...                    initial_conditions=at_rest)
    >>> P = np.random.RandomState(0).uniform([0.1, 0.2], [0.4, 0.6], size=(5, 2))
    >>> make_trajectories(system, t_end=1.0, dt=0.1, fine_dt=1e-2, params=P, random_state=0).shape
    (5, 11, 2)
    """
    n_state = None
    if initial_conditions is not None:
        try:
            shape = np.shape(initial_conditions)
        except ValueError as exc:  # ragged nested lists
            raise ValueError("initial_conditions must be an array of shape (n_trajectories, n_state): "
                             f"{exc}") from exc
        n_state = shape[-1] if shape else None
    system = as_system(system, n_state)
    if system.n_state is None:
        raise ValueError("a plain rhs callable as system needs initial_conditions (they give n_state); "
                         "or pass ODESystem(rhs=..., n_state=...).")
    integrator = get_integrator(method, "method")
    t_end = check_positive(t_end, "t_end")
    dt = check_positive(dt, "dt")
    fine_dt = check_positive(fine_dt, "fine_dt")
    n_steps = check_multiple(t_end, dt, "t_end", "dt")
    substeps = check_multiple(dt, fine_dt, "dt", "fine_dt")
    verbose = _check_n_jobs_and_verbose(n_jobs, verbose)
    if n_trajectories is None and initial_conditions is None:
        n_trajectories = _rows_of(params if params is not None else inputs)
    u0 = _initial_conditions(system, n_trajectories, initial_conditions, random_state)
    conditioning = _Conditioning(system, *check_conditions(system, len(u0), n_steps + 1, params, inputs, t0),
                                 dt, fine_dt, substeps)
    _check_rhs(system, u0[:2], conditioning.rows(slice(0, 2)))

    compile = _check_compile(compile)
    start = time.perf_counter()
    operator = None if system.conditioned else linear_operator_of(system)
    if operator is not None:
        X, how = _integrate_linear(operator, integrator, u0, fine_dt, substeps, n_steps, device)
    else:
        stepper, chunks, n_jobs = _choose_stepper(system, integrator, u0, conditioning, fine_dt, substeps,
                                                  n_steps, n_jobs, device, compile)
        progress = _Progress(len(u0) * substeps, n_steps, verbose, start)
        X = _integrate(stepper, u0, conditioning, n_steps, chunks, n_jobs, progress)
        how = stepper.description
    if verbose:
        elapsed = time.perf_counter() - start
        rate = len(u0) * n_steps * substeps / max(elapsed, 1e-12)
        print(
            f"make_trajectories: {len(u0)} trajectories x {n_steps * substeps} fine steps of "
            f"{system.label} in {elapsed:.2f} s ({rate:.3g} trajectory-steps/s; {how})"
        )
    _raise_on_blow_up(X, dt)
    return X


def _check_n_jobs_and_verbose(n_jobs, verbose):
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral)
                               or n_jobs == 0):
        raise ValueError(f"n_jobs must be None or a non-zero int, got {n_jobs!r}.")
    return check_count(int(verbose) if isinstance(verbose, bool) else verbose, "verbose", minimum=0)


def _initial_conditions(system, n_trajectories, initial_conditions, random_state):
    if initial_conditions is None:
        n = 100 if n_trajectories is None else check_count(n_trajectories, "n_trajectories")
        return system.sample_initial_conditions(n, random_state=random_state)
    u0 = check_states(initial_conditions, system.n_state, "initial_conditions", finite=True)
    u0 = np.array(u0, dtype=np.float64)
    if len(u0) == 0:
        raise ValueError("initial_conditions must hold at least one state, got shape "
                         f"{u0.shape}.")
    if n_trajectories is not None and check_count(n_trajectories, "n_trajectories") != len(u0):
        raise ValueError(
            f"n_trajectories={n_trajectories} disagrees with the {len(u0)} initial_conditions given."
        )
    return u0


def _rows_of(values):
    """The number of rows of ``params`` or ``inputs``; None (the default count) if there
    are none, or if they have no length (their check then says what is wrong)."""
    try:
        return None if values is None else len(values)
    except TypeError:
        return None


class _Conditioning:
    """The times, parameters and input samples of a batch of trajectories, and what each
    fine step sees of them (:meth:`fine_step`).

    ``inputs`` may be a window of the signal: its first sample is the one at output
    ``offset``. Times are always ``t0 + n dt`` for the absolute output ``n``, so that the
    results do not depend on how the output times are split into blocks.
    """

    def __init__(self, system, params, inputs, t0, dt, fine_dt, substeps, offset=0):
        self.system, self.params, self.inputs, self.t0 = system, params, inputs, t0
        self.dt, self.fine_dt, self.substeps, self.offset = dt, fine_dt, substeps, offset
        if inputs is not None and system.input_interpolation not in ("linear", "hold"):
            raise ValueError("system.input_interpolation must be 'linear' or 'hold', got "
                             f"{system.input_interpolation!r}.")

    def _with(self, params, inputs, t0, offset):
        return _Conditioning(self.system, params, inputs, t0, self.dt, self.fine_dt, self.substeps, offset)

    def rows(self, index):
        """The conditioning of the trajectories ``index`` (a slice)."""
        values = (self.params, self.inputs, self.t0)
        return self._with(*(None if value is None else value[index] for value in values), self.offset)

    def window(self, n0, n_block):
        """What output intervals ``n0 .. n0 + n_block - 1`` need of the input signal."""
        inputs = None
        if self.inputs is not None:
            inputs = self.inputs[:, n0 - self.offset : n0 - self.offset + n_block + 1]
        return self._with(self.params, inputs, self.t0, n0)

    def fine_inputs(self, n, j0, count):
        """The input signal at fine steps ``j0 .. j0 + count`` of output interval ``n``,
        interpolated between the output samples ``n`` and ``n + 1``: ``(rows, count + 1,
        n_inputs)``."""
        samples = self.inputs[:, n - self.offset : n - self.offset + 2]
        interpolation = self.system.input_interpolation
        return np.stack([input_at(samples, j / self.substeps, interpolation)
                         for j in range(j0, j0 + count + 1)], axis=1)

    def fine_step(self, n, j):
        """The :class:`~sklearn_attns.conditions.Conditions` of fine step ``j`` of output
        interval ``n``: from ``t0 + n dt + j fine_dt``, with the input signal at its ends."""
        inputs = None if self.inputs is None else self.fine_inputs(n, j, 1)
        return Conditions(self.t0 + n * self.dt + j * self.fine_dt, self.params, inputs)


def _check_rhs(system, u, conditioning):
    """Call ``system.rhs`` once so a wrong return type or shape fails here, named."""
    if system.conditioned:
        w = None if conditioning.inputs is None else conditioning.inputs[:, 0]
        du = system.evaluate(conditioning.t0.copy(), u.copy(), conditioning.params, w)
    else:
        du = system.rhs(u.copy())
    if not isinstance(du, np.ndarray):
        raise TypeError(f"system.rhs must return a NumPy array for NumPy input, got {type(du).__name__}.")
    if not np.issubdtype(du.dtype, np.floating):
        raise TypeError(f"system.rhs must return floating values, got dtype {du.dtype}.")
    if du.shape != u.shape:
        raise ValueError(f"system.rhs must return the shape of its input {u.shape}, got {du.shape}.")


def _integrate_linear(operator, integrator, u0, fine_dt, substeps, n_steps, device=None):
    """The paths of ``du/dt = A u`` by products with the propagator of an output interval,
    ``R(fine_dt A)^substeps``; with NumPy, or with torch on ``device`` when that is a GPU.
    Returns them and how they were made."""
    step = integrator.stability_polynomial(fine_dt * np.asarray(operator, dtype=np.float64))
    propagator_t = np.linalg.matrix_power(step, substeps).T
    X = np.empty((len(u0), n_steps + 1, u0.shape[1]))
    X[:, 0] = u = u0
    if device is not None:
        from .devices import resolve_device

        resolved = resolve_device(device)
        if resolved.type != "cpu":
            _propagate_on(resolved, propagator_t, X)
            return X, f"linear shortcut on {resolved}"
    # One BLAS thread, as for the NumPy steps: a second one makes these small products
    # wait on each other (1024 x 40 by 40 x 40: 0.35 ms with one thread, 7.5 ms with two
    # on two busy cores).
    with np.errstate(all="ignore"), threadpool_limits(1):
        for n in range(n_steps):
            X[:, n + 1] = u = u @ propagator_t
    return X, "linear shortcut"


def _propagate_on(device, propagator_t, X):
    """Fill ``X[:, 1:]`` from ``X[:, 0]`` by products with ``propagator_t`` on ``device``
    (float64), as many rows at a time as fit a quarter of its free memory."""
    import torch

    from ._torch_stepping import staged_to_host
    from .devices import rows_in_memory

    n, n_outputs, n_state = X.shape
    propagator_t = torch.as_tensor(propagator_t, device=device)
    rows = max(1, min(n, rows_in_memory(device, 8 * n_state * 4)))

    def states(u):
        for _ in range(n_outputs - 1):
            u = u @ propagator_t
            yield u

    with torch.no_grad():
        for start in range(0, n, rows):
            batch = slice(start, start + rows)
            staged_to_host(states(torch.as_tensor(X[batch, 0], device=device)), X[batch, 1:],
                           lambda block: block.transpose(0, 1))


class _NumpyStepper:
    """Advances a batch of states by fine steps with NumPy, one thread (processes share)."""

    description = "NumPy steps"

    def __init__(self, system, integrator, fine_dt, substeps):
        self.system, self.integrator, self.fine_dt, self.substeps = system, integrator, fine_dt, substeps

    def advance(self, u, n0, n_block, conditioning, out=None):
        """States after output intervals ``n0 .. n0 + n_block - 1``, from states ``u`` at
        output ``n0``: shape ``(len(u), n_block, n_state)``, written into ``out`` if given."""
        out = np.empty((len(u), n_block, u.shape[1])) if out is None else out
        # Small matrix products gain nothing from a second BLAS thread; processes do the sharing.
        with np.errstate(all="ignore"), threadpool_limits(1):
            for k, n in enumerate(range(n0, n0 + n_block)):
                u = out[:, k] = self.fine_steps(u, n, self.substeps, conditioning)
        return out

    def fine_steps(self, u, n, count, conditioning):
        """The first ``count`` fine steps of output interval ``n``."""
        system, integrator, fine_dt = self.system, self.integrator, self.fine_dt
        if not system.conditioned:
            for _ in range(count):
                u = integrator.step(system.rhs, u, fine_dt)
            return u
        for j in range(count):
            rhs = conditioning.fine_step(n, j).rhs(system.evaluate, fine_dt, system.input_interpolation)
            u = integrator.step(rhs, u, fine_dt, at_nodes=True)
        return u


def _advance(stepper, u, n0, n_block, conditioning):
    return stepper.advance(u, n0, n_block, conditioning)


def _integrate(stepper, u0, conditioning, n_steps, chunks, n_jobs, progress):
    """Step the rows ``chunks`` of ``u0`` over ``n_steps`` outputs, a block of outputs at a
    time (the workers return each block's states, so progress can be reported)."""
    X = np.empty((len(u0), n_steps + 1, u0.shape[1]))
    X[:, 0] = u0
    n = 0
    in_process = joblib.effective_n_jobs(n_jobs) == 1
    with joblib.Parallel(n_jobs=n_jobs, verbose=max(0, progress.verbose - 1)) as parallel:
        while n < n_steps:
            block = progress.next_block(n)
            if in_process:  # each block straight into X, not into an array of its own copied there
                for chunk in chunks:
                    stepper.advance(X[chunk, n], n, block, conditioning.rows(chunk).window(n, block),
                                    out=X[chunk, n + 1 : n + 1 + block])
            else:
                parts = parallel(joblib.delayed(_advance)(stepper, X[chunk, n], n, block,
                                                          conditioning.rows(chunk).window(n, block))
                                 for chunk in chunks)
                for chunk, part in zip(chunks, parts):
                    X[chunk, n + 1 : n + 1 + block] = part
            n += block
            progress.done(n)
    return X


class _Progress:
    """Sizes the blocks of output times (about ``_BLOCK_SECONDS`` each) and, with
    ``verbose``, prints the progress every ``_PROGRESS_SECONDS``."""

    def __init__(self, row_steps_per_output, n_steps, verbose, start):
        self.row_steps_per_output, self.n_steps, self.verbose = row_steps_per_output, n_steps, verbose
        self.block, self.n, self.started, self.block_start = 1, 0, start, time.perf_counter()
        self.last_print = start
        self.seconds_per_output = None

    def next_block(self, n):
        self.block_start = time.perf_counter()
        if self.seconds_per_output is not None:
            wanted = int(_BLOCK_SECONDS / max(self.seconds_per_output, 1e-9))
            self.block = max(1, min(wanted, 8 * self.block))
        return min(self.block, self.n_steps - n)

    def done(self, n):
        now = time.perf_counter()
        self.seconds_per_output = (now - self.block_start) / max(n - self.n, 1)
        self.n = n
        if self.verbose and n < self.n_steps and now - self.last_print >= _PROGRESS_SECONDS:
            self.last_print = now
            rate = self.row_steps_per_output / self.seconds_per_output
            left = (self.n_steps - n) * self.seconds_per_output
            print(f"make_trajectories: {n}/{self.n_steps} output times ({100 * n / self.n_steps:.0f}%) in "
                  f"{now - self.started:.0f} s, {rate:.3g} trajectory-steps/s, about {left:.0f} s left",
                  flush=True)


# Seconds of work per block of output times, and between two progress lines.
_BLOCK_SECONDS = 2.0
_PROGRESS_SECONDS = 5.0
# compile="auto" compiles when the NumPy steps would take longer than this (seconds): twice
# the break-even point measured with one compiled candidate (benchmarks/bench_make_trajectories.py).
_COMPILE_PAYS_AFTER_S = 120.0
# Values per batch of the torch steps on the CPU: a state batch of 256 KiB, so that the
# stage buffers of a compiled step stay in a core's L2 cache.
_TORCH_BATCH_VALUES = 32_768


def _check_compile(compile):
    if isinstance(compile, str) and compile == "auto":
        return "auto"
    if isinstance(compile, (bool, np.bool_)):
        return bool(compile)
    raise ValueError(f"compile must be 'auto', True or False, got {compile!r}.")


def _choose_stepper(system, integrator, u0, conditioning, fine_dt, substeps, n_steps, n_jobs, device,
                    compile):
    """The stepper (NumPy or torch), the row chunks it works on and the ``n_jobs`` to use."""
    n, n_state = u0.shape
    n_workers = joblib.effective_n_jobs(n_jobs)
    numpy_stepper = _NumpyStepper(system, integrator, fine_dt, substeps)
    numpy_chunks = _even_chunks(n, max(n_workers, n * n_state // _CACHE_FRIENDLY_VALUES))
    if compile == "auto":
        compile = _numpy_seconds(numpy_stepper, u0, conditioning, numpy_chunks, n_steps,
                                 n_workers) >= _COMPILE_PAYS_AFTER_S
        if device is None and not compile:
            return numpy_stepper, numpy_chunks, n_jobs
        guessed = device is None  # the torch steps were not asked for: NumPy if the rhs needs it
    elif device is None and not compile:
        return numpy_stepper, numpy_chunks, n_jobs
    else:
        guessed = False
    from ._torch_stepping import TorchStepper, accepts_tensors
    from .devices import resolve_device

    resolved = resolve_device("cpu" if device is None else device)
    if not accepts_tensors(system, u0[:2], conditioning.rows(slice(0, 2)), resolved):
        if guessed:
            return numpy_stepper, numpy_chunks, n_jobs
        asked = "compile=True" if device is None else f"device={device!r}"
        raise ValueError(f"{asked} steps with torch, so system.rhs must accept torch tensors (float64) and "
                         "return one; write it with torch-compatible operations, or leave device and compile "
                         "out.")
    if resolved.type == "cpu":
        rows = min(-(-n // n_workers), max(1, _TORCH_BATCH_VALUES // n_state))
    else:
        rows, n_jobs = min(n, _device_rows(resolved, system, substeps)), 1  # one process drives the device
    stepper = TorchStepper(system, integrator, fine_dt, substeps, rows, resolved, compile,
                           _system_key(system))
    return stepper, [slice(start, min(start + rows, n)) for start in range(0, n, rows)], n_jobs


def _even_chunks(n, n_chunks):
    return list(gen_even_slices(n, min(n, n_chunks)))


def _numpy_seconds(stepper, u0, conditioning, chunks, n_steps, n_workers):
    """The NumPy steps' time for the whole job, from two timed fine steps on one chunk."""
    chunk = chunks[0]
    rows = conditioning.rows(chunk).window(0, 1)
    u = u0[chunk]
    with np.errstate(all="ignore"), threadpool_limits(1):
        stepper.fine_steps(u, 0, 1, rows)  # warm-up
        start = time.perf_counter()
        stepper.fine_steps(u, 0, 2, rows)
        seconds = (time.perf_counter() - start) / 2
    return seconds * stepper.substeps * n_steps * len(chunks) / n_workers


def _device_rows(device, system, substeps):
    """Rows of a batch that fit a quarter of the device's free memory, counting a compiled
    step's buffers generously (64 copies of the state per row)."""
    from .devices import rows_in_memory

    return rows_in_memory(device, 8 * (64 * system.n_state + (substeps + 1) * system.n_inputs
                                       + system.n_params + 8))


def _system_key(system):
    """A key equal for equal systems (their pickles), so that compiled steps are shared."""
    try:
        return joblib.hash(system)
    except Exception:  # noqa: BLE001 - a system that does not pickle: by identity
        return ("id", id(system))


def _raise_on_blow_up(X, dt):
    finite = np.isfinite(X)
    if finite.all():  # one flat pass; the per-row reductions below cost ten times as much
        return
    finite = finite.all(axis=2)
    bad = np.flatnonzero(~finite.all(axis=1))
    if len(bad):
        first = np.argmin(finite[bad], axis=1)
        raise TrajectoryBlowUpError(bad, first * dt, len(X))


# --- The paper's benchmarks, cached on disk -------------------------------------------------

# Table 3 of the paper: (train, validation, test) sizes, T, and the coarse dt.
_BENCHMARKS = {
    "spring_mass": dict(sizes=(5000, 100, 5000), t_end=20.0, dt=0.2),
    "elastic_pendulum": dict(sizes=(20000, 1000, 10000), t_end=50.0, dt=0.1),
    "klink_pendulum": dict(sizes=(20000, 1000, 10000), t_end=10.0, dt=0.1),
}
_SCALES = {"paper": 1.0, "quick": 0.05, "tiny": 0.002}


def get_data_home(data_home=None):
    """Return the folder where benchmark datasets are cached, creating it.

    By default ``~/sklearn_attns_data``; the environment variable ``SKLEARN_ATTNS_DATA``
    moves it, and an explicit ``data_home`` overrides both.
    """
    if data_home is None:
        data_home = os.environ.get("SKLEARN_ATTNS_DATA", Path("~") / "sklearn_attns_data")
    if not isinstance(data_home, (str, os.PathLike)):
        raise TypeError(f"data_home must be a str or a path-like object, got {type(data_home).__name__}.")
    path = Path(data_home).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _load_benchmark(name, system, scale, train_method, fine_dt, reference_fine_dt, data_home,
                    random_state, n_jobs, verbose, device):
    spec = _BENCHMARKS[name]
    if isinstance(scale, str):
        if scale not in _SCALES:
            raise ValueError(f"scale must be one of {sorted(_SCALES)} or a fraction in (0, 1], "
                             f"got {scale!r}.")
        fraction = _SCALES[scale]
    else:
        fraction = check_positive(scale, "scale")
        if fraction > 1:
            raise ValueError(f"scale must be at most 1 (the paper's sizes), got {scale!r}.")
    sizes = [max(1, int(round(n * fraction))) for n in spec["sizes"]]
    check_count(random_state, "random_state", minimum=0)
    get_integrator(train_method, "train_method")
    # Checked here, under their own names, before any split is made.
    check_multiple(spec["dt"], check_positive(fine_dt, "fine_dt"), "dt", "fine_dt")
    check_multiple(spec["dt"], check_positive(reference_fine_dt, "reference_fine_dt"), "dt",
                   "reference_fine_dt")
    _check_n_jobs_and_verbose(n_jobs, verbose)
    if device is not None:
        from .devices import resolve_device

        resolve_device(device)
    params = dict(name=name, system=repr(system), system_params=system.get_params(deep=True),
                  sizes=sizes, t_end=spec["t_end"], dt=spec["dt"], train_method=train_method,
                  fine_dt=fine_dt, reference_fine_dt=reference_fine_dt, random_state=random_state)

    def make(split, n, seed):
        # Training data uses the solver-specific method and fine step; the held-out
        # splits are the RK4 reference at the finer step (Table 3).
        method, step = (train_method, fine_dt) if split == "train" else ("rk4", reference_fine_dt)
        if verbose:
            print(f"{name}: making {split} split ({n} trajectories, {method}, fine step {step:g})")
        return make_trajectories(system, n, spec["t_end"], spec["dt"], step, method, random_state=seed,
                                 n_jobs=n_jobs, verbose=verbose, device=device)

    path, splits = _cached_splits(name, params, dict(zip(("train", "validation", "test"), sizes)), make,
                                  random_state, data_home)
    return Bunch(system=system, dt=spec["dt"], t_end=spec["t_end"], path=path, **splits)


def _cached_splits(name, params, sizes, make, random_state, data_home):
    """``(path, splits)``: the splits stored under a hash of ``params``, made by
    ``make(split, n, seed)`` for each ``split: n`` of ``sizes`` (one seed each, drawn from
    ``random_state``) and stored if the cache does not hold them yet."""
    path = get_data_home(data_home) / f"{name}-{joblib.hash(params)[:16]}.npz"
    if path.exists():
        with np.load(path) as data:
            return path, {key: data[key] for key in sizes}
    seeds = np.random.RandomState(random_state).randint(2**31 - 1, size=len(sizes))
    splits = {split: make(split, n, int(seed)) for (split, n), seed in zip(sizes.items(), seeds)}
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, **splits)
    os.replace(tmp, path)
    return path, splits


def load_pde_trajectories(system, n_train, n_test, t_end, dt, fine_dt=1e-3, data_home=None, random_state=0,
                          n_jobs=None, verbose=0, device=None):
    """Return train / test trajectories of a method-of-lines PDE, made once and cached on disk.

    Both splits are made by :func:`make_trajectories` with RK4 at ``fine_dt`` from the
    system's own random initial fields (a seed each, drawn from ``random_state``) and
    stored under :func:`get_data_home`, keyed by the system's parameters and all the
    arguments below but the machinery ones (``n_jobs``, ``verbose``, ``device``); later
    calls with the same arguments load them. Made for the grid systems
    (:class:`~sklearn_attns.systems.Burgers`, :class:`~sklearn_attns.systems.FitzHughNagumo`,
    ...), which have no benchmark sizes in the paper; any system works.

    Parameters
    ----------
    system : ODESystem
        The system, such as ``Burgers()``.
    n_train, n_test : int
        Trajectories of each split.
    t_end : float
        Horizon ``T``.
    dt : float
        Time between stored states (the hybrid solvers' coarse step).
    fine_dt : float, default=1e-3
        Fine RK4 step of both splits; ``dt`` must be a multiple of it.
    data_home : str or path-like, default=None
        Cache folder; see :func:`get_data_home`.
    random_state : int, default=0
        Seed of the initial conditions.
    n_jobs : int, default=None
        Processes used to make the data (see :func:`make_trajectories`).
    verbose : int, default=0
        Progress output.
    device : str, torch.device or None, default=None
        Where the data is made (see :func:`make_trajectories`).

    Returns
    -------
    data : Bunch
        ``train`` and ``test`` arrays ``(n, n_times, n_state)`` float64, plus ``system``,
        ``dt``, ``t_end``, ``fine_dt`` and the cache ``path``.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_attns.datasets import load_pde_trajectories
    >>> from sklearn_attns.systems import Burgers
    >>> with tempfile.TemporaryDirectory() as home:
    ...     data = load_pde_trajectories(Burgers(n_points=16), 3, 2, t_end=0.2, dt=0.1, fine_dt=0.01,
    ...                                  data_home=home)
    >>> data.train.shape, data.test.shape, data.test.dtype
    ((3, 3, 16), (2, 3, 16), dtype('float64'))
    """
    n_train = check_count(n_train, "n_train")
    n_test = check_count(n_test, "n_test")
    check_count(random_state, "random_state", minimum=0)
    check_multiple(check_positive(t_end, "t_end"), check_positive(dt, "dt"), "t_end", "dt")
    check_multiple(dt, check_positive(fine_dt, "fine_dt"), "dt", "fine_dt")
    _check_n_jobs_and_verbose(n_jobs, verbose)
    name = type(system).__name__.lower()
    params = dict(name=name, system=repr(system), system_params=system.get_params(deep=True), t_end=t_end,
                  dt=dt, fine_dt=fine_dt, random_state=random_state)

    def make(split, n, seed):
        if verbose:
            print(f"{name}: making {split} split ({n} trajectories, rk4, fine step {fine_dt:g})")
        return make_trajectories(system, n, t_end, dt, fine_dt, "rk4", random_state=seed, n_jobs=n_jobs,
                                 verbose=verbose, device=device)

    path, splits = _cached_splits(name, params | {"sizes": (n_train, n_test)},
                                  {"train": n_train, "test": n_test}, make, random_state, data_home)
    return Bunch(system=system, dt=dt, t_end=t_end, fine_dt=fine_dt, path=path, **splits)


_LOADER_DOC = """Return the {title} benchmark's train / validation / test trajectories (Table 3).

    Data is made once and cached under :func:`get_data_home`; later calls with the same
    arguments load it.

    Parameters
    ----------{extra}
    scale : {{"paper", "quick", "tiny"}} or float, default="quick"
        Sizes as a fraction of the paper's {sizes} (train, validation, test):
        "paper" is 1, "quick" 0.05, "tiny" 0.002.
    train_method : str, default="rk4"
        Integrator of the training data (the paper uses the solver's own for the chain).
    fine_dt : float, default=1e-3
        Fine step of the training data.
    reference_fine_dt : float, default=1e-4
        Fine step of the RK4 validation and test data (the paper used 1e-5; the test
        suite checks 1e-4 against scipy's DOP853).
    data_home : str or path-like, default=None
        Cache folder; see :func:`get_data_home`.
    random_state : int, default=0
        Seed of the initial conditions.
    n_jobs : int, default=None
        Processes used to make the data (see :func:`make_trajectories`).
    verbose : int, default=0
        Progress output.
    device : str, torch.device or None, default=None
        Where the data is made (see :func:`make_trajectories`); the cache does not
        depend on it, as every device gives the same data to rounding.

    Returns
    -------
    data : Bunch
        ``train``, ``validation``, ``test`` arrays ``(n, n_times, n_state)`` float64,
        plus ``system``, ``dt``, ``t_end`` and the cache ``path``.
    """


def load_spring_mass(n_masses=20, scale="quick", train_method="rk4", fine_dt=1e-3, reference_fine_dt=1e-4,
                     data_home=None, random_state=0, n_jobs=None, verbose=0, device=None):
    return _load_benchmark("spring_mass", SpringMass(n_masses=n_masses), scale, train_method, fine_dt,
                           reference_fine_dt, data_home, random_state, n_jobs, verbose, device)


def load_elastic_pendulum(scale="quick", train_method="rk4", fine_dt=1e-3, reference_fine_dt=1e-4,
                          data_home=None, random_state=0, n_jobs=None, verbose=0, device=None):
    return _load_benchmark("elastic_pendulum", ElasticPendulum(), scale, train_method, fine_dt,
                           reference_fine_dt, data_home, random_state, n_jobs, verbose, device)


def load_klink_pendulum(n_links=2, scale="quick", train_method="rk4", fine_dt=1e-3, reference_fine_dt=1e-4,
                        data_home=None, random_state=0, n_jobs=None, verbose=0, device=None):
    return _load_benchmark("klink_pendulum", KLinkPendulum(n_links=n_links), scale, train_method, fine_dt,
                           reference_fine_dt, data_home, random_state, n_jobs, verbose, device)


load_spring_mass.__doc__ = _LOADER_DOC.format(
    title="spring-mass chain", sizes="5k / 0.1k / 5k",
    extra="\n    n_masses : int, default=20\n"
          "        Number of masses of the chain (``SpringMass(n_masses)``).")
load_elastic_pendulum.__doc__ = _LOADER_DOC.format(title="elastic pendulum", sizes="20k / 1k / 10k", extra="")
load_klink_pendulum.__doc__ = _LOADER_DOC.format(
    title="K-link pendulum", sizes="20k / 1k / 10k",
    extra="\n    n_links : int, default=2\n        Number of links (``KLinkPendulum(n_links)``).")
