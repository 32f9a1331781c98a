"""Grid layouts: the field-major convention, periodic shifts and per-field scaling,
each checked against index arithmetic written out here."""

import pickle

import numpy as np
import pytest
import torch

from sklearn_attns.grids import GridLayout, expand_fields, field_scale, roll


def test_field_major_convention_by_index():
    layout = GridLayout(n_points=5, n_fields=3)
    u = np.random.RandomState(0).normal(size=(4, 15))
    g = layout.to_grid(u)
    assert g.shape == (4, 3, 5)
    for f in range(3):
        for i in range(5):
            np.testing.assert_array_equal(g[:, f, i], u[:, f * 5 + i])
    np.testing.assert_array_equal(layout.from_grid(g), u)


def test_layout_on_torch_keeps_dtype_and_device():
    layout = GridLayout(n_points=4, n_fields=2)
    u = torch.arange(16, dtype=torch.float32).reshape(2, 8)
    g = layout.to_grid(u)
    assert isinstance(g, torch.Tensor) and g.dtype == torch.float32 and g.shape == (2, 2, 4)
    assert g[1, 1, 2].item() == u[1, 4 + 2].item()
    assert torch.equal(layout.from_grid(g), u)


def test_layout_shape_errors_name_the_layout():
    layout = GridLayout(n_points=4, n_fields=2)
    with pytest.raises(ValueError, match="n_fields \\* n_points"):
        layout.to_grid(np.zeros((3, 7)))
    with pytest.raises(ValueError, match="n_fields, n_points"):
        layout.from_grid(np.zeros((3, 4, 2)))


@pytest.mark.parametrize("bad, name", [(dict(n_points=0), "n_points"),
                                       (dict(n_points=4, n_fields=0), "n_fields"),
                                       (dict(n_points=4, boundary="open"), "boundary"),
                                       (dict(n_points=4, spacing=-1.0), "spacing"),
                                       (dict(n_points=2.5), "n_points")])
def test_layout_rejects_bad_parameters(bad, name):
    with pytest.raises((ValueError, TypeError), match=name):
        GridLayout(**bad)


def test_layout_geometry():
    periodic = GridLayout(n_points=8, spacing=0.25)
    assert periodic.length == 2.0 and periodic.n_state == 8
    np.testing.assert_allclose(periodic.coordinates(), 0.25 * np.arange(8))
    fixed = GridLayout(n_points=3, boundary="fixed", spacing=0.25)  # walls at 0 and 1
    assert fixed.length == 1.0
    np.testing.assert_allclose(fixed.coordinates(), [0.25, 0.5, 0.75])
    longer = periodic.with_points(16)
    assert longer.spacing == periodic.spacing and longer.length == 4.0 and longer.boundary == "periodic"


def test_layout_is_a_value():
    layout = GridLayout(n_points=4, n_fields=2, spacing=0.5)
    same = GridLayout(4, 2, "periodic", 0.5)
    assert layout == same and hash(layout) == hash(same)
    assert pickle.loads(pickle.dumps(layout)) == layout
    with pytest.raises(AttributeError):
        layout.n_points = 5


@pytest.mark.parametrize("shift", [-3, -1, 0, 1, 2, 7])
@pytest.mark.parametrize("backend", [np.asarray, torch.as_tensor])
def test_roll_is_the_periodic_index_shift(shift, backend):
    g = np.random.RandomState(1).normal(size=(2, 3, 5))
    out = np.asarray(roll(backend(g), shift))
    for i in range(5):
        np.testing.assert_array_equal(out[..., i], g[..., (i - shift) % 5])


@pytest.mark.parametrize("backend", [np.asarray, torch.as_tensor])
def test_field_scale_pools_batch_and_points(backend):
    rng = np.random.RandomState(2)
    x = np.concatenate([rng.normal(3.0, 2.0, size=(50, 6)), rng.normal(-1.0, 0.5, size=(50, 6)),
                        np.full((50, 6), 7.0)], 1)
    mean, scale = field_scale(backend(x), n_fields=3)
    for f in range(3):
        block = x[:, 6 * f : 6 * (f + 1)]
        assert float(mean[f]) == pytest.approx(block.mean(), rel=1e-12)
        expected = block.std() if f < 2 else 1.0  # a constant field gets scale 1
        assert float(scale[f]) == pytest.approx(expected, rel=1e-12)
    mean, rms = field_scale(backend(x), n_fields=3, centre=False)
    expected = [np.sqrt((x[:, 6 * f : 6 * (f + 1)] ** 2).mean()) for f in range(3)]
    np.testing.assert_allclose(np.asarray(rms), expected)
    np.testing.assert_array_equal(np.asarray(mean), 0.0)
    with pytest.raises(ValueError, match="n_fields"):
        field_scale(backend(x), n_fields=4)


@pytest.mark.parametrize("backend", [np.asarray, torch.as_tensor])
def test_expand_fields_is_field_major(backend):
    out = np.asarray(expand_fields(backend(np.array([1.0, 2.0, 3.0])), 2))
    np.testing.assert_array_equal(out, [1.0, 1.0, 2.0, 2.0, 3.0, 3.0])
    layout = GridLayout(n_points=2, n_fields=3)
    np.testing.assert_array_equal(layout.to_grid(out[None])[0, :, 0], [1.0, 2.0, 3.0])
