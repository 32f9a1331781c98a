"""Rolling a fitted step out from initial conditions: state recording and blow-up tracking.

Dtype and device policy: states are float64 on the model's device; the returned paths are
a float64 NumPy array on the host, written as the rollout goes, so peak memory stays close
to the size of what is returned.
"""

import warnings

import numpy as np
import torch

from ._torch_stepping import fused_steps
from .corrections import cpu_block_rows

__all__ = ["RolloutWarning", "rollout"]


class RolloutWarning(RuntimeWarning):
    """A rollout produced non-finite states for some trajectories."""


def rollout(model, u0, n_steps, *, save_every=1, final_only=False, batch_size, device, conditions=None):
    """Roll ``model`` (a :class:`~sklearn_attns.corrections.HybridStep`) out from ``u0``.

    Parameters
    ----------
    model : HybridStep
        The step, on ``device``.
    u0 : ndarray of shape (n, n_state), float64
        Initial conditions.
    n_steps : int
        Steps to take.
    save_every : int, default=1
        Keep every ``save_every``-th state.
    final_only : bool, default=False
        Keep only the last state.
    batch_size : int
        Trajectories rolled out together.
    device : torch.device
        Where the model lives.
    conditions : ConditionSequence, default=None
        For a conditioned system: the times, parameters and inputs of every row, as
        tensors on ``device``.

    Returns
    -------
    paths : ndarray of shape (n, n_steps // save_every + 1, n_state), or (n, n_state)
        Trajectories that blow up hold non-finite values from then on, with a
        :class:`RolloutWarning` saying how many and from which step.
    """
    n_saved = 1 if final_only else n_steps // save_every + 1
    paths = np.empty((len(u0), n_saved, u0.shape[1]))
    first_bad = np.full(len(u0), -1)
    on_cpu = device.type == "cpu"
    # Read at each call: the thread count may differ from that at fit (a worker process).
    block_rows = cpu_block_rows(model.traced_network) if on_cpu else None
    fuse = fused_steps(n_steps) if n_steps else 1
    with torch.no_grad():
        for start in range(0, len(u0), batch_size):
            stop = min(start + batch_size, len(u0))
            u = torch.as_tensor(u0[start:stop], device=device)
            host = torch.from_numpy(paths[start:stop])
            # On the CPU the batch goes into the output 8 states at a time; on a GPU it is
            # gathered there and copied back once.
            out = host if on_cpu else torch.empty(host.shape, dtype=u.dtype, device=u.device)
            block = 8 if on_cpu and not final_only else 1

            def recorder(first, last, out=out, block=block):
                return StateRecorder(out[first:last], save_every, final_only, block)

            rows = min(len(u), block_rows or len(u))
            column_steps = None if conditions is not None else model.compiled_column_steps_for(fuse, rows)
            if column_steps is None:
                broken = _roll_rows(model, u, n_steps, recorder, block_rows, conditions, slice(start, stop))
            else:
                broken = _roll_columns(column_steps, fuse, rows, u, n_steps, recorder)
            if out is not host:
                host.copy_(out)
            first_bad[start:stop] = broken.cpu().numpy()
    warn_on_blow_up(first_bad)
    return paths[:, 0] if final_only else paths


def _roll_rows(model, u, n_steps, recorder, block_rows, conditions, rows):
    """Steps of a batch of states ``u`` (rows, n_state), one call per step; returns each
    row's first non-finite step (-1: none)."""
    rollout_step = model.compiled_rollout_step or model.rollout_step
    broken = torch.full((len(u),), -1, device=u.device)
    saved = recorder(0, len(u))
    saved.start(u)
    for n in range(1, n_steps + 1):
        step_conditions = None if conditions is None else conditions.step(n - 1, rows)
        u, finite = rollout_step(u, block_rows, step_conditions)
        broken = torch.where((broken < 0) & ~finite, n, broken)
        saved.add(n, u)
    saved.finish(u)
    return broken


