"""Users' own systems for the benchmarks, in an importable module.

Worker processes (``n_jobs=-1``) import it by name. A function defined in a script's
``__main__`` would reach them by value instead, and ``torch.compile`` cannot guard on
such a function's globals there (the workers then step it eagerly, with a warning).
"""

from sklearn_attns._array import namespace


def lorenz96(u):
    """Lorenz's 40-variable model, ``dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + 8``,
    with operations that NumPy and torch share (``roll(x, shift, axis)``)."""
    xp = namespace(u)
    return (xp.roll(u, -1, 1) - xp.roll(u, 2, 1)) * xp.roll(u, 1, 1) - u + 8.0


def lorenz96_start(n, rng):
    """Initial states near the model's fixed point x_i = 8."""
    return 8.0 + rng.normal(scale=0.5, size=(n, 40))


def forced_duffing(t, u, p):
    """The forced Duffing oscillator ``x'' = -delta x' - x - x^3 + gamma cos(1.2 t)``, with
    ``p = (delta, gamma)`` per trajectory."""
    xp = namespace(u)
    x, v = u[:, 0], u[:, 1]
    return xp.stack([v, -p[:, 0] * v - x - x**3 + p[:, 1] * xp.cos(1.2 * t)], 1)
