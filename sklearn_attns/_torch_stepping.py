"""Fine steps of many trajectories on torch tensors, fused by ``torch.compile``.

:func:`~sklearn_attns.datasets.make_trajectories` steps a system whose right-hand side
accepts torch tensors here (on a GPU, or on the CPU when the job is large enough for
compiling to pay). Three things make it fast:

* **Columns, not rows.** A batch of states is held transposed, as an ``(n_state, rows)``
  tensor, so that each state component is contiguous across the rows; the right-hand
  side still sees its usual ``(rows, n_state)`` view (``v.t()``), and the integrator's
  stage arithmetic runs on the transposed tensors. Compiled, every elementwise operation
  then vectorises over the rows.
* **One kernel for several fine steps.** ``torch.compile`` sees ``fuse`` consecutive fine
  steps as one graph and fuses their elementwise work.
* **A graph rewrite before Inductor** (:func:`rewrite_for_columns`): a right-hand side
  that assembles its result with ``stack(..., dim=1)`` or ``cat(..., dim=1)`` would write
  it row by row, which Inductor's CPU code does not vectorise; the rewrite builds the
  same values column by column (``stack(..., 0).t()``). Small batched linear solves
  (``torch.linalg.solve`` of ``k x k`` systems, ``k <= 4``, as in the K-link pendulum)
  become Gaussian elimination with partial pivoting written out elementwise, which fuses
  with the rest instead of calling LAPACK once per row.

Compiled steps are checked once against the same steps run eagerly; if they disagree, or
``torch.compile`` is not available (no C++ compiler, say), the eager steps are used with a
warning. Compiled functions are kept per system, integrator, step and batch shape for the
life of the process (worker processes keep theirs between calls).

Dtype and device policy: float64 on the chosen device; states return to the host as
float64 NumPy arrays.
"""

import types
import warnings

import numpy as np
import torch

from ._timing import fastest_times
from .conditions import Conditions

__all__ = ["CheckedCompiled", "TorchStepper", "accepts_tensors", "compile_candidate", "copy_to_host",
           "fresh_code", "fused_steps", "staged_to_host", "transposed_rhs"]

# Most fine steps fused into one compiled call: compile time grows with it.
_MAX_FUSED_STEPS = 4
# Largest linear system solved elementwise instead of by LAPACK.
_MAX_UNROLLED_SOLVE = 4
# A compiled call must agree with the eager one to this relative tolerance.
_COMPILED_RTOL = 1e-10
# Most bytes of states kept on the device before they are copied to the host.
_STAGED_BYTES = 64 * 2**20

_COMPILED = {}  # cache key -> the function that advances a batch by `fuse` fine steps


def accepts_tensors(system, u, conditioning, device):
    """Whether the system's right-hand side takes float64 tensors on ``device`` and
    returns a float64 tensor of the state's shape (NumPy-only right-hand sides do not)."""
    args = _probe_arguments(system, u, conditioning, device)
    try:
        du = system.evaluate(*args)
    except Exception:  # noqa: BLE001 - a NumPy-only rhs fails on tensors in any way
        return False
    return isinstance(du, torch.Tensor) and du.dtype == torch.float64 and tuple(du.shape) == u.shape


def _probe_arguments(system, u, conditioning, device):
    def tensor(array):
        return None if array is None else torch.as_tensor(np.ascontiguousarray(array), device=device)

    if not system.conditioned:
        return None, tensor(u), None, None
    w = None if conditioning.inputs is None else conditioning.inputs[:, 0]
    return tensor(conditioning.t0), tensor(u), tensor(conditioning.params), tensor(w)


def fused_steps(substeps):
    """Fine steps per call: the largest divisor of ``substeps`` up to the maximum."""
    return max(k for k in range(1, min(substeps, _MAX_FUSED_STEPS) + 1) if substeps % k == 0)


