"""Helpers shared by the test modules."""

import re
import signal
import time
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
import torch

from sklearn_attns.integrators import INTEGRATORS
from sklearn_attns.systems import ODESystem


def param_id(value):
    """Readable, deterministic test ids (no memory addresses from function reprs)."""
    if type(value) is ODESystem:
        return f"ODESystem({value.rhs.__name__})"
    if isinstance(value, dict):
        return ",".join(f"{key}={param_id(item)}" for key, item in value.items())
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    if callable(value) and hasattr(value, "__name__"):
        return value.__name__
    return repr(value)


@contextmanager
def no_hang(seconds=30):
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``;
    nested inside another, the earlier deadline holds."""

    def alarm(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    outer = signal.alarm(0)  # seconds left to an enclosing no_hang, 0 if none
    start = time.monotonic()
    signal.alarm(min(seconds, outer) if outer else seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.alarm(max(1, outer - int(time.monotonic() - start)))


@contextmanager
def raises_named(*names, seconds=30):
    """Expect a ValueError or TypeError whose message names one of ``names`` (as a word)."""
    with no_hang(seconds), pytest.raises((ValueError, TypeError)) as info:
        yield info
    message = str(info.value)
    assert any(re.search(rf"(?<!\w){re.escape(name)}(?!\w)", message) for name in names), (
        f"the message does not name {names}: {message!r}")


def damping(u):
    """A dimension-agnostic linear ODE that accepts NumPy arrays and torch tensors."""
    return -0.5 * u


def plain_rollout(rhs, integrator, u0, dt, n_steps):
    """The classical integrator alone, step by step in float64: ``(n, n_steps + 1, n_state)``.

    What a hybrid solver must reproduce when its correction is zero (an untrained network,
    whose last layer starts at zero, or ``correction="none"``)."""
    u = np.asarray(u0, dtype=np.float64)
    path = [u]
    for _ in range(n_steps):
        u = INTEGRATORS[integrator].step(rhs, u, dt)
        path.append(u)
    return np.stack(path, 1)


@contextmanager
def interrupt_training_after(batches):
    """Press Ctrl-C (raise KeyboardInterrupt) in training once ``batches`` batches have run."""
    from sklearn_attns import training

    original, calls = training.TeacherForcedData.batch_loss, []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > batches:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    with mock.patch.object(training.TeacherForcedData, "batch_loss", interrupted):
        yield


def subnormal_reads_as_zero():
    """Whether this thread's CPU treats subnormal floats as zero: an IEEE subnormal (1e-40,
    below float32's smallest normal 1.2e-38) doubles to 2e-40 unless it is flushed."""
    return bool(torch.tensor(1e-40, dtype=torch.float32) * 2 == 0)


def identity_compile(function, **kwargs):
    """A stand-in for ``torch.compile`` that returns the function unchanged: tests of the
    decisions around compiling, without its tens of seconds."""
    return function
