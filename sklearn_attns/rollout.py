"""Rolling a fitted step out from initial conditions: state recording and blow-up tracking.

Dtype and device policy: states are float64 on the model's device; the returned paths are
a float64 NumPy array on the host, written as the rollout goes, so peak memory stays close
to the size of what is returned.
"""

import warnings

import numpy as np
import torch

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
    rollout_step = model.compiled_rollout_step or model.rollout_step
    on_cpu = device.type == "cpu"
    # Read at each call: the thread count may differ from that at fit (a worker process).
    block_rows = cpu_block_rows(model.network) if on_cpu else None
    with torch.no_grad():
        for start in range(0, len(u0), batch_size):
            stop = min(start + batch_size, len(u0))
            u = torch.as_tensor(u0[start:stop], device=device)
            host = torch.from_numpy(paths[start:stop])
            # On the CPU the batch goes into the output 8 states at a time; on a GPU it is
            # gathered there and copied back once.
            out = host if on_cpu else torch.empty(host.shape, dtype=u.dtype, device=u.device)
            saved = StateRecorder(out, block=8 if on_cpu and not final_only else 1)
            broken = torch.full((len(u),), -1, device=u.device)
            if not final_only:
                saved.append(u)
            rows = slice(start, stop)
            for n in range(1, n_steps + 1):
                step_conditions = None if conditions is None else conditions.step(n - 1, rows)
                u, finite = rollout_step(u, block_rows, step_conditions)
                broken = torch.where((broken < 0) & ~finite, n, broken)
                if not final_only and n % save_every == 0:
                    saved.append(u)
            if final_only:
                saved.append(u)
            saved.flush()
            if out is not host:
                host.copy_(out)
            first_bad[start:stop] = broken.cpu().numpy()
    warn_on_blow_up(first_bad)
    return paths[:, 0] if final_only else paths


class StateRecorder:
    """Appends states ``(n, n_state)`` to ``out[:, 0], out[:, 1], ...`` of an
    ``(n, n_saved, n_state)`` output, ``block`` at a time.

    Staged time-major and written as a block, each row's consecutive states land
    together: in host memory, writing every state straight into ``out[:, j]`` touches one
    page per row per state, which costs several times the copy itself. ``block=1`` writes
    straight through.
    """

    def __init__(self, out, block):
        self.out, self.saved, self.count = out, 0, 0
        block = min(block, out.shape[1])
        self.stage = out.new_empty((block, out.shape[0], out.shape[2])) if block > 1 else None

    def append(self, u):
        if self.stage is None:
            self.out[:, self.saved] = u
            self.saved += 1
            return
        self.stage[self.count] = u
        self.count += 1
        if self.count == len(self.stage):
            self.flush()

    def flush(self):
        if self.count:
            self.out[:, self.saved : self.saved + self.count] = self.stage[: self.count].transpose(0, 1)
            self.saved, self.count = self.saved + self.count, 0


def warn_on_blow_up(first_bad):
    """Warn about rollouts that became non-finite; ``first_bad`` is -1 or the first bad step."""
    bad = first_bad >= 0
    if bad.any():
        warnings.warn(f"{int(bad.sum())} of {len(first_bad)} rollouts became non-finite, the first at step "
                      f"{int(first_bad[bad].min())}.", RolloutWarning, stacklevel=4)
