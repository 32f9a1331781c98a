"""Training of a correction network (paper Alg. 1) in small single-purpose pieces.

Dtype policy: states, base increments and residuals are computed in float64 on the
training device, once for the whole training set; the network trains in its own dtype
(float32 by default) on standardised inputs and unit-scaled targets. On the CPU,
training treats subnormal numbers as zero (see :func:`subnormals_flushed`).
"""

import time
import warnings
from contextlib import contextmanager

import numpy as np
import torch

from .conditions import Conditions
from .corrections import rms

__all__ = ["step_pairs", "TeacherForcedData", "RolloutData", "EarlyStopping", "subnormals_flushed",
           "train_epochs", "fit_least_squares"]


def _chunks(n, size):
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def step_pairs(data, stride, data_dt, conditioned=False):
    """All single coarse steps ``(u_t, u_{t+stride})`` of a
    :class:`~sklearn_attns.trajectories.TrajectorySet`, with their
    :class:`~sklearn_attns.conditions.Conditions` when ``conditioned`` (NumPy, float64)."""
    u, u_next, t, params, inputs = [], [], [], [], []
    for i, x in enumerate(data.X):
        n_pairs = len(x) - stride
        if n_pairs < 1:
            continue
        u.append(x[:-stride])
        u_next.append(x[stride:])
        if not conditioned:
            continue
        t.append(data.t0[i] + data_dt * np.arange(n_pairs))
        if data.params is not None:
            params.append(np.repeat(data.params[i][None], n_pairs, 0))
        if data.inputs is not None:
            windows = np.lib.stride_tricks.sliding_window_view(data.inputs[i], stride + 1, axis=0)
            inputs.append(windows.transpose(0, 2, 1))  # (n_pairs, stride + 1, n_inputs)
    conditions = None
    if conditioned:
        conditions = Conditions(np.concatenate(t), np.concatenate(params) if params else None,
                                np.concatenate(inputs) if inputs else None)
    return np.concatenate(u), np.concatenate(u_next), conditions


class TeacherForcedData:
    """All single coarse steps ``(u_t, u_{t+stride})`` of the training trajectories.

    The base slopes ``S(u_t)`` are computed once here, not per epoch.

    Parameters
    ----------
    data : TrajectorySet
        The training trajectories (of any lengths) and their conditioning.
    stride : int
        Data steps per coarse step.
    step : HybridStep
        The base step (its ``dt`` and, for a conditioned system, its ``system``).
    device : torch.device
    batch_size : int
        Rows per slope evaluation.
    """

    def __init__(self, data, stride, step, device, batch_size):
        u, u_next, conditions = step_pairs(data, stride, step.dt / stride,
                                           conditioned=step.system is not None)
        u = torch.as_tensor(u, device=device, dtype=torch.float64)
        u_next = torch.as_tensor(u_next, device=device, dtype=torch.float64)
        self.conditions = None if conditions is None else conditions.to(device)
        slope = torch.empty_like(u)
        with torch.no_grad():
            for part in _chunks(len(u), max(batch_size, 1)):
                slope[part] = step.slope(u[part], self._conditions(part))
        self.u, self.u_next, self.slope, self.device = u, u_next, slope, u.device
        self.residual = u_next - (u + step.dt * slope)
        # The paper's lambda, per component: residuals divided by their RMS have unit
        # size, so the loss works for states of any magnitude.
        self.loss_scale = rms(self.residual)

    def __len__(self):
        return len(self.u)

    def _conditions(self, index):
        return None if self.conditions is None else self.conditions.rows(index)

    def fit_scaling(self, step):
        """Return the network's ``input_mean, input_scale, output_scale`` (float64)."""
        features = step.network_input(self.u, self.slope, self.conditions)
        mean, scale = features.mean(0), features.std(0)
        scale = torch.where(scale > 1e-12 * (mean.abs() + 1), scale, torch.ones_like(scale))
        output_scale = step.correction.output_scale(self.residual, self.slope, step.dt)
        return mean, scale, output_scale

    def batch_loss(self, step, index, loss_scale, input_noise, generator):
        u, slope, residual = self.u[index], self.slope[index], self.residual[index]
        conditions = self._conditions(index)
        if input_noise:
            # Robustness experiment (paper Sec. 5(4)): perturb the input state.
            noise = torch.randn(u.shape, generator=generator, device="cpu", dtype=u.dtype).to(u.device)
            u = u + input_noise * noise
            slope = step.slope(u, conditions)
            residual = self.u_next[index] - (u + step.dt * slope)
        delta = step.correction_delta(u, slope, conditions)
        return (((delta - residual) / loss_scale) ** 2).mean()


