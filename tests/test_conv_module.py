"""The local correction network (``module="conv"``): symmetry, locality, grid-size independence,
dtypes, saving, and a hybrid step that trains with it.

The network's last layer starts at zero, so every property of its function is checked on a
copy with random weights (:func:`randomised`).
"""

import pickle

import numpy as np
import pytest
import torch

from sklearn_attns import make_trajectories
from sklearn_attns.corrections import (
    HybridStep,
    LocalConvNet,
    build_network,
    cpu_block_rows,
    get_correction,
    with_state,
)
from sklearn_attns.grids import GridLayout, expand_fields, fit_field_scaling
from sklearn_attns.integrators import get_integrator
from sklearn_attns.systems import Burgers, FitzHughNagumo
from sklearn_attns.training import EarlyStopping, TeacherForcedData, train_epochs
from sklearn_attns.trajectories import check_trajectory_set

LAYOUT = GridLayout(n_points=32, n_fields=2, spacing=0.1)


def conv(layout=LAYOUT, **kwargs):
    kwargs = {"depth": 3, "width": 8, "kernel_size": 5, **kwargs}
    return build_network(layout.n_state, module="conv", layout=layout, **kwargs)


def randomised(net, seed=0):
    """``net`` with every parameter replaced by random values (a generic function of its class)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return net


def states(n, layout=LAYOUT, in_channels=None, seed=1, dtype=torch.float32):
    channels = in_channels or layout.n_fields
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels * layout.n_points, generator=generator, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("extra_inputs", [0, 2])
def test_untrained_network_is_exactly_zero(dtype, extra_inputs):
    net = conv(extra_inputs=extra_inputs).to(dtype)
    out = net(states(4, in_channels=2 + extra_inputs, dtype=dtype))
    assert out.shape == (4, LAYOUT.n_state) and out.dtype == dtype
    assert out.abs().max().item() == 0


def test_layers_are_the_requested_convolutions():
    net = conv(depth=4, width=12, kernel_size=3, extra_inputs=2)
    layers = [m for m in net.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in layers] == [
        (4, 12, 3), (12, 12, 3), (12, 12, 3), (12, 2, 3)]
    assert all(m.padding_mode == "circular" for m in layers)
    assert net.receptive_field == 4 * 2 + 1
    fixed = conv(layout=GridLayout(16, 2, "fixed"))
    assert all(m.padding_mode == "zeros" for m in fixed.modules() if isinstance(m, torch.nn.Conv1d))


@pytest.mark.parametrize("activation", ["rational", "tanh", "sine", "relu"])
@pytest.mark.parametrize("shift", [1, 7, -5])
def test_rolling_the_input_rolls_the_output(activation, shift):
    net = randomised(conv(activation=activation, extra_inputs=2).double())
    x = states(3, in_channels=4, dtype=torch.float64)
    rolled = x.reshape(3, 4, -1).roll(shift, -1).reshape(3, -1)
    expected = net(x).reshape(3, 2, -1).roll(shift, -1).reshape(3, -1)
    torch.testing.assert_close(net(rolled), expected, rtol=1e-12, atol=1e-12)
    assert net(x).abs().max() > 1e-3  # not trivially equivariant


def test_perturbing_one_point_changes_only_its_receptive_field():
    depth, kernel_size = 3, 5
    radius = depth * (kernel_size // 2)  # 6 points to each side
    net = randomised(conv(depth=depth, kernel_size=kernel_size).double())
    x = states(1, dtype=torch.float64)
    point = 3  # near the edge: the field wraps around the periodic boundary
    bumped = x.clone()
    bumped[0, point] += 1.0  # field 0 at point 3
    change = (net(bumped) - net(x)).reshape(2, LAYOUT.n_points).abs().amax(0)
    distance = np.minimum(np.abs(np.arange(32) - point), 32 - np.abs(np.arange(32) - point))
    assert change[torch.as_tensor(distance > radius)].max().item() == 0
    assert change[torch.as_tensor(distance == radius)].min().item() > 0  # the field is no smaller
    assert change[torch.as_tensor(distance <= radius)].min().item() > 0


def test_fixed_boundary_does_not_wrap():
    """On a fixed grid, points farther than the receptive radius from both ends compute what the
    periodic network computes, and a change at one end does not reach the other end."""
    radius = 3 * (5 // 2)
    fixed = randomised(conv(layout=GridLayout(20, 2, "fixed")).double())
    periodic = conv(layout=GridLayout(20, 2)).double()
    periodic.load_state_dict(fixed.state_dict())
    x = states(3, layout=GridLayout(20, 2), dtype=torch.float64)
    interior = slice(radius, 20 - radius)
    torch.testing.assert_close(fixed(x).reshape(3, 2, 20)[..., interior],
                               periodic(x).reshape(3, 2, 20)[..., interior], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(fixed(x), periodic(x))  # the ends differ
    bumped = x.clone()
    bumped[:, 0] += 1.0  # field 0 at point 0
    for net, reaches_far_end in ((fixed, False), (periodic, True)):
        change = (net(bumped) - net(x)).reshape(3, 2, 20).abs().amax((0, 1))
        assert change[radius + 1 :].max().item() == 0 if not reaches_far_end else change[-1].item() > 0


def test_runs_on_any_number_of_points():
    """Built for 32 points, the network runs on 64: the same spacing on a domain twice as long. On
    an input that repeats with period 32 its output is the 32-point output, repeated."""
    net = randomised(conv(extra_inputs=2))
    x = states(3, in_channels=4)
    doubled = x.reshape(3, 4, 32).repeat(1, 1, 2).reshape(3, -1)
    out = net(doubled)
    assert out.shape == (3, 2 * 64)
    expected = net(x).reshape(3, 2, 32).repeat(1, 1, 2).reshape(3, -1)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert net(states(2, layout=GridLayout(7, 2), in_channels=4)).shape == (2, 14)


def test_float32_agrees_with_float64():
    net = randomised(conv())
    x = states(5)
    out32 = net(x)
    out64 = net.double()(x.double())
    assert out32.dtype == torch.float32 and out64.dtype == torch.float64
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-5)


def test_state_dict_round_trip_into_a_fresh_network():
    net = randomised(conv(extra_inputs=2, skip_connection=True))
    fresh = conv(extra_inputs=2, skip_connection=True)
    fresh.load_state_dict(net.state_dict())
    x = states(4, in_channels=4)
    torch.testing.assert_close(fresh(x), net(x), rtol=0, atol=0)
    copy = pickle.loads(pickle.dumps(net))
    torch.testing.assert_close(copy(x), net(x), rtol=0, atol=0)


def test_skip_connection_adds_a_per_field_multiple_of_the_features():
    net = conv(extra_inputs=2, skip_connection=True)
    x = states(2, in_channels=4)
    assert net(x).abs().max() == 0  # the gain starts at 0 too
    with torch.no_grad():
        net.gain.copy_(torch.tensor([[2.0], [-1.0]]))
    grid = x.reshape(2, 4, 32)
    expected = torch.cat([2.0 * grid[:, 0], -1.0 * grid[:, 1]], 1)  # the features, not the state channels
    torch.testing.assert_close(net(x), expected)


def test_conv_needs_a_layout():
    with pytest.raises(ValueError, match="module='conv' needs a system with a grid layout"):
        build_network(64, module="conv")


@pytest.mark.parametrize("kwargs, name", [
    ({"kernel_size": 4}, "kernel_size"), ({"kernel_size": 0}, "kernel_size"),
    ({"extra_inputs": -1}, "extra_inputs"), ({"layout": GridLayout(31, 2)}, "n_features"),
])
def test_bad_conv_parameters_are_named(kwargs, name):
    kwargs = {"layout": LAYOUT, **kwargs}
    with pytest.raises(ValueError, match=name):
        build_network(LAYOUT.n_state, module="conv", **kwargs)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="extra_inputs"):
        build_network(8, module="mlp", extra_inputs=2)
    with pytest.raises(ValueError, match="in_channels"):
        conv()(torch.zeros(2, 63))
    with pytest.raises(ValueError, match="kernel_size"):
        conv(kernel_size=9)(torch.zeros(2, 2 * 3))


def test_cpu_blocks_are_not_used_for_the_conv_module():
    assert cpu_block_rows(conv()) is None


def test_with_state_feeds_the_state_beside_the_features():
    correction = with_state(get_correction("csm"))
    u, slope = torch.randn(3, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    features = correction.features(u, slope, 0.1)
    torch.testing.assert_close(features, torch.cat([u + 0.1 * slope, u], 1))
    residual = torch.randn(3, 8, dtype=torch.float64)
    base = get_correction("csm")
    expected = base.output_scale(residual, slope, 0.1)
    torch.testing.assert_close(correction.output_scale(residual, slope, 0.1), expected)
    assert correction.uses_network and correction.name == "csm+u"
    with pytest.raises(TypeError, match="correction"):
        with_state("attns")


def test_field_scaling_is_per_channel_and_pooled():
    layout = GridLayout(16, 2)
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(50, 32, generator=generator, dtype=torch.float64) * torch.tensor([1.0] * 16 + [5.0] * 16)
    slope = torch.randn(50, 32, generator=generator, dtype=torch.float64)
    residual = torch.randn(50, 32, generator=generator, dtype=torch.float64) * 1e-3
    correction = with_state(get_correction("attns"))
    mean, scale, output_scale = fit_field_scaling(correction, u, slope, residual, 0.1, n_fields=2)
    assert mean.shape == scale.shape == (4,) and output_scale.shape == (2,)
    # Channels: S_u, S_v, u, v; each pooled over the 50 x 16 samples of its field.
    torch.testing.assert_close(scale[3], u[:, 16:].std(unbiased=False))
    torch.testing.assert_close(mean[0], slope[:, :16].mean())
    torch.testing.assert_close(output_scale[1], residual[:, 16:].pow(2).mean().sqrt())
    assert expand_fields(output_scale, layout.n_points).shape == (32,)


@pytest.fixture
def one_torch_thread():
    """Small batches train fastest on one thread (and are not slowed by a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("extra", [0, 2])
def test_hybrid_step_with_a_conv_network_trains(extra, one_torch_thread):
    """A short teacher-forced AttNS fit on FitzHugh-Nagumo lowers the scaled loss below half
    (the loss of the zero correction), with and without the state as extra input channels."""
    torch.manual_seed(0)
    system = FitzHughNagumo(n_points=16)
    X = make_trajectories(system, 8, t_end=1.0, dt=0.1, fine_dt=1e-2, random_state=0)
    correction = with_state(get_correction("attns")) if extra else get_correction("attns")
    step = HybridStep(system.rhs, get_integrator("rk4"), 0.1, correction)
    data = TeacherForcedData(check_trajectory_set(X, system), 1, step, "cpu", 64)
    scaling = fit_field_scaling(correction, data.u, data.slope, data.residual, 0.1, n_fields=2)
    scaling = [expand_fields(value, system.layout.n_points) for value in scaling]
    net = build_network(system.n_state, depth=3, width=16, module="conv", layout=system.layout,
                        kernel_size=5, extra_inputs=extra)
    step = step.with_network(net, *scaling)
    with torch.no_grad():
        assert (step(data.u) - (data.u + 0.1 * data.slope)).abs().max() == 0  # starts as plain RK4
    losses = []
    train_epochs(step, data, loss_scale=scaling[2], max_epochs=15, batch_size=20, learning_rate=1e-2,
                 input_noise=0.0, generator=torch.Generator().manual_seed(0), stopper=EarlyStopping(0.0, 100),
                 log=lambda epoch, loss, score: losses.append(loss))
    print(f"extra_inputs={extra}: first epoch's loss {losses[0]:.3g}, last {losses[-1]:.3g}")
    assert losses[-1] < 0.5


def test_burgers_layout_reaches_the_network():
    system = Burgers(n_points=24)
    net = build_network(system.n_state, depth=2, width=4, module="conv", layout=system.layout)
    assert isinstance(net, LocalConvNet) and net.n_fields == 1
    assert net(torch.zeros(3, 24)).shape == (3, 24)
