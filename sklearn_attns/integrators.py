"""Explicit Runge-Kutta integrators, each a Butcher tableau and an order.

Every integrator shares one stepping mechanism, :meth:`Integrator.increment`, which
returns the paper's integration term ``S`` (the slope such that the plain step is
``u + dt * S``). It uses only ``+``, ``*`` and the system's right-hand side, so the same
code runs on batched NumPy arrays and on torch tensors of any dtype and device; the
result has the dtype and device of ``u``. For a linear system ``du/dt = A u`` the same
tableau gives the slope as one matrix, :meth:`Integrator.slope_matrix`.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Integrator", "INTEGRATORS", "ALIASES", "get_integrator"]


@dataclass(frozen=True)
class Integrator:
    """An explicit Runge-Kutta method given by its Butcher tableau.

    Parameters
    ----------
    name : str
        Name the method is registered under.
    a : tuple of tuple of float
        Strictly lower-triangular stage coefficients; ``a[i]`` holds the weights of
        stages ``0 .. i-1`` used to build stage ``i`` (``a[0]`` is empty).
    b : tuple of float
        Weights of the stages in the increment.
    order : int
        Global order of convergence.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.integrators import get_integrator
    >>> rk4 = get_integrator("rk4")
    >>> rk4.order
    4
    >>> u = np.array([[1.0]])
    >>> float(rk4.step(lambda v: -v, u, 0.1)[0, 0])  # exp(-0.1) = 0.904837418...
    0.9048375
    """

    name: str
    a: tuple
    b: tuple
    order: int

    @property
    def nodes(self):
        """The stages' times within a step, as fractions of it: ``c_i = sum_j a_ij``."""
        return tuple(float(sum(row)) for row in self.a)

    def increment(self, rhs, u, dt, at_nodes=False):
        """Return the integration term ``S(f, u, dt)`` (Table 5 of the paper, over dt).

        With ``at_nodes=True`` the right-hand side is called as ``rhs(c_i, state)``, ``c_i``
        the stage's time within the step as a fraction of ``dt`` (see :attr:`nodes`), for
        systems that depend on time or on an input signal.
        """
        stages = []
        for row, node in zip(self.a, self.nodes):
            state = u
            for coefficient, k in zip(row, stages):
                if coefficient:
                    state = state + (dt * coefficient) * k
            stages.append(rhs(node, state) if at_nodes else rhs(state))
        slope = 0
        for weight, k in zip(self.b, stages):
            if weight:
                slope = slope + weight * k
        return slope

    def step(self, rhs, u, dt, at_nodes=False):
        """Advance ``u`` by one step of size ``dt`` (``at_nodes`` as in :meth:`increment`)."""
        return u + dt * self.increment(rhs, u, dt, at_nodes)

    def slope_matrix(self, operator, dt):
        """The matrix ``M`` with ``increment(lambda u: u @ A.T, u, dt) == u @ M.T``.

        For a linear right-hand side ``du/dt = A u`` (``A = operator``) the slope of any
        explicit method is this matrix polynomial in ``dt A``, so linear systems can
        replace the stage loop by one matrix product. Computed in float64.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_attns.integrators import get_integrator
        >>> a = np.array([[0.0, 1.0], [-1.0, 0.0]])
        >>> u = np.array([[1.0, 0.5]])
        >>> rk4 = get_integrator("rk4")
        >>> bool(np.allclose(u @ rk4.slope_matrix(a, 0.1).T, rk4.increment(lambda v: v @ a.T, u, 0.1)))
        True
        """
        a = np.asarray(operator, dtype=np.float64)
        eye = np.eye(a.shape[0])
        # Stage matrices K_i with k_i = u @ K_i.T, exactly as increment() builds the stages.
        stage_maps = []
        for row in self.a:
            state = eye.copy()
            for coefficient, k in zip(row, stage_maps):
                state = state + (dt * coefficient) * k
            stage_maps.append(a @ state)
        slope = np.zeros_like(eye)
        for weight, k in zip(self.b, stage_maps):
            slope = slope + weight * k
        return slope

    def stability_polynomial(self, z):
        """Evaluate ``R(Z)`` with ``step(lambda u: u @ A.T, u, dt) == u @ R(dt A).T``.

        ``z`` is a square matrix (``dt * A``): ``R(Z) = I + M(Z, 1)`` with ``M`` the
        :meth:`slope_matrix`. Linear systems use it to skip the stage loop (see
        :func:`sklearn_attns.datasets.make_trajectories`).
        """
        z = np.asarray(z, dtype=np.float64)
        return np.eye(z.shape[0]) + self.slope_matrix(z, 1.0)


def _tableau(name, a, b, order):
    return Integrator(name, tuple(tuple(row) for row in a), tuple(b), order)


INTEGRATORS = {
    "euler": _tableau("euler", [[]], [1.0], 1),
    "heun": _tableau("heun", [[], [1.0]], [0.5, 0.5], 2),
    # The paper's third-order method (Table 5): Kutta's RK3.
    "rk3": _tableau("rk3", [[], [0.5], [-1.0, 2.0]], [1 / 6, 2 / 3, 1 / 6], 3),
    # Classical RK4 (not the 3/8 rule that torchdiffeq calls "rk4").
    "rk4": _tableau("rk4", [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6], 4),
}
ALIASES = {"improved_euler": "heun"}


def get_integrator(integrator, param="integrator"):
    """Return the :class:`Integrator` for a name (or pass an ``Integrator`` through).

    Valid names: ``"euler"``, ``"heun"`` (alias ``"improved_euler"``), ``"rk3"``, ``"rk4"``.
    ``param`` is the parameter name used in error messages.

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    if isinstance(integrator, Integrator):
        return integrator
    if not isinstance(integrator, str):
        raise TypeError(
            f"{param} must be a str naming a method or an Integrator, got {type(integrator).__name__}."
        )
    key = ALIASES.get(integrator.lower(), integrator.lower())
    if key not in INTEGRATORS:
        valid = sorted([*INTEGRATORS, *ALIASES])
        raise ValueError(f"{param} must be one of {valid}, got {integrator!r}.")
    return INTEGRATORS[key]