class RolloutData:
    """Segments of ``rollout_steps + 1`` coarse states for unrolled multi-step training
    (autonomous systems; trajectories of any lengths)."""

    def __init__(self, data, stride, rollout_steps, device):
        span = stride * rollout_steps
        segments = []
        for x in data.X:
            starts = np.arange(len(x) - span)
            if len(starts):
                segments.append(np.stack([x[s : s + span + 1 : stride] for s in starts]))
        if not segments:
            raise ValueError(
                f"rollout_steps={rollout_steps} needs trajectories longer than {span} data steps, "
                f"got at most {max(len(x) for x in data.X)} times."
            )
        self.segments = torch.as_tensor(np.concatenate(segments), device=device, dtype=torch.float64)
        self.device = self.segments.device

    def __len__(self):
        return len(self.segments)

    def batch_loss(self, step, index, loss_scale, input_noise, generator):
        segment = self.segments[index]
        u, loss = segment[:, 0], 0.0
        if input_noise:
            noise = torch.randn(u.shape, generator=generator, device="cpu", dtype=u.dtype).to(u.device)
            u = u + input_noise * noise
        for k in range(1, segment.shape[1]):
            u = step(u)
            loss = loss + (((u - segment[:, k]) / loss_scale) ** 2).mean()
        return loss / (segment.shape[1] - 1)


class EarlyStopping:
    """Tracks the best score and its weights; says when to stop.

    scikit-learn's rule (``MLPRegressor``): an epoch whose score does not beat the best by
    more than ``tol`` counts as no improvement, and training stops when more than
    ``patience`` epochs in a row counted so. Scores are "higher is better": the negative
    training loss, or a validation score.
    """

    def __init__(self, tol, patience):
        self.tol, self.patience = tol, patience
        self.best_score, self.best_state, self.epochs_without_improvement = -np.inf, None, 0

    def start(self, module):
        """Keep the starting weights as the fallback until an epoch scores."""
        self.best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def update(self, score, module):
        """Record an epoch's score; return whether to stop."""
        if score > self.best_score + self.tol:
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        if score > self.best_score:
            self.best_score = score
            self.best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return self.epochs_without_improvement > self.patience

    def restore(self, module):
        """Put the best weights seen back into ``module``."""
        if self.best_state is not None:
            module.load_state_dict(self.best_state)


def _subnormals_are_flushed():
    # torch has no getter for the mode: with it on, a subnormal input reads as zero.
    return bool(torch.tensor(1e-40, dtype=torch.float32) * 2 == 0)


@contextmanager
def subnormals_flushed(device):
    """Treat subnormal floats as zero in CPU arithmetic of the calling thread, then restore.

    Late in training, products in the backward pass can underflow below
    float32's smallest normal number (1.2e-38), and x86 CPUs compute with such subnormal
    numbers in microcode, many times slower: Table 2's Transformer module took 1.9x as
    long over 30 epochs without the flush (``benchmarks/bench_subnormals.py``). Values
    that small carry nothing a network update can use. The mode lives in a per-thread
    CPU register (``torch.set_flush_denormal``), so torch's other intra-op threads keep
    their own: the gain is whole with one torch thread, as in parallel workers, and
    partial with several. Other devices (GPUs compute with subnormals at full speed) are
    left as they are.

    Examples
    --------
    >>> import torch
    >>> from sklearn_attns.training import subnormals_flushed
    >>> tiny = torch.tensor(1e-40)  # below float32's smallest normal number
    >>> with subnormals_flushed("cpu"):
    ...     inside = float(tiny * 2)
    >>> inside, float(tiny * 2) > 0  # flushed inside (x86 CPUs), IEEE again after
    (0.0, True)
    """
    if torch.device(device).type != "cpu":
        yield
        return
    previous = _subnormals_are_flushed()
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(previous)