class TorchStepper:
    """Advances batches of ``rows`` states by fine steps on torch tensors.

    Parameters
    ----------
    system : ODESystem
        Its right-hand side accepts tensors.
    integrator : Integrator
    fine_dt : float
    substeps : int
        Fine steps per output interval.
    rows : int
        Rows per call; smaller batches are padded to it, so one compiled function serves
        every batch.
    device : torch.device
    compile : bool
        Run the steps through ``torch.compile``.
    key : hashable
        Identifies the system's value (equal systems share compiled functions).
    """

    def __init__(self, system, integrator, fine_dt, substeps, rows, device, compile, key):
        self.system, self.integrator, self.fine_dt, self.substeps = system, integrator, fine_dt, substeps
        self.rows, self.device, self.compile, self.key = rows, torch.device(device), compile, key
        self.fuse = fused_steps(substeps)

    @property
    def description(self):
        return f"torch steps on {self.device}" + (", compiled" if self.compile else "")

    def advance(self, u, n0, n_block, conditioning, out=None):
        """States after output intervals ``n0 .. n0 + n_block - 1``, from states ``u``
        ``(m, n_state)`` at output ``n0``: shape ``(m, n_block, n_state)``, float64 NumPy,
        written into ``out`` if given."""
        m = len(u)
        function = self._function()
        to_device = self._to_device
        v = to_device(_pad(u, self.rows).T)
        params = None if conditioning.params is None else to_device(_pad(conditioning.params, self.rows).T)
        offsets = [to_device(np.array([(j0 + j) * self.fine_dt for j in range(self.fuse)]))
                   for j0 in range(0, self.substeps, self.fuse)]
        out = np.empty((m, n_block, u.shape[1])) if out is None else out
        # On the CPU, one thread: processes share the cores (and a thread team spinning on
        # cores that other processes hold runs many times slower).
        threads = torch.get_num_threads()
        if self.device.type == "cpu":
            torch.set_num_threads(1)
        try:
            with torch.no_grad():
                self._steps(function, v, params, offsets, out, n0, n_block, conditioning)
        finally:
            torch.set_num_threads(threads)
        return out

    def _steps(self, function, v, params, offsets, out, n0, n_block, conditioning):
        def states():
            nonlocal v
            for n in range(n0, n0 + n_block):
                t = None
                if self.system.conditioned:
                    t = self._to_device(_pad(conditioning.t0 + n * conditioning.dt, self.rows))
                for i, j0 in enumerate(range(0, self.substeps, self.fuse)):
                    window = None
                    if conditioning.inputs is not None:
                        # (fuse + 1, n_inputs, rows): each input component contiguous across rows
                        window = _pad(conditioning.fine_inputs(n, j0, self.fuse), self.rows)
                        window = self._to_device(window.transpose(1, 2, 0))
                    v = function(v, t, offsets[i], params, window)
                yield v

        # (outputs, n_state, rows) -> (rows, outputs, n_state), without the padding rows
        staged_to_host(states(), out, lambda block: block.permute(2, 0, 1)[: len(out)])

    def _to_device(self, array):
        return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float64), device=self.device)

    def _function(self):
        key = (self.key, self.integrator, self.fine_dt, self.fuse, self.rows, str(self.device), self.compile)
        if key not in _COMPILED:
            eager = _fused_steps_function(self.system, self.integrator, self.fine_dt, self.fuse)
            _COMPILED[key] = CheckedCompiled(eager) if self.compile else eager
        return _COMPILED[key]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["device"] = str(self.device)
        return state

    def __setstate__(self, state):
        state["device"] = torch.device(state["device"])
        self.__dict__.update(state)


