"""Learned corrections of a base integrator step, and the one network builder they share.

A hybrid step is ``u_next = u + dt * S + delta`` with ``S`` the integrator's slope
(Table 5 of the paper). Each correction says what its network sees and how the
network's output becomes ``delta``:

=========  ===========================  ================================================
name       network input                ``delta``
=========  ===========================  ================================================
none       (no network)                 0
attns      ``S``                        ``Q[S]`` (paper Eq. 10, the method)
attns-m    ``S``                        ``dt S (Q[S] - 1)`` (Eq. 6, multiplicative)
neurvec    ``u``                        ``Net(u)`` (NeurVec)
fsnet      ``u``                        ``Net(u)``, sine activation (FSNet)
csm        ``u + dt S``                 ``Net(u + dt S)`` (network sees the solver output)
=========  ===========================  ================================================

On a grid (a system with a :class:`~sklearn_attns.grids.GridLayout`), ``module="conv"``
builds a local, weight-shared correction (:class:`LocalConvNet`); ``module="polynomial"``
is a :class:`Polynomial` in the network's input, fitted by least squares instead of by
gradient steps (for an additive correction: every one but attns-m); :func:`with_state`
makes any correction's network see the state ``u`` beside its own input (for AttNS:
``S`` and ``u`` together).

Scaling (the paper's lambda): the network works on standardised inputs and on outputs
divided by ``output_scale``, fitted from the data so that its training target has unit
size whatever the magnitude of the states; its last layer starts at zero, so an untrained
correction leaves the base solver unchanged.
"""

import itertools
import math
import numbers

import numpy as np
import torch
from torch import nn

from ._torch_stepping import CheckedCompiled, transposed_rhs
from ._validation import check_count
from .rhs_adapter import NumpyRHS

__all__ = ["CORRECTIONS", "ACTIVATIONS", "MODULES", "get_correction", "with_state", "build_network",
           "cpu_block_rows", "Rational", "ChannelSine", "LocalConvNet", "Polynomial", "HybridStep"]


class Correction:
    """How a network's output corrects one base step (``none``: it does not)."""

    name = "none"
    uses_network = False
    default_activation = "rational"
    # delta is the (scaled) network output itself, so a network linear in its parameters
    # fits the training loss exactly by least squares.
    additive = True

    def __init__(self, attention_input="S"):
        self.attention_input = attention_input

    def features(self, u, slope, dt):
        """The network's raw input: the attention sees ``S`` (or ``S dt``, Table 2)."""
        return dt * slope if self.attention_input == "S*dt" else slope

    def delta(self, output, slope, dt):
        """The change added to the base step ``u + dt * slope``."""
        return output

    def output_scale(self, residual, slope, dt):
        """Per-component scale making ``residual / (delta per unit output)`` unit-sized."""
        return rms(residual)


class AttNS(Correction):
    name, uses_network = "attns", True


class AttNSMultiplicative(Correction):
    name, uses_network, additive = "attns-m", True, False

    def delta(self, output, slope, dt):
        return dt * slope * output

    def output_scale(self, residual, slope, dt):
        return rms(residual) / rms(dt * slope)


class NeurVec(Correction):
    name, uses_network = "neurvec", True

    def features(self, u, slope, dt):
        return u


class FSNet(NeurVec):
    name, default_activation = "fsnet", "sine"


class CSM(Correction):
    name, uses_network = "csm", True

    def features(self, u, slope, dt):
        return u + dt * slope


CORRECTIONS = {c.name: c for c in (Correction, AttNS, AttNSMultiplicative, NeurVec, FSNet, CSM)}


def get_correction(name, attention_input="S"):
    """Return the ``Correction`` for a name; ``ValueError`` lists the valid ones."""
    if not isinstance(name, str) or name.lower() not in CORRECTIONS:
        raise ValueError(f"correction must be one of {sorted(CORRECTIONS)}, got {name!r}.")
    return CORRECTIONS[name.lower()](attention_input)


class _WithState(Correction):
    """``base``'s correction, its network fed ``[base features, u]`` (concatenated along the last axis)."""

    def __init__(self, base):
        self.base = base
        self.name, self.uses_network, self.additive = f"{base.name}+u", base.uses_network, base.additive
        self.default_activation, self.attention_input = base.default_activation, base.attention_input

    def features(self, u, slope, dt):
        return torch.cat([self.base.features(u, slope, dt), u], -1)

    def delta(self, output, slope, dt):
        return self.base.delta(output, slope, dt)

    def output_scale(self, residual, slope, dt):
        return self.base.output_scale(residual, slope, dt)