def train_epochs(step, data, *, loss_scale, max_epochs, batch_size, learning_rate, input_noise, generator,
                 stopper, validation_score=None, verbose=0, log=None):
    """Run Adam with a per-iteration cosine schedule; return ``(stopped, diverged)``.

    ``stopped``: ``stopper`` ended training before ``max_epochs`` (or the loss became
    non-finite); ``diverged``: the loss became non-finite, and the caller should restore
    ``stopper``'s best weights. ``log`` receives ``(epoch, loss, validation_score)`` after
    each epoch. ``KeyboardInterrupt`` propagates; ``stopper`` then holds the best weights
    so far. On the CPU it runs with subnormal numbers flushed to zero
    (:func:`subnormals_flushed`).
    """
    with subnormals_flushed(data.device):
        network = step.network
        optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
        n_batches = -(-len(data) // batch_size)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                               T_max=max(1, max_epochs * n_batches))
        stopper.start(network)
        for epoch in range(1, max_epochs + 1):
            start, total = time.perf_counter(), 0.0
            order = torch.randperm(len(data), generator=generator).to(data.device)
            for part in _chunks(len(data), batch_size):
                index = order[part]
                loss = data.batch_loss(step, index, loss_scale, input_noise, generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(index)
            loss = total / len(data)
            score = validation_score() if validation_score is not None else -loss
            if log is not None:
                log(epoch, loss, score if validation_score is not None else None)
            if verbose:
                extra = f", validation score {score:.4g}" if validation_score is not None else ""
                print(f"epoch {epoch}/{max_epochs}: loss {loss:.4g}{extra}, "
                      f"lr {scheduler.get_last_lr()[0]:.3g}, {time.perf_counter() - start:.1f} s", flush=True)
            if not np.isfinite(loss):
                warnings.warn(f"training loss became {loss} at epoch {epoch}; keeping the best weights.",
                              RuntimeWarning, stacklevel=3)
                return True, True
            if stopper.update(score, network):
                return True, False
        return False, False


def fit_least_squares(step, data, *, loss_scale, block_rows=4096):
    """Fit ``step``'s :class:`~sklearn_attns.corrections.Polynomial` to the teacher-forced
    pairs of ``data`` (a :class:`TeacherForcedData`) by linear least squares; return the
    training loss it reaches: the minimum of ``TeacherForcedData.batch_loss`` over the
    coefficients, up to their rounding to the network's dtype.

    For an additive correction (``delta`` is the network's output times ``output_scale``)
    each output's part of the loss is, up to a constant factor, the squared error of the
    monomials times its coefficients against its ``residual / output_scale``: one linear
    least-squares problem with a column per output, solved in float64 whatever the
    network's dtype, a block of ``block_rows`` rows at a time:
    each block's monomials and targets are stacked under the triangle so far and reduced by
    a QR factorisation (a tall-skinny QR), so memory holds ``(n_terms + n_state)^2`` values
    beside one block, and the normal equations' squared condition number is never formed.
    The triangle is solved by an SVD-based least squares (``gelsd``), which gives the
    smallest coefficients where the monomials are linearly dependent (a constant input).
    """
    network = step.network
    if not step.correction.additive:
        name = getattr(step.correction, "base", step.correction).name  # without with_state's "+u"
        raise ValueError(f"module='polynomial' is fitted by least squares, which needs a correction that "
                         f"adds its network's output to the step; correction={name!r} multiplies it (use "
                         "'attns', or module='mlp').")
    triangle = None
    with torch.no_grad():
        for part in _chunks(len(data), max(block_rows, 2 * network.n_terms)):
            z = step.standardised_input(data.u[part], data.slope[part], data._conditions(part))
            block = torch.cat([network.monomials(z), data.residual[part] / step.output_scale], 1)
            stacked = block if triangle is None else torch.cat([triangle, block])
            triangle = torch.linalg.qr(stacked, mode="r").R
        if not torch.isfinite(triangle).all():
            raise ValueError(f"the monomials of degree={network.degree} of the standardised training inputs "
                             "overflow (values far out in the tails of the training steps); lower degree.")
        triangle = triangle.cpu()
        n_terms = network.n_terms
        solution = torch.linalg.lstsq(triangle[:, :n_terms], triangle[:, n_terms:], driver="gelsd").solution
        network.coefficients.copy_(solution.to(network.coefficients))
        total = 0.0
        for part in _chunks(len(data), block_rows):
            index = torch.arange(part.start, part.stop, device=data.device)
            total += float(data.batch_loss(step, index, loss_scale, 0.0, None)) * len(index)
    return total / len(data)
