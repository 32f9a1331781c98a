"""Grid layouts: how a state vector maps onto fields on a one-dimensional grid.

A method-of-lines PDE, or a lattice, is an ODE whose state holds ``n_fields`` fields
sampled at ``n_points`` grid points. Its state is flattened **field-major**: a batch
``u`` of shape ``(n, n_fields * n_points)`` is ``u.reshape(n, n_fields, n_points)``, so
``u[:, f * n_points + i]`` is field ``f`` at point ``i``. A system declares this with a
:class:`GridLayout` as its ``layout`` (``None`` for an ordinary ODE); local,
weight-shared corrections (``build_network(module="conv")``) read it.

The functions here work on NumPy arrays and torch tensors alike and keep the input's
type, dtype and device.
"""

from dataclasses import dataclass, replace

import numpy as np

from ._array import is_tensor, namespace
from ._validation import check_count, check_positive

__all__ = ["BOUNDARIES", "GridLayout", "expand_fields", "field_scale", "fit_field_scaling", "point_samples",
           "roll"]

BOUNDARIES = ("periodic", "fixed")


@dataclass(frozen=True)
class GridLayout:
    """Fields on a uniform one-dimensional grid, flattened field-major.

    Parameters
    ----------
    n_points : int
        Grid points per field.
    n_fields : int, default=1
        Fields (unknowns) per grid point.
    boundary : {"periodic", "fixed"}, default="periodic"
        ``"periodic"``: point ``n_points - 1`` neighbours point 0. ``"fixed"``: the grid
        ends at both sides, with values held outside (a wall, a Dirichlet condition).
    spacing : float, default=1.0
        Distance between neighbouring points.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.grids import GridLayout
    >>> layout = GridLayout(n_points=3, n_fields=2, spacing=0.5)
    >>> layout.n_state
    6
    >>> u = np.arange(12.0).reshape(2, 6)      # two states: field 0 is u[:, :3], field 1 is u[:, 3:]
    >>> layout.to_grid(u)[1]
    array([[ 6.,  7.,  8.],
           [ 9., 10., 11.]])
    >>> bool((layout.from_grid(layout.to_grid(u)) == u).all())
    True
    """

    n_points: int
    n_fields: int = 1
    boundary: str = "periodic"
    spacing: float = 1.0

    def __post_init__(self):
        # Frozen: normalise through object.__setattr__ so that equal layouts compare equal.
        object.__setattr__(self, "n_points", check_count(self.n_points, "n_points"))
        object.__setattr__(self, "n_fields", check_count(self.n_fields, "n_fields"))
        object.__setattr__(self, "spacing", check_positive(self.spacing, "spacing"))
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {list(BOUNDARIES)}, got {self.boundary!r}.")

    @property
    def n_state(self):
        """The state dimension ``n_fields * n_points``."""
        return self.n_fields * self.n_points

    @property
    def length(self):
        """The domain length: ``n_points * spacing`` (periodic), ``(n_points + 1) * spacing``
        (fixed, counting the distance to both walls)."""
        return (self.n_points + (self.boundary == "fixed")) * self.spacing

    def to_grid(self, u):
        """States ``(..., n_fields * n_points)`` as fields ``(..., n_fields, n_points)`` (a view)."""
        if u.shape[-1] != self.n_state:
            raise ValueError(f"u has {u.shape[-1]} components, but the layout has n_fields * n_points = "
                             f"{self.n_fields} * {self.n_points} = {self.n_state}.")
        return u.reshape(*u.shape[:-1], self.n_fields, self.n_points)

    def from_grid(self, g):
        """Fields ``(..., n_fields, n_points)`` as flat states ``(..., n_fields * n_points)``."""
        if tuple(g.shape[-2:]) != (self.n_fields, self.n_points):
            raise ValueError(f"g must end with shape (n_fields, n_points) = "
                             f"{(self.n_fields, self.n_points)}, got {tuple(g.shape)}.")
        return g.reshape(*g.shape[:-2], self.n_state)

    def with_points(self, n_points):
        """The same fields, boundary and spacing on ``n_points`` points (a longer or shorter domain)."""
        return replace(self, n_points=n_points)

    def coordinates(self):
        """Positions of the points, float64: ``i * spacing`` (periodic) or ``(i + 1) * spacing`` (fixed)."""
        return (np.arange(self.n_points) + (self.boundary == "fixed")) * self.spacing