def with_state(correction):
    """The same correction with the state ``u`` appended to its network's input.

    The network then reads ``2 * n_state`` features, field-major ``[features, u]``, and
    still outputs ``n_state`` values: build it with ``extra_inputs=n_fields``
    (``module="conv"``), where each grid point sees its fields' features and state
    values as ``2 * n_fields`` channels.

    Examples
    --------
    >>> import torch
    >>> from sklearn_attns.corrections import get_correction, with_state
    >>> correction = with_state(get_correction("attns"))
    >>> correction.name
    'attns+u'
    >>> u, slope = torch.zeros(3, 4), torch.ones(3, 4)
    >>> correction.features(u, slope, dt=0.1).shape   # S, then u
    torch.Size([3, 8])
    """
    if not isinstance(correction, Correction):
        raise TypeError(f"correction must be a Correction (see get_correction), got "
                        f"{type(correction).__name__}.")
    return _WithState(correction)


def rms(x):
    """Root mean square over the batch axis, 1 where a component is constant zero."""
    scale = torch.sqrt((x**2).mean(0))
    # A component that never changes gets scale 1 rather than a division by zero.
    return torch.where(scale > 0, scale, torch.ones_like(scale))


class Rational(nn.Module):
    """Rational activation of degree (3, 2) with coefficients shared across units.

    ``a(x) = (a0 + a1 x + a2 x^2 + a3 x^3) / D(x)``, initialised as the minimax fit of
    ReLU on [-1, 1] (Boullé et al. 2020). With ``safe=True`` (default),
    ``D(x) = 1 + |b1 x + b2 x^2|`` cannot vanish; ``safe=False`` is the original
    ``D(x) = b0 + b1 x + b2 x^2``.
    """

    def __init__(self, safe=True):
        super().__init__()
        self.safe = safe
        self.numerator = nn.Parameter(torch.tensor([0.0218, 0.5, 1.5957, 1.1915]))
        self.denominator = nn.Parameter(torch.tensor([1.0, 0.0, 2.383]))

    def forward(self, x):
        a, b = self.numerator, self.denominator
        if not torch.is_grad_enabled():
            # Inference: the same arithmetic in two buffers, written in place (twice as fast
            # in eager mode as allocating a tensor per operation).
            p = torch.addcmul(a[2], x, a[3])
            torch.addcmul(a[1], x, p, out=p)
            torch.addcmul(a[0], x, p, out=p)
            q = torch.addcmul(b[1], x, b[2]).mul_(x)
            return p.div_(q.abs_().add_(1.0) if self.safe else q.add_(b[0]))
        # Horner's rule with fused multiply-adds: eight elementwise passes instead of twelve.
        p = torch.addcmul(a[0], x, torch.addcmul(a[1], x, torch.addcmul(a[2], x, a[3])))
        q = x * torch.addcmul(b[1], x, b[2])
        return p / q.abs().add_(1.0) if self.safe else p / (q + b[0])


class ChannelSine(nn.Module):
    """FSNet's channel-wise sine ``sin(w_c x + b_c)``, ``w_c`` starting at 30 and ``b_c`` at 0."""

    def __init__(self, width, frequency=30.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((width,), float(frequency)))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x):
        return torch.sin(self.weight * x + self.bias)


ACTIVATIONS = {
    "rational": lambda width: Rational(safe=True),
    "rational-original": lambda width: Rational(safe=False),
    "sine": ChannelSine,
    "relu": lambda width: nn.ReLU(),
    "tanh": lambda width: nn.Tanh(),
    "gelu": lambda width: nn.GELU(),
}


class _Skip(nn.Module):
    """``body(x) + gain * x`` with a learnable per-component gain starting at 0."""

    def __init__(self, body, n_features):
        super().__init__()
        self.body = body
        self.gain = nn.Parameter(torch.zeros(n_features))

    def forward(self, x):
        return self.body(x) + self.gain * x[:, : len(self.gain)]


