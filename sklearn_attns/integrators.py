"""Explicit Runge-Kutta integrators, each a Butcher tableau and an order.

Every integrator shares one stepping mechanism, :meth:`Integrator.increment`, which
returns the paper's integration term ``S`` (the slope such that the plain step is
``u + dt * S``). It uses only ``+``, ``*`` and the system's right-hand side, so the same
code runs on batched NumPy arrays and on torch tensors of any dtype and device; the
result has the dtype and device of ``u``. For a linear system ``du/dt = A u`` the same
tableau gives the slope as one matrix, :meth:`Integrator.slope_matrix`.

An integrator may take ``substeps`` steps of ``dt / substeps`` for each step of ``dt``
(:meth:`Integrator.with_substeps`): the same order, its slope the mean of theirs. A hybrid
solver over it calls its network once per ``substeps`` base steps.

A tableau checks itself when it is made (see :class:`Integrator`): strictly lower
triangular, one weight per stage, nodes equal to the row sums, and the order conditions
of orders 1 and 2. Higher orders are established empirically (``tests/test_integrators.py``
measures each method's convergence order against closed-form solutions).
"""

import dataclasses
import math
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
    c : tuple of float, default=None
        Nodes, the stages' times within a step as fractions of it (:attr:`nodes`, used by
        time-dependent systems). Given, they are checked against the row sums of ``a``
        (and kept: a tableau's exact nodes); None sets them to those sums.
    substeps : int, default=1
        Steps of ``dt / substeps`` that make one step of ``dt``
        (:meth:`with_substeps`).

    Raises
    ------
    ValueError
        If the tableau is not strictly lower triangular, has a weight count other than
        its stage count, non-finite coefficients, nodes that are not the row sums, or
        fails the order conditions ``sum(b) == 1`` and (order >= 2) ``sum(b c) == 1/2``,
        or if ``substeps`` is not a positive int.

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
    >>> round(float(rk4.with_substeps(2).step(lambda v: -v, u, 0.1)[0, 0]), 9)  # two steps of 0.05
    0.904837423
    """

    name: str
    a: tuple
    b: tuple
    order: int
    c: tuple = None
    substeps: int = 1

    def __post_init__(self):
        """Check the tableau (see Raises); a broken one would silently lose accuracy."""
        where = f"Integrator {self.name!r}"
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 1:
            raise ValueError(f"{where}: order must be a positive int, got {self.order!r}.")
        if isinstance(self.substeps, bool) or not isinstance(self.substeps, int) or self.substeps < 1:
            raise ValueError(f"{where}: substeps must be a positive int, got {self.substeps!r}.")
        n_stages = len(self.a)
        if n_stages == 0:
            raise ValueError(f"{where}: a must hold at least one stage row, got none.")
        for i, row in enumerate(self.a):
            if len(row) > i:
                raise ValueError(f"{where}: a must be strictly lower triangular (row {i} may weight stages "
                                 f"0..{i - 1} only), got {len(row)} entries in row {i}.")
        if len(self.b) != n_stages:
            raise ValueError(f"{where}: b must hold one weight per stage ({n_stages}), got {len(self.b)}.")
        values = [v for row in self.a for v in row] + list(self.b) + list(self.c or ())
        if not all(math.isfinite(float(v)) for v in values):
            raise ValueError(f"{where}: the coefficients must be finite.")
        row_sums = tuple(math.fsum(row) for row in self.a)
        if self.c is None:
            object.__setattr__(self, "c", tuple(float(node) for node in row_sums))
        else:
            if len(self.c) != n_stages:
                raise ValueError(f"{where}: c must hold one node per stage ({n_stages}), got {len(self.c)}.")
            for i, (node, total, row) in enumerate(zip(self.c, row_sums, self.a)):
                if not _close(node, total, row):
                    raise ValueError(f"{where}: c[{i}]={node!r} differs from the sum of row {i} of a "
                                     f"({total!r}).")
            object.__setattr__(self, "c", tuple(float(node) for node in self.c))
        conditions = [("sum(b) == 1", self.b, 1.0)]
        if self.order >= 2:
            conditions.append(("sum(b * c) == 1/2", [w * node for w, node in zip(self.b, row_sums)], 0.5))
        for label, terms, expected in conditions:
            if not _close(math.fsum(terms), expected, terms):
                raise ValueError(f"{where}: order {self.order} needs {label}, got {math.fsum(terms)!r}.")

    @property
    def nodes(self):
        """The stages' times within a step, as fractions of it: ``c_i = sum_j a_ij`` (the field ``c``)."""
        return self.c

    def with_substeps(self, substeps):
        """This method taking ``substeps`` steps of ``dt / substeps`` per step of ``dt``.

        The order is the same and the error ``substeps**order`` times smaller, for as many
        times the right-hand side's calls. Over a many-stage method (DOP853) a hybrid
        solver spreads its network's cost over the substeps (see the user guide's "Does
        it pay?").
        """
        return dataclasses.replace(self, substeps=substeps)

    def increment(self, rhs, u, dt, at_nodes=False):
        """Return the integration term ``S(f, u, dt)`` (Table 5 of the paper, over dt).

        With ``at_nodes=True`` the right-hand side is called as ``rhs(c_i, state)``, ``c_i``
        the stage's time within the step as a fraction of ``dt`` (see :attr:`nodes`), for
        systems that depend on time or on an input signal. With substeps, the mean of the
        substeps' slopes, each taken from where the previous one ended.
        """
        if self.substeps == 1:
            return self._stage_slope(rhs, u, dt, at_nodes, self.c)
        h = dt / self.substeps
        slope = 0
        for j in range(self.substeps):
            nodes = tuple((j + node) / self.substeps for node in self.c)
            s = self._stage_slope(rhs, u, h, at_nodes, nodes)
            slope = slope + s
            if j + 1 < self.substeps:
                u = u + h * s
        return slope * (1.0 / self.substeps)

    def _stage_slope(self, rhs, u, dt, at_nodes, nodes):
        """The tableau's slope over one step of ``dt``, stage times ``nodes`` (fractions)."""
        stages = []
        for row, node in zip(self.a, nodes):
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
        h = dt / self.substeps
        # Stage matrices K_i with k_i = u @ K_i.T, exactly as increment() builds the stages.
        stage_maps = []
        for row in self.a:
            state = eye.copy()
            for coefficient, k in zip(row, stage_maps):
                state = state + (h * coefficient) * k
            stage_maps.append(a @ state)
        substep_slope = np.zeros_like(eye)
        for weight, k in zip(self.b, stage_maps):
            substep_slope = substep_slope + weight * k
        # Substep j starts from (I + h M_1)^j u: the mean of M_1 (I + h M_1)^j.
        slope, start = np.zeros_like(eye), eye
        for _ in range(self.substeps):
            slope = slope + substep_slope @ start
            start = start + h * (substep_slope @ start)
        return slope / self.substeps

    def stability_polynomial(self, z):
        """Evaluate ``R(Z)`` with ``step(lambda u: u @ A.T, u, dt) == u @ R(dt A).T``.

        ``z`` is a square matrix (``dt * A``): ``R(Z) = I + M(Z, 1)`` with ``M`` the
        :meth:`slope_matrix`. Linear systems use it to skip the stage loop (see
        :func:`sklearn_attns.datasets.make_trajectories`).
        """
        z = np.asarray(z, dtype=np.float64)
        return np.eye(z.shape[0]) + self.slope_matrix(z, 1.0)


def _close(value, expected, terms):
    """Equal up to the rounding of a sum of ``terms`` (coefficients such as DOP853's reach 40)."""
    return abs(value - expected) <= 1e-13 * (1.0 + math.fsum(abs(t) for t in terms))


def _tableau(name, a, b, order, c=None):
    return Integrator(name, tuple(tuple(row) for row in a), tuple(b), order, None if c is None else tuple(c))


# Dormand and Prince's 8th-order method (Hairer, Norsett and Wanner, "Solving Ordinary
# Differential Equations I", DOP853; digits as in scipy.integrate._ivp.dop853_coefficients):
# the 12 stages of the 8th-order solution, used here as a fixed-step method (without the
# embedded error estimators and the 13th stage that the adaptive code adds).
_DOP853_A = [
    [],
    [5.26001519587677318785587544488e-2],
    [1.97250569845378994544595329183e-2, 5.91751709536136983633785987549e-2],
    [2.95875854768068491816892993775e-2, 0.0, 8.87627564304205475450678981324e-2],
    [
        2.41365134159266685502369798665e-1, 0.0, -8.84549479328286085344864962717e-1,
        9.24834003261792003115737966543e-1
    ],
    [
        3.7037037037037037037037037037e-2, 0.0, 0.0, 1.70828608729473871279604482173e-1,
        1.25467687566822425016691814123e-1
    ],
    [
        3.7109375e-2, 0.0, 0.0, 1.70252211019544039314978060272e-1, 6.02165389804559606850219397283e-2,
        -1.7578125e-2
    ],
    [
        3.70920001185047927108779319836e-2, 0.0, 0.0, 1.70383925712239993810214054705e-1,
        1.07262030446373284651809199168e-1, -1.53194377486244017527936158236e-2,
        8.27378916381402288758473766002e-3
    ],
    [
        6.24110958716075717114429577812e-1, 0.0, 0.0, -3.36089262944694129406857109825,
        -8.68219346841726006818189891453e-1, 2.75920996994467083049415600797e1,
        2.01540675504778934086186788979e1, -4.34898841810699588477366255144e1
    ],
    [
        4.77662536438264365890433908527e-1, 0.0, 0.0, -2.48811461997166764192642586468,
        -5.90290826836842996371446475743e-1, 2.12300514481811942347288949897e1,
        1.52792336328824235832596922938e1, -3.32882109689848629194453265587e1,
        -2.03312017085086261358222928593e-2
    ],
    [
        -9.3714243008598732571704021658e-1, 0.0, 0.0, 5.18637242884406370830023853209,
        1.09143734899672957818500254654, -8.14978701074692612513997267357,
        -1.85200656599969598641566180701e1, 2.27394870993505042818970056734e1,
        2.49360555267965238987089396762, -3.0467644718982195003823669022
    ],
    [
        2.27331014751653820792359768449, 0.0, 0.0, -1.05344954667372501984066689879e1,
        -2.00087205822486249909675718444, -1.79589318631187989172765950534e1,
        2.79488845294199600508499808837e1, -2.85899827713502369474065508674,
        -8.87285693353062954433549289258, 1.23605671757943030647266201528e1,
        6.43392746015763530355970484046e-1
    ],
]
_DOP853_B = [
    5.42937341165687622380535766363e-2, 0.0, 0.0, 0.0, 0.0, 4.45031289275240888144113950566,
    1.89151789931450038304281599044, -5.8012039600105847814672114227, 3.1116436695781989440891606237e-1,
    -1.52160949662516078556178806805e-1, 2.01365400804030348374776537501e-1,
    4.47106157277725905176885569043e-2,
]
_DOP853_C = [
    0.0, 0.526001519587677318785587544488e-01, 0.789002279381515978178381316732e-01,
    0.118350341907227396726757197510, 0.281649658092772603273242802490, 0.333333333333333333333333333333,
    0.25, 0.307692307692307692307692307692, 0.651282051282051282051282051282, 0.6,
    0.857142857142857142857142857142, 1.0,
]


INTEGRATORS = {
    "euler": _tableau("euler", [[]], [1.0], 1),
    "heun": _tableau("heun", [[], [1.0]], [0.5, 0.5], 2),
    # The paper's third-order method (Table 5): Kutta's RK3.
    "rk3": _tableau("rk3", [[], [0.5], [-1.0, 2.0]], [1 / 6, 2 / 3, 1 / 6], 3),
    # Classical RK4 (not the 3/8 rule that torchdiffeq calls "rk4").
    "rk4": _tableau("rk4", [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6], 4),
    "dop853": _tableau("dop853", _DOP853_A, _DOP853_B, 8, _DOP853_C),
}
ALIASES = {"improved_euler": "heun"}


def get_integrator(integrator, param="integrator", substeps=1):
    """Return the :class:`Integrator` for a name (or pass an ``Integrator`` through).

    Valid names: ``"euler"``, ``"heun"`` (alias ``"improved_euler"``), ``"rk3"``, ``"rk4"``,
    ``"dop853"`` (the 12-stage 8th-order Dormand-Prince method, with a fixed step).
    ``param`` is the parameter name used in error messages. ``substeps`` multiplies the
    integrator's own (:meth:`Integrator.with_substeps`).

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    if isinstance(integrator, Integrator):
        found = integrator
    elif not isinstance(integrator, str):
        raise TypeError(
            f"{param} must be a str naming a method or an Integrator, got {type(integrator).__name__}."
        )
    else:
        key = ALIASES.get(integrator.lower(), integrator.lower())
        if key not in INTEGRATORS:
            valid = sorted([*INTEGRATORS, *ALIASES])
            raise ValueError(f"{param} must be one of {valid}, got {integrator!r}.")
        found = INTEGRATORS[key]
    return found if substeps == 1 else found.with_substeps(found.substeps * substeps)