def roll(g, shift):
    """``g[..., (i - shift) % n]`` at position ``i`` along the last axis, NumPy or torch.

    ``roll(g, 1)[..., i]`` is the left neighbour ``g[..., i - 1]`` on a periodic grid.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.grids import roll
    >>> roll(np.array([0.0, 1.0, 2.0, 3.0]), 1)
    array([3., 0., 1., 2.])
    """
    # np.roll(a, shift, axis) and torch.roll(input, shifts, dims) agree positionally.
    return namespace(g).roll(g, shift, -1)


def field_scale(x, n_fields, centre=True):
    """Per-field mean and standard deviation of ``x`` of shape ``(n, n_fields * n_points)``,
    pooled over the batch and the grid points, each of shape ``(n_fields,)``.

    Scaling shared by all the points of a field keeps a translation-equivariant network
    equivariant, and does not depend on ``n_points``; expand it to a state vector with
    :func:`expand_fields`. A field that does not vary gets scale 1. With
    ``centre=False`` the mean is 0 and the scale is the root mean square.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.grids import field_scale
    >>> x = np.array([[1.0, 3.0, 10.0, 10.0]])    # field 0: 1, 3; field 1: constant 10
    >>> field_scale(x, n_fields=2)
    (array([ 2., 10.]), array([1., 1.]))
    """
    xp = namespace(x)
    samples = point_samples(x, n_fields)
    if centre:
        mean = samples.mean(0)
        scale = ((samples - mean) ** 2).mean(0) ** 0.5
    else:
        mean = samples[0] * 0
        scale = (samples**2).mean(0) ** 0.5
    return mean, xp.where(scale > 1e-12 * (abs(mean) + 1), scale, xp.ones_like(scale))


def point_samples(x, n_fields):
    """States ``(n, n_fields * n_points)`` as ``n * n_points`` samples of the ``n_fields`` values at
    one point: ``(n * n_points, n_fields)`` (a copy).

    Statistics per component of the result are statistics per field, pooled over the batch
    and the points: what a weight-shared network on the grid should be scaled by.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.grids import point_samples
    >>> point_samples(np.array([[1.0, 2.0, 10.0, 20.0]]), n_fields=2)   # u = (1, 2), v = (10, 20)
    array([[ 1., 10.],
           [ 2., 20.]])
    """
    if x.shape[-1] % n_fields:
        raise ValueError(f"x has {x.shape[-1]} components, not a multiple of n_fields={n_fields}.")
    xp = namespace(x)
    return xp.swapaxes(x.reshape(len(x), n_fields, -1), 1, 2).reshape(-1, n_fields)


def expand_fields(values, n_points):
    """Per-field values ``(n_fields,)`` repeated over ``n_points`` points: ``(n_fields * n_points,)``,
    field-major like the states.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_attns.grids import expand_fields
    >>> expand_fields(np.array([1.0, 2.0]), 3)
    array([1., 1., 1., 2., 2., 2.])
    """
    if is_tensor(values):
        return values.repeat_interleave(n_points)
    return np.repeat(values, n_points)



def fit_field_scaling(correction, u, slope, residual, dt, n_fields):
    """A correction's standardisation on a grid: per channel, pooled over the batch and the points.

    The per-component scaling of :class:`~sklearn_attns.training.TeacherForcedData` gives
    every grid point its own constants, which breaks translation equivariance and ties the
    network to ``n_points``; these are shared by all points of a channel.

    Parameters
    ----------
    correction : Correction
        Defines the network input (``features``) and the output scale.
    u, slope, residual : tensor of shape (n, n_fields * n_points)
        Training states, base slopes and residuals ``u_next - (u + dt slope)``, float64.
    dt : float
        The coarse step.
    n_fields : int
        Fields of the state.

    Returns
    -------
    input_mean, input_scale : tensor of shape (in_channels,)
        ``in_channels`` is ``n_fields`` (``2 n_fields`` with
        :func:`~sklearn_attns.corrections.with_state`).
    output_scale : tensor of shape (n_fields,)
        Expand each to a state vector with :func:`expand_fields` before handing them to
        :class:`~sklearn_attns.corrections.HybridStep`.
    """
    features = correction.features(u, slope, dt)
    n_points = u.shape[-1] // n_fields
    mean, scale = field_scale(features, features.shape[-1] // n_points)
    residual, slope = point_samples(residual, n_fields), point_samples(slope, n_fields)
    return mean, scale, correction.output_scale(residual, slope, dt)