def staged_to_host(states, out, to_rows):
    """Write the device states yielded by ``states``, one per output, into ``out`` (rows,
    outputs, n_state) on the host. They gather on the device and go to the host a few at a
    time (on a GPU one copy per output would stall it), at most ``_STAGED_BYTES`` of them;
    ``to_rows`` lays a gathered block ``(outputs, *state shape)`` out as ``(rows, outputs,
    n_state)``."""
    n_outputs, stage = out.shape[1], None
    for k, v in enumerate(states):
        if stage is None:
            staged = max(1, min(n_outputs, _STAGED_BYTES // (v.element_size() * v.numel())))
            stage = torch.empty((staged, *v.shape), dtype=v.dtype, device=v.device)
        stage[k % staged] = v
        if k % staged == staged - 1 or k == n_outputs - 1:
            first = k - k % staged
            copy_to_host(to_rows(stage[: k + 1 - first]), out[:, first : k + 1])


def copy_to_host(states, out):
    """Copy the tensor ``states`` into ``out``, a NumPy array or a view of one, of its shape."""
    if states.device.type == "cpu":
        torch.from_numpy(out).copy_(states)
        return
    # From a GPU into a strided view of pageable memory, copy_ takes a slow path (91 ms of
    # a 146 ms make_trajectories call of 131,072 states on an H200). Laid out on the device,
    # copied into pinned memory (which torch keeps for reuse), then by NumPy into the view:
    # that call 113 -> 63 ms (through pageable memory instead: 111 ms); see
    # docs/benchmark_logs/work_precision_gpu_h200.log.
    pinned = torch.empty(states.shape, dtype=states.dtype, pin_memory=True)
    pinned.copy_(states.contiguous())
    out[...] = pinned.numpy()


def _pad(array, rows):
    """``array`` with its last row repeated up to ``rows`` rows (padding rows are discarded)."""
    missing = rows - len(array)
    if missing <= 0:
        return array
    return np.concatenate([array, np.repeat(array[-1:], missing, axis=0)])


def _fused_steps_function(system, integrator, fine_dt, fuse):
    """``advance(v, t, offsets, params, inputs)``: ``fuse`` fine steps of the transposed
    states ``v`` (n_state, rows) from times ``t + offsets[j]``; ``params`` (n_params, rows),
    ``inputs`` (fuse + 1, n_inputs, rows) the input signal at the fine steps' ends."""
    interpolation = system.input_interpolation

    def advance(v, t, offsets, params, inputs):
        p = None if params is None else params.t()
        w = None if inputs is None else inputs.permute(2, 0, 1)
        for j in range(fuse):
            if system.conditioned:
                conditions = Conditions(None if t is None else t + offsets[j], p,
                                        None if w is None else w[:, j : j + 2])
                rhs = conditions.rhs(system.evaluate, fine_dt, interpolation)

                def transposed(c, s, rhs=rhs):
                    return rhs(c, s.t()).t().contiguous()

                v = integrator.step(transposed, v, fine_dt, at_nodes=True)
            else:
                v = integrator.step(transposed_rhs(system.rhs), v, fine_dt)
        return v

    return advance


def fresh_code(function):
    """``function`` with a code object of its own: torch.compile keeps its cache (and its
    recompilation limit) per code object, so each system and shape gets its own compiled
    function."""
    return types.FunctionType(function.__code__.replace(), function.__globals__, function.__name__,
                              function.__defaults__, function.__closure__)


def transposed_rhs(rhs):
    """``rhs`` (on ``(rows, n_state)`` states) as a function of transposed states."""
    def transposed(s):
        return rhs(s.t()).t().contiguous()

    return transposed


class CheckedCompiled:
    """``torch.compile`` of an eager function (:func:`rewrite_for_columns`, then Inductor),
    checked against it and tuned on the first call.

    The first call compiles one candidate per entry of :func:`inductor_variants` for the
    arguments' device, drops those whose results differ from the eager ones beyond ``rtol``
    of the largest value, and keeps the fastest of the rest over a few calls on the same
    arguments; the eager function (with a warning) if compiling fails or every candidate
    disagrees. ``what`` names the function in the warnings.
    """

    def __init__(self, eager, rtol=_COMPILED_RTOL, what="fine steps"):
        self.eager, self.function, self.checked = eager, None, False
        self.rtol, self.what = rtol, what

    def __call__(self, *args):
        if self.checked:
            return self.function(*args)
        self.checked = True
        expected = self.eager(*args)
        candidates, failure, worst = [], None, 0.0
        for patches in inductor_variants(_device_of(args)):
            try:
                function = compile_candidate(self.eager, patches)
                with warnings.catch_warnings():
                    # torch's own modules, imported while compiling, warn about their deprecations
                    warnings.simplefilter("ignore", DeprecationWarning)
                    got = function(*args)
            except Exception as exc:  # noqa: BLE001 - any failure of the compiler stack
                failure = failure or exc
                continue
            pairs = list(zip(got, expected)) if isinstance(expected, tuple) else [(got, expected)]
            difference = max(self._difference(*pair) for pair in pairs)
            if difference > 0:
                worst = max(worst, difference)
            else:
                candidates.append(function)
        if candidates:
            self.function = _fastest(candidates, args)
        elif failure is not None and not worst:
            first_line = (str(failure).strip().splitlines() or [""])[0]
            warnings.warn(f"torch.compile failed, so the {self.what} run without it (slower): "
                          f"{type(failure).__name__}: {first_line}", RuntimeWarning, stacklevel=2)
            self.function = self.eager
        else:
            warnings.warn(f"the compiled {self.what} disagree with the eager ones (largest difference "
                          f"{worst:.3g}), so they run without torch.compile.", RuntimeWarning, stacklevel=2)
            self.function = self.eager
        return expected

    def _difference(self, got, expected):
        """0 if ``got`` agrees with ``expected``, else their largest difference."""
        got, expected = got.double(), expected.double()
        scale = float(expected.abs().max()) if expected.numel() else 0.0
        if torch.allclose(got, expected, rtol=self.rtol, atol=self.rtol * max(scale, 1e-300), equal_nan=True):
            return 0.0
        return float((got - expected).abs().nan_to_num(nan=float("inf")).max())


# Inductor settings tried for every compiled function on the CPU. Realising each buffer that is read
# three times or more (Inductor's default: four) keeps it from recomputing a right-hand side
# inside the kernels that use it: a hybrid N-body step 1.25x faster, the 2-link pendulum's
# fused RK4 steps 1.3x (realising every buffer read twice, tried before, cost 1.2x on the
# latter); on the elastic pendulum both settings run alike. Both are compiled and timed, as
# neither is known to win on every system (on a GPU, see inductor_variants).
INDUCTOR_VARIANTS = ({"realize_reads_threshold": 3}, {})


def inductor_variants(device):
    """The Inductor settings compiled for ``device``: ``INDUCTOR_VARIANTS`` on the CPU,
    where they were measured; Inductor's default alone on a GPU, where compiling is the
    cost that counts (on an H200, 1-35 s per function with one candidate; the elastic
    pendulum's work-precision measurement took 42 s with one, 108-111 s with two)."""
    return INDUCTOR_VARIANTS if device.type == "cpu" else ({},)


def _device_of(args):
    tensors = [arg for arg in args if isinstance(arg, torch.Tensor)]
    return tensors[0].device if tensors else torch.device("cpu")


# Timed calls per candidate when choosing the fastest.
_TUNING_CALLS = 7


def _fastest(functions, args):
    if len(functions) == 1:
        return functions[0]
    times = fastest_times([lambda f=f: f(*args) for f in functions], _TUNING_CALLS, after_call=_wait_for)
    return functions[times.index(min(times))]


def _wait_for(out):
    tensor = out[0] if isinstance(out, tuple) else out
    if tensor.is_cuda:
        torch.cuda.synchronize(tensor.device)


# --- The graph rewrite -------------------------------------------------------------------------

_JOINS = tuple(function for function in (torch.stack, torch.cat, getattr(torch, "concat", None),
                                         getattr(torch, "concatenate", None)) if function is not None)


def compile_candidate(eager, config_patches):
    """``torch.compile`` of ``eager`` (on a code object of its own) through
    :func:`rewrite_for_columns` and Inductor with ``config_patches``, for static shapes."""
    return torch.compile(fresh_code(eager), backend=_column_major_inductor(config_patches), dynamic=False)


def _column_major_inductor(config_patches):
    """A ``torch.compile`` backend: :func:`rewrite_for_columns`, then Inductor with
    ``config_patches``."""
    def backend(gm, example_inputs):
        from torch._inductor.compile_fx import compile_fx

        return compile_fx(rewrite_for_columns(gm), example_inputs, config_patches=dict(config_patches))

    return backend


def rewrite_for_columns(gm):
    """Rewrite a captured graph (in place, and return it) so that its joins into 2-D
    results build them column by column, and its small linear solves are elementwise."""
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in _JOINS:
            _join_by_columns(graph, node)
        elif node.target is torch.linalg.solve:
            _solve_elementwise(graph, node)
    graph.lint()
    gm.recompile()
    return gm


def _value(node):
    return node.meta.get("example_value") if isinstance(node, torch.fx.Node) else None


def _join_by_columns(graph, node):
    """``stack(xs, 1)`` -> ``stack(xs, 0).t()``; ``cat(xs, 1)`` -> ``cat([x.t()...], 0).t()``
    for 2-D results: the same values, laid out a column at a time."""
    value, parts = _value(node), node.args[0] if node.args else None
    if value is None or value.ndim != 2 or not isinstance(parts, (list, tuple)):
        return
    if set(node.kwargs) - {"dim", "axis"}:
        return  # an out= or a name this rewrite does not know
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", node.kwargs.get("axis", 0))
    if dim not in (1, -1) or not all(_value(x) is not None for x in parts):
        return
    with graph.inserting_before(node):
        if node.target is torch.stack:
            joined = graph.call_function(torch.stack, (list(parts), 0))
        else:
            joined = graph.call_function(torch.cat, ([graph.call_method("t", (x,)) for x in parts], 0))
        columns = graph.call_method("t", (joined,))
    node.replace_all_uses_with(columns)
    graph.erase_node(node)


def _solve_elementwise(graph, node):
    """``torch.linalg.solve(a, b)`` of small square systems -> :func:`unrolled_solve`."""
    if len(node.args) != 2 or set(node.kwargs) - {"left"} or node.kwargs.get("left", True) is not True:
        return
    a, b = (_value(x) for x in node.args)
    if a is None or b is None or a.ndim < 2 or not a.shape[-1] == a.shape[-2] <= _MAX_UNROLLED_SOLVE:
        return
    vector = tuple(b.shape) == tuple(a.shape[:-1])
    if not vector and (b.ndim != a.ndim or tuple(b.shape[:-1]) != tuple(a.shape[:-1])):
        return
    with graph.inserting_before(node):
        solved = graph.call_function(unrolled_solve, (*node.args, vector))
    node.replace_all_uses_with(solved)
    graph.erase_node(node)


def unrolled_solve(a, b, vector):
    """Solve ``a x = b`` for a batch of small ``k x k`` systems by Gaussian elimination
    with partial pivoting, one elementwise operation at a time.

    ``a`` is ``(..., k, k)``; ``b`` is ``(..., k)`` when ``vector``, else ``(..., k, m)``.
    Agrees with ``torch.linalg.solve`` to rounding; a singular system gives non-finite
    values instead of an error.

    Examples
    --------
    >>> import torch
    >>> from sklearn_attns._torch_stepping import unrolled_solve
    >>> a = torch.tensor([[[0.0, 2.0], [1.0, 1.0]]], dtype=torch.float64)  # needs a row swap
    >>> unrolled_solve(a, torch.tensor([[4.0, 3.0]], dtype=torch.float64), vector=True)
    tensor([[1., 2.]], dtype=torch.float64)
    """
    k = a.shape[-1]
    if vector:
        b = b.unsqueeze(-1)
    m = b.shape[-1]
    # Each row of the augmented matrix [a | b] as a list of batch tensors.
    rows = [[a[..., i, j] for j in range(k)] + [b[..., i, r] for r in range(m)] for i in range(k)]
    for col in range(k):
        for i in range(col + 1, k):  # bring the largest |a_i,col| of rows col.. to row col
            swap = rows[i][col].abs() > rows[col][col].abs()
            rows[col], rows[i] = ([torch.where(swap, x, y) for x, y in zip(rows[i], rows[col])],
                                  [torch.where(swap, y, x) for x, y in zip(rows[i], rows[col])])
        for i in range(col + 1, k):
            factor = rows[i][col] / rows[col][col]
            rows[i] = [x if j <= col else x - factor * y for j, (x, y) in enumerate(zip(rows[i], rows[col]))]
    x = [None] * k
    for i in reversed(range(k)):
        xi = rows[i][k:]
        for j in range(i + 1, k):
            xi = [value - rows[i][j] * known for value, known in zip(xi, x[j])]
        x[i] = [value / rows[i][i] for value in xi]
    # Stacked batch-last, then moved: each component stays contiguous across the batch.
    solution = torch.stack([torch.stack(xi, 0) for xi in x], 0).movedim((0, 1), (-2, -1))
    return solution[..., 0] if vector else solution