class _ComponentSequence(nn.Module):
    """Table 2's sequence modules: the ``n_features`` components are a sequence of scalars
    read by an LSTM or a Transformer encoder layer, each position projected back to one
    value by a last layer that starts at zero."""

    def __init__(self, n_features, width, module):
        super().__init__()
        self.module = module
        if module == "lstm":
            self.body = nn.LSTM(1, width, batch_first=True)
        else:
            self.embed = nn.Linear(1, width)
            self.position = nn.Parameter(torch.randn(n_features, width) * 0.02)
            heads = next(h for h in (8, 4, 2, 1) if width % h == 0)
            self.body = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                                   batch_first=True)
        self.head = nn.Linear(width, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        tokens = x.unsqueeze(-1)
        if self.module == "lstm":
            hidden, _ = self.body(tokens)
        else:
            hidden = self.body(self.embed(tokens) + self.position)
        return self.head(hidden).squeeze(-1)


class LocalConvNet(nn.Module):
    """A local, weight-shared correction on a 1-D grid: ``depth`` convolutions of ``kernel_size``.

    Input rows are flat grid states, field-major (see :mod:`sklearn_attns.grids`):
    ``(n, in_channels * n_points)`` with ``in_channels = n_fields + extra_inputs``; output
    rows are ``(n, n_fields * n_points)``. The weights do not depend on ``n_points``, so a
    network trained on one grid runs on any other with the same spacing and boundary.
    Periodic grids are padded circularly, so that the network is translation-equivariant
    (rolling the input by ``s`` points rolls the output by ``s``); fixed grids are padded
    with zeros. Each output point depends on the ``receptive_field = depth * (kernel_size
    - 1) + 1`` input points centred on it. The last convolution starts at zero, so the
    untrained network outputs exactly 0.

    Parameters
    ----------
    n_fields : int
        Fields of the state (output channels).
    width : int
        Hidden channels.
    depth : int
        Convolutions (``depth - 1`` hidden layers, each followed by the activation).
    kernel_size : int
        Points per convolution, odd.
    activation : str
        An activation name of :func:`build_network`, applied per point and channel.
    boundary : {"periodic", "fixed"}
        The grid's boundary: circular or zero padding.
    extra_inputs : int, default=0
        Extra input channels after the ``n_fields`` of the features (``n_fields`` for the
        state of :func:`with_state`).
    skip_connection : bool, default=False
        Add a learnable per-field multiple of the first ``n_fields`` input channels,
        starting at 0.
    """

    def __init__(self, n_fields, width, depth, kernel_size, activation, boundary, extra_inputs=0,
                 skip_connection=False):
        super().__init__()
        self.n_fields, self.in_channels = n_fields, n_fields + extra_inputs
        self.kernel_size, self.depth = kernel_size, depth
        padding_mode = "circular" if boundary == "periodic" else "zeros"

        def conv(channels_in, channels_out):
            return nn.Conv1d(channels_in, channels_out, kernel_size, padding=kernel_size // 2,
                             padding_mode=padding_mode)

        layers, channels = [], self.in_channels
        for _ in range(depth - 1):
            act = ACTIVATIONS[activation](width)
            # Per-channel activations (FSNet's sine) expect channels last.
            layers += [conv(channels, width), _ChannelsLast(act) if isinstance(act, ChannelSine) else act]
            channels = width
        last = conv(channels, n_fields)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*layers, last)
        if activation == "sine" and depth > 1:
            fan_in = self.in_channels * kernel_size
            nn.init.uniform_(self.body[0].weight, -1.0 / fan_in, 1.0 / fan_in)
        self.gain = nn.Parameter(torch.zeros(n_fields, 1)) if skip_connection else None

    @property
    def receptive_field(self):
        """Input points each output point depends on."""
        return self.depth * (self.kernel_size - 1) + 1

    def forward(self, x):
        n, size = x.shape
        if size % self.in_channels:
            raise ValueError(f"the network expects rows of in_channels * n_points values (in_channels = "
                             f"{self.in_channels}), got {size}.")
        grid = x.reshape(n, self.in_channels, size // self.in_channels)
        if self.kernel_size // 2 > grid.shape[-1]:
            raise ValueError(f"kernel_size={self.kernel_size} reaches further than the {grid.shape[-1]} "
                             "grid points.")
        out = self.body(grid)
        if self.gain is not None:
            out = out + self.gain * grid[:, : self.n_fields]
        return out.reshape(n, -1)


class _ChannelsLast(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x.transpose(1, 2)).transpose(1, 2)


# Whether torch.compile is tracing the caller (torch.compiler.is_compiling from torch 2.3 on).
_is_compiling = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling


class Polynomial(nn.Module):
    """A polynomial of total degree ``degree`` in the ``n_features`` inputs, per output.

    ``output = monomials(z) @ coefficients``: the ``n_terms = comb(n_features + degree,
    degree)`` monomials of degree 0 to ``degree`` (the constant first), times coefficients of
    shape ``(n_terms, n_outputs)`` that start at zero. Linear in its coefficients, it is
    fitted by least squares (:func:`~sklearn_attns.training.fit_least_squares`), not by
    gradient steps. Eager, it builds the ``(rows, n_terms)`` matrix of monomials and
    multiplies; inside ``torch.compile`` it evaluates each output as nested Horner sums on the
    input's columns instead, which Inductor fuses into one pass over the rows without that
    matrix. :meth:`for_compiler` is the form a compiled :class:`HybridStep` runs.

    Parameters
    ----------
    n_features : int
        Inputs.
    n_outputs : int
        Outputs.
    degree : int
        Total degree (1 is affine).

    Examples
    --------
    >>> import torch
    >>> from sklearn_attns.corrections import Polynomial
    >>> poly = Polynomial(2, 1, degree=2).double()
    >>> poly.terms      # exponents as input indices: 1, z0, z1, z0^2, z0 z1, z1^2
    [(), (0,), (1,), (0, 0), (0, 1), (1, 1)]
    >>> with torch.no_grad():
    ...     _ = poly.coefficients[:, 0].copy_(torch.tensor([1.0, 0, 0, 0, 2, 0]))   # 1 + 2 z0 z1
    >>> poly(torch.tensor([[1.0, 3.0]], dtype=torch.float64))
    tensor([[7.]], dtype=torch.float64, grad_fn=<MmBackward0>)
    """

    def __init__(self, n_features, n_outputs, degree):
        super().__init__()
        self.n_features, self.degree = n_features, degree
        self.terms = [combo for d in range(degree + 1)
                      for combo in itertools.combinations_with_replacement(range(n_features), d)]
        self.coefficients = nn.Parameter(torch.zeros(len(self.terms), n_outputs))

    @property
    def n_terms(self):
        return len(self.terms)

    def monomials(self, z):
        """The ``(rows, n_terms)`` matrix of monomials of ``z``, in its dtype."""
        products = {(): torch.ones_like(z[:, 0])}
        for combo in self.terms[1:]:  # each is a shorter one (listed before it) times one input
            products[combo] = products[combo[:-1]] * z[:, combo[-1]]
        return torch.stack([products[combo] for combo in self.terms], 1)

    def forward(self, z):
        if _is_compiling():
            return self._nested_horner(z, self.coefficients)
        return self.monomials(z) @ self.coefficients

    def for_compiler(self):
        """A copy whose compiled form holds the coefficients as constants of the generated
        code rather than reading them from a tensor. On the 2-link pendulum at degree 4 (495
        terms) Inductor's C++ compilation of the compiled hybrid step failed with the tensor
        form, twice, and took 211 s with constants (two candidates, one thread, nothing
        cached), after which a rollout of 8,192 states over 5 steps ran in 22 ms
        (``variant.py`` in ``docs/benchmark_logs/work_precision_explorations_cpu.log``). A
        snapshot: later changes to this polynomial's coefficients do not reach it."""
        return _ConstantPolynomial(self)

    def _nested_horner(self, z, coefficients):
        # c_() + z0 (c_(0) + z0 (...) + z1 (...)) + z1 (...): each monomial's coefficient once,
        # one multiply-add per term, on columns (each input contiguous across the rows).
        columns, row = z.t(), {combo: k for k, combo in enumerate(self.terms)}

        def tail(prefix, first, j):
            total = coefficients[row[prefix]][j]
            if len(prefix) < self.degree:
                for i in range(first, self.n_features):
                    total = total + columns[i] * tail(prefix + (i,), i, j)
            return total

        # Stacked output-major, as the columns: (rows, n_outputs) as a transposed view.
        return torch.stack([tail((), 0, j) for j in range(len(coefficients[0]))]).t()


class _ConstantPolynomial(Polynomial):
    """:meth:`Polynomial.for_compiler`: the same polynomial, its coefficients also held as
    Python floats for the compiler."""

    def __init__(self, polynomial):
        super().__init__(polynomial.n_features, polynomial.coefficients.shape[1], polynomial.degree)
        self.coefficients = nn.Parameter(polynomial.coefficients.detach().clone(), requires_grad=False)
        self.constants = self.coefficients.tolist()

    def forward(self, z):
        if _is_compiling():
            return self._nested_horner(z, self.constants)
        return super().forward(z)


# Terms of a Polynomial: its least-squares fit holds an (n_terms, n_terms) float64 triangle.
MAX_POLYNOMIAL_TERMS = 5000

MODULES = ("mlp", "lstm", "transformer", "conv", "polynomial")
# Per torch thread: about one core's L2 cache (2 MiB on the Xeons measured).
CPU_BLOCK_BYTES = 2 * 2**20


def build_network(n_features, depth=2, width=1024, activation="rational", skip_connection=False, module="mlp",
                  n_outputs=None, layout=None, kernel_size=5, extra_inputs=0, degree=3):
    """Build the correction network of the paper's equation (8), or a local one on a grid.

    ``W_h o a o ... o a o W_1``, from ``n_features`` to ``n_outputs`` (default: itself).

    Parameters
    ----------
    n_features : int
        Input dimension: the state dimension, plus the conditioning (time, parameters,
        inputs) of a conditioned system.
    depth : int, default=2
        Number of linear layers ``h`` (Table 1 uses 2, 3, 4).
    width : int, default=1024
        Hidden width ``d1`` (Table 1 uses 512, 1024, 2048).
    activation : str, default="rational"
        One of "rational" (safe denominator), "rational-original", "sine", "relu",
        "tanh", "gelu".
    skip_connection : bool, default=False
        Add a learnable multiple of the input to the output (Table 2); it starts at 0.
    module : {"mlp", "lstm", "transformer", "conv", "polynomial"}, default="mlp"
        "mlp" is Eq. (8); "lstm" and "transformer" are Table 2's alternatives, reading the
        components as a sequence with hidden size ``width`` (``depth`` and ``activation``
        then do not apply). "conv" is a local, weight-shared :class:`LocalConvNet` on the
        grid of ``layout``: ``depth`` convolutions of ``kernel_size`` points with
        ``width`` hidden channels; it runs on any number of grid points. "polynomial" is a
        :class:`Polynomial` of total degree ``degree`` (only ``degree`` and ``n_outputs``
        apply).
    n_outputs : int, default=None
        Output dimension (the state dimension); None is ``n_features``. The skip
        connection adds a multiple of the first ``n_outputs`` inputs.
    layout : GridLayout, default=None
        The grid of the states (``system.layout``); required by ``module="conv"``.
    kernel_size : int, default=5
        Points per convolution of ``module="conv"`` (odd); the receptive field is
        ``depth * (kernel_size - 1) + 1`` points.
    extra_inputs : int, default=0
        ``module="conv"`` only: input channels beyond the ``n_fields`` of the features,
        e.g. ``n_fields`` for a correction that also sees the state (:func:`with_state`).
    degree : int, default=3
        ``module="polynomial"`` only: its total degree; it has ``comb(n_features + degree,
        degree)`` terms, at most ``MAX_POLYNOMIAL_TERMS``.

    Returns
    -------
    torch.nn.Module
        Its last layer is zero, so the untrained network outputs exactly 0.

    Examples
    --------
    >>> import torch
    >>> from sklearn_attns.corrections import build_network
    >>> net = build_network(4, depth=3, width=32)
    >>> net(torch.randn(5, 4)).abs().max().item()
    0.0
    >>> from sklearn_attns.grids import GridLayout
    >>> conv = build_network(2 * 64, depth=3, width=16, module="conv", layout=GridLayout(64, n_fields=2))
    >>> conv(torch.randn(5, 2 * 64)).shape, conv(torch.randn(5, 2 * 128)).shape   # any number of points
    (torch.Size([5, 128]), torch.Size([5, 256]))
    """
    if module not in MODULES:
        raise ValueError(f"module must be one of {list(MODULES)}, got {module!r}.")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
    n_outputs = n_features if n_outputs is None else n_outputs
    if module in ("lstm", "transformer") and n_outputs != n_features:
        raise ValueError(f"module={module!r} reads the state components as a sequence and cannot take the "
                         "conditioning of a time-dependent, parametric or forced system; use module='mlp'.")
    if module == "conv":
        if n_outputs != n_features:
            raise ValueError("module='conv' cannot take the conditioning of a time-dependent, parametric or "
                             "forced system yet; use module='mlp' or condition_network=False.")
        return _build_conv(n_features, depth, width, activation, skip_connection, layout, kernel_size,
                           extra_inputs)
    if extra_inputs:
        raise ValueError(f"extra_inputs is supported by module='conv' only, got extra_inputs="
                         f"{extra_inputs!r} with module={module!r}.")
    if module == "polynomial":
        return _build_polynomial(n_features, n_outputs, degree)
    if module != "mlp":
        net = _ComponentSequence(n_features, width, module)
        return _Skip(net, n_features) if skip_connection else net
    layers, size = [], n_features
    for _ in range(depth - 1):
        layers += [nn.Linear(size, width), ACTIVATIONS[activation](width)]
        size = width
    last = nn.Linear(size, n_outputs)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    net = nn.Sequential(*layers, last)
    if activation == "sine" and depth > 1:
        # SIREN's first-layer init, so that sin(30 x) starts with arguments of order one
        # (with depth 1 the first layer is the last, which starts at zero).
        nn.init.uniform_(net[0].weight, -1.0 / n_features, 1.0 / n_features)
    return _Skip(net, n_outputs) if skip_connection else net


def _build_conv(n_features, depth, width, activation, skip_connection, layout, kernel_size, extra_inputs):
    # Imported here: GridLayout is all this needs from the grid module.
    from .grids import GridLayout

    if not isinstance(layout, GridLayout):
        raise ValueError("module='conv' needs a system with a grid layout (system.layout, a "
                         f"sklearn_attns.grids.GridLayout); got layout={layout!r}.")
    if n_features != layout.n_state:
        raise ValueError(f"n_features={n_features} does not match the layout's n_fields * n_points = "
                         f"{layout.n_state}.")
    for name, value, minimum in (("kernel_size", kernel_size, 1), ("extra_inputs", extra_inputs, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}.")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (a stencil centred on each point), got {kernel_size}.")
    return LocalConvNet(layout.n_fields, width, depth, kernel_size, activation, layout.boundary,
                        int(extra_inputs), skip_connection)


def _build_polynomial(n_features, n_outputs, degree):
    degree = check_count(degree, "degree")
    n_terms = math.comb(n_features + degree, degree)
    if n_terms > MAX_POLYNOMIAL_TERMS:
        raise ValueError(f"module='polynomial' of degree={degree} in {n_features} inputs has {n_terms} "
                         f"terms, more than the {MAX_POLYNOMIAL_TERMS} its least-squares fit allows; lower "
                         "degree, or use module='mlp' (the inputs are the correction's features, the state "
                         "with state_input, and the conditioning).")
    return Polynomial(n_features, n_outputs, degree)


def cpu_block_rows(network, threads=None):
    """Rows per block for CPU inference: a block's widest hidden layer fills at most
    ``CPU_BLOCK_BYTES`` per torch thread (``threads``, default ``torch.get_num_threads()``),
    so the activation's elementwise pass reads it from cache rather than from memory
    (``benchmarks/bench_inference.py`` measures the gain); a :class:`Polynomial`'s matrix of
    monomials counts as a layer of ``n_terms``. None (no blocks) without a network, for the
    sequence modules and the convolutional one, whose activations per row are ``n_features x
    width``, and for a polynomial's compiled form (:meth:`Polynomial.for_compiler`), which
    builds no matrix of monomials."""
    whole = (_ComponentSequence, LocalConvNet, _ConstantPolynomial)
    if network is None or any(isinstance(m, whole) for m in network.modules()):
        return None
    threads = torch.get_num_threads() if threads is None else threads
    parameter = next(network.parameters())
    widest = max([m.out_features for m in network.modules() if isinstance(m, nn.Linear)]
                 + [m.n_terms for m in network.modules() if isinstance(m, Polynomial)] + [1])
    return max(1, CPU_BLOCK_BYTES * threads // (widest * parameter.element_size()))


class HybridStep(nn.Module):
    """One corrected step ``u -> u + dt S + delta``; shared by training and prediction.

    Parameters
    ----------
    rhs : callable
        The system's right-hand side on torch tensors: ``rhs(u)``, or for a conditioned
        system its ``evaluate(t, u, p, w)`` (see :class:`~sklearn_attns.systems.ODESystem`).
    integrator : Integrator
        The base method.
    dt : float
        Coarse step.
    correction : Correction
        How the network corrects the step.
    network : torch.nn.Module or None
        The correction network (None for ``correction="none"``).
    input_mean, input_scale, output_scale : torch.Tensor or None
        Standardisation fitted on the training data (float64).
    linear_operator : array-like of shape (n_state, n_state), default=None
        ``A`` when ``rhs(u) = A u``: the base slope is then one float64 matrix product
        (:meth:`Integrator.slope_matrix`) instead of the integrator's stage loop.
    system : ODESystem, default=None
        A conditioned system: each step then takes its
        :class:`~sklearn_attns.conditions.Conditions` (time, parameters, inputs).
    network_sees_conditions : bool, default=True
        With a conditioned ``system``, the network sees the conditions' features after
        the correction's own.
    """

    def __init__(self, rhs, integrator, dt, correction, network=None, input_mean=None, input_scale=None,
                 output_scale=None, linear_operator=None, system=None, network_sees_conditions=True):
        super().__init__()
        self.rhs, self.integrator, self.dt, self.correction = rhs, integrator, dt, correction
        self.network, self.linear_operator, self.system = network, linear_operator, system
        self.network_sees_conditions = network_sees_conditions
        self.network_dtype = None if network is None else next(network.parameters()).dtype
        self._forget_compiled()
        # Moved, cast or loaded anew, a step makes its compiled functions again at the next compile().
        self.register_load_state_dict_post_hook(_forget_compiled)
        for name, value in (("input_mean", input_mean), ("input_scale", input_scale),
                            ("output_scale", output_scale)):
            self.register_buffer(name, value)
        slope_t = None if linear_operator is None else torch.as_tensor(
            np.ascontiguousarray(integrator.slope_matrix(linear_operator, dt).T))
        # Not in the state dict: it follows from the system, the integrator and dt.
        self.register_buffer("slope_matrix_t", slope_t, persistent=False)

    def _forget_compiled(self):
        for name in ("compiled_network", "compiled_step", "compiled_rollout_step",
                     "network_for_compiler"):  # the last: what the compiled functions trace
            object.__setattr__(self, name, None)
        self.compiled_column_steps = {}  # (steps, rows) -> a CheckedCompiled of column_steps

    def _apply(self, *args, **kwargs):
        module = super()._apply(*args, **kwargs)
        self._forget_compiled()
        return module

    def with_network(self, network, input_mean, input_scale, output_scale):
        """This base step corrected by ``network`` with its standardisation (a new module;
        move it with ``.to(device)``)."""
        return HybridStep(self.rhs, self.integrator, self.dt, self.correction, network, input_mean,
                          input_scale, output_scale, self.linear_operator, self.system,
                          self.network_sees_conditions)

    def compile(self):
        """Run the network through ``torch.compile`` (fuses the activation's many elementwise
        operations; the first call compiles for tens of seconds, later ones reuse the cache).
        The compiled wrapper is not a submodule, so the state dict and pickles are unchanged.
        A network with a ``for_compiler()`` form (a :class:`Polynomial`) is compiled, and from
        here on stepped, in that form."""
        if self.network is not None and self.compiled_network is None:
            for_compiler = getattr(self.network, "for_compiler", None)
            object.__setattr__(self, "network_for_compiler",
                               self.network if for_compiler is None else for_compiler())
            functions = (("compiled_network", self.network_for_compiler), ("compiled_step", self.step),
                         ("compiled_rollout_step", self.rollout_step))
            for name, function in functions:
                object.__setattr__(self, name, torch.compile(function, dynamic=False))
        return self

    def network_input(self, u, slope, conditions=None):
        """What the network sees, before standardisation: the correction's features, then
        the conditioning's (float64)."""
        features = self.correction.features(u, slope, self.dt)
        if conditions is None or self.system is None or not self.network_sees_conditions:
            return features
        conditioning = conditions.features(self.system)
        return features if conditioning is None else torch.cat([features, conditioning.to(features.dtype)], 1)

    def standardised_input(self, u, slope, conditions=None):
        """:meth:`network_input` standardised by the fitted ``input_mean`` and ``input_scale``
        (float64): what the network reads, before the cast to its dtype."""
        return (self.network_input(u, slope, conditions) - self.input_mean) / self.input_scale

    def correction_delta(self, u, slope, conditions=None, network=None):
        """``delta`` for states ``u`` with base slopes ``slope`` (compiled network if any)."""
        if self.network is None:
            return torch.zeros_like(u)
        network = network or self.compiled_network or self.network
        # Scaling happens in float64 (states of any magnitude), the network in its own dtype.
        z = self.standardised_input(u, slope, conditions)
        output = network(z.to(self.network_dtype)) * self.output_scale
        return self.correction.delta(output.to(u.dtype), slope, self.dt)

    def slope(self, u, conditions=None):
        """The base integrator's slope ``S(u)``, in the dtype of ``u``."""
        if self.slope_matrix_t is not None:
            return u @ self.slope_matrix_t.to(u.dtype)
        if self.system is None:
            return self.integrator.increment(self.rhs, u, self.dt)
        rhs = conditions.rhs(self.rhs, self.dt, self.system.input_interpolation)
        return self.integrator.increment(rhs, u, self.dt, at_nodes=True)

    def step(self, u, conditions=None):
        slope = self.slope(u, conditions)
        # The plain network: when this whole step is compiled, it is compiled with it.
        return u + self.dt * slope + self.correction_delta(u, slope, conditions, self.traced_network)

    def rollout_step(self, u, block_rows=None, conditions=None):
        """``(step(u), finite)``, ``finite[i]`` saying whether row ``i`` is still finite:
        prediction's step, its blow-up check fused with it when compiled. With
        ``block_rows`` the rows go through in blocks of that many (on the CPU, see
        :func:`cpu_block_rows`)."""
        if block_rows and len(u) > block_rows:
            blocks = [slice(start, start + block_rows) for start in range(0, len(u), block_rows)]
            u = torch.cat([self.step(u[block], None if conditions is None else conditions.rows(block))
                           for block in blocks])
        else:
            u = self.step(u, conditions)
        return u, torch.isfinite(u).all(1)

    def compiled_column_steps_for(self, steps, rows):
        """Prediction's fastest path once compiled: ``advance(v)``, ``steps`` steps of
        ``rows`` states held transposed (``v`` of shape ``(n_state, rows)``), returning the
        state after each, ``(steps, n_state, rows)``, and the number of leading steps after
        which each row is still finite, ``(rows,)``. As in the fused fine steps of
        :func:`~sklearn_attns.datasets.make_trajectories`, each state component is then
        contiguous across the rows and ``torch.compile`` sees several steps as one graph;
        the compiled function is checked once against the eager one. None before
        :meth:`compile`, and for a conditioned system or a NumPy-only right-hand side (whose
        steps take the row-by-row path)."""
        if self.compiled_network is None or self.system is not None or isinstance(self.rhs, NumpyRHS):
            return None
        key = (steps, rows)
        if key not in self.compiled_column_steps:
            # The network's own rounding differs between its compiled and eager runs.
            rtol = max(1e-10, 1e3 * torch.finfo(self.network_dtype).eps)
            self.compiled_column_steps[key] = CheckedCompiled(self._column_steps(steps), rtol=rtol,
                                                              what="prediction steps")
        return self.compiled_column_steps[key]

    def _column_steps(self, steps):
        rhs = transposed_rhs(self.rhs)

        def column_slope(v):
            if self.slope_matrix_t is not None:  # a linear system: the slope's one product
                return self.slope(v.t()).t()
            return self.integrator.increment(rhs, v, self.dt)

        def advance(v):
            states = []
            for _ in range(steps):
                slope = column_slope(v)
                delta = self.correction_delta(v.t(), slope.t(), None, self.traced_network)
                v = v + self.dt * slope + delta.t()
                states.append(v)
            states = torch.stack(states)
            finite_steps = torch.isfinite(states).all(1).int().cumprod(0).sum(0)
            return states, finite_steps

        return advance

    @property
    def traced_network(self):
        """The network that steps run: after :meth:`compile`, its form for the compiler."""
        return self.network if self.network_for_compiler is None else self.network_for_compiler

    def forward(self, u, conditions=None):
        # The compiled step fuses the base slope's arithmetic with the network.
        return (self.compiled_step or self.step)(u, conditions)


def _forget_compiled(step, incompatible_keys):
    """``load_state_dict``'s post-hook of a :class:`HybridStep`."""
    step._forget_compiled()