def _roll_columns(column_steps, fuse, rows, u, n_steps, recorder):
    """The same with ``column_steps`` (see :meth:`HybridStep.compiled_column_steps_for`):
    ``fuse`` steps of ``rows`` transposed states per call, the last block padded.

    The calls are short (a fraction of a millisecond), so each does no more than keep its
    count of finite steps; the first non-finite step is found once, after the block."""
    broken = torch.full((len(u),), -1, device=u.device)
    n_calls = -(-n_steps // fuse)
    for b0 in range(0, len(u), rows):
        block = u[b0 : b0 + rows]
        size = len(block)
        if size < rows:
            block = torch.cat([block, block[-1:].expand(rows - size, -1)])
        v = block.t().contiguous()
        saved = recorder(b0, b0 + size)
        saved.start(u[b0 : b0 + size])
        finite_steps = torch.empty((n_calls, rows), dtype=torch.int64, device=u.device)
        for call, n0 in enumerate(range(0, n_steps, fuse)):
            states, finite_steps[call] = column_steps(v)
            v = states[-1]
            saved.add_steps(n0, states[:, :, :size].transpose(1, 2))
        broken[b0 : b0 + size] = first_non_finite_step(finite_steps[:, :size], fuse)
        saved.finish(v[:, :size].t())
    return broken


def first_non_finite_step(finite_steps, fuse):
    """Each row's first non-finite step (-1: none), from ``finite_steps`` (n_calls, n): the
    count of finite states in each call of ``fuse`` steps, in a row's order (a row that
    became non-finite stays so).

    Examples
    --------
    >>> import torch
    >>> from sklearn_attns.rollout import first_non_finite_step
    >>> first_non_finite_step(torch.tensor([[4, 4, 4], [4, 1, 0], [4, 0, 0]]), fuse=4)
    tensor([-1,  6,  5])
    """
    short = finite_steps < fuse
    if not len(short) or not short.any():  # no step taken, or all finite: skip the column argmax
        return torch.full(short.shape[1:], -1, device=short.device)
    first_call = short.int().argmax(0)
    finite_then = finite_steps.gather(0, first_call[None])[0]
    return torch.where(short.any(0), first_call * fuse + 1 + finite_then, -1)


class StateRecorder:
    """Keeps states ``(n, n_state)`` of a rollout in an ``(n, n_saved, n_state)`` output:
    the initial one and every ``save_every``-th (:meth:`start`, :meth:`add`), or only the
    last (``final_only``, :meth:`finish`).

    Staged time-major and written ``block`` at a time, each row's consecutive states land
    together: in host memory, writing every state straight into ``out[:, j]`` touches one
    page per row per state, which costs several times the copy itself. ``block=1`` writes
    straight through.
    """

    def __init__(self, out, save_every=1, final_only=False, block=1):
        self.out, self.save_every, self.final_only = out, save_every, final_only
        self.saved, self.count = 0, 0
        block = min(block, out.shape[1])
        self.stage = out.new_empty((block, out.shape[0], out.shape[2])) if block > 1 else None

    def start(self, u):
        if not self.final_only:
            self._append(u)

    def add(self, n, u):
        """``u`` is the state after step ``n``."""
        if not self.final_only and n % self.save_every == 0:
            self._append(u)

    def add_steps(self, n0, states):
        """``states[j]`` (n, n_state) is the state after step ``n0 + 1 + j``; the kept ones
        are written in one copy."""
        if self.final_only:
            return
        kept = states[(-n0 - 1) % self.save_every :: self.save_every]
        if len(kept):
            self._flush()
            self.out[:, self.saved : self.saved + len(kept)] = kept.transpose(0, 1)
            self.saved += len(kept)

    def finish(self, u):
        """``u`` is the last state."""
        if self.final_only:
            self._append(u)
        self._flush()

    def _flush(self):
        if self.count:
            self.out[:, self.saved : self.saved + self.count] = self.stage[: self.count].transpose(0, 1)
            self.saved, self.count = self.saved + self.count, 0

    def _append(self, u):
        if self.stage is None:
            self.out[:, self.saved] = u
            self.saved += 1
            return
        self.stage[self.count] = u
        self.count += 1
        if self.count == len(self.stage):
            self._flush()


def warn_on_blow_up(first_bad):
    """Warn about rollouts that became non-finite; ``first_bad`` is -1 or the first bad step."""
    bad = first_bad >= 0
    if bad.any():
        warnings.warn(f"{int(bad.sum())} of {len(first_bad)} rollouts became non-finite, the first at step "
                      f"{int(first_bad[bad].min())}.", RolloutWarning, stacklevel=4)
