"""The plotting helpers draw the data they are given: each line is checked against the
error or the trajectory computed here, with NumPy, from the same arrays."""

import sys

import numpy as np
import pytest

from sklearn_attns.plotting import plot_error_over_time, plot_trajectories

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402 (after the skip where matplotlib is missing)

DT = 0.25


@pytest.fixture
def data():
    """Reference and two predictions: 4 trajectories, 9 times, 3 components."""
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(4, 9, 3))
    drift = np.linspace(0.0, 1.0, 9)[None, :, None]
    return y_true, {"small drift": y_true + 0.01 * drift * rng.normal(size=(4, 1, 3)),
                    "large drift": y_true + 0.5 * drift * rng.normal(size=(4, 1, 3))}


def _axes(n=1):
    return Figure().subplots(1, n, squeeze=False).ravel()


def test_error_over_time_draws_the_mse_of_each_step(data):
    y_true, predictions = data
    ax = _axes()[0]
    assert plot_error_over_time(y_true, predictions, DT, ax=ax) is ax
    assert [line.get_label() for line in ax.lines] == list(predictions)
    for line, paths in zip(ax.lines, predictions.values(), strict=True):
        expected = ((paths - y_true) ** 2).mean(axis=(0, 2))
        np.testing.assert_allclose(line.get_xdata(), DT * np.arange(1, 9))
        np.testing.assert_allclose(line.get_ydata(), expected[1:], rtol=1e-12)
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "time" and "MSE" in ax.get_ylabel()
    assert [text.get_text() for text in ax.get_legend().get_texts()] == list(predictions)


def test_error_over_time_takes_curves_computed_already(data):
    y_true, predictions = data
    curves = {label: ((paths - y_true) ** 2).mean(axis=(0, 2)) for label, paths in predictions.items()}
    from_paths, from_curves = _axes(2)
    plot_error_over_time(y_true, predictions, DT, ax=from_paths)
    plot_error_over_time(None, curves, DT, ax=from_curves)
    for a, b in zip(from_paths.lines, from_curves.lines, strict=True):
        np.testing.assert_allclose(a.get_ydata(), b.get_ydata(), rtol=1e-12)
    with pytest.raises(ValueError, match="with y_true=None"):
        plot_error_over_time(None, {"paths": predictions["small drift"]}, DT, ax=_axes()[0])


def test_error_over_time_ends_a_line_where_the_rollout_blew_up(data):
    y_true, predictions = data
    blown = predictions["large drift"].copy()
    blown[1, 5:] = np.inf
    ax = plot_error_over_time(y_true, {"blown": blown}, DT, ax=_axes()[0])
    ydata = ax.lines[0].get_ydata()
    assert np.isfinite(ydata[:4]).all() and np.isnan(ydata[4:]).all()


def test_error_over_time_without_axes_makes_a_figure(data):
    plt = pytest.importorskip("matplotlib.pyplot")
    y_true, predictions = data
    try:
        # One trajectory as a 2-D array.
        ax = plot_error_over_time(y_true[0], {"one": predictions["small drift"][0]}, DT)
        expected = ((predictions["small drift"][0] - y_true[0]) ** 2).mean(axis=1)
        np.testing.assert_allclose(ax.lines[0].get_ydata(), expected[1:], rtol=1e-12)
    finally:
        plt.close("all")


def test_trajectories_draws_the_reference_and_each_prediction(data):
    y_true, predictions = data
    axes = plot_trajectories(y_true, predictions, DT, components=[2, 0], n_trajectories=2, axes=_axes(2))
    assert len(axes) == 2
    for ax, component in zip(axes, [2, 0], strict=True):
        assert ax.get_title() == f"component {component}" and ax.get_xlabel() == "time" and ax.get_ylabel()
        lines = ax.lines
        assert len(lines) == 2 * (1 + len(predictions))  # per trajectory: the reference and each prediction
        expected = []
        for i in range(2):
            expected.append(y_true[i, :, component])
            expected += [paths[i, :, component] for paths in predictions.values()]
        for line, values in zip(lines, expected, strict=True):
            np.testing.assert_array_equal(line.get_ydata(), values)
            np.testing.assert_allclose(line.get_xdata(), DT * np.arange(9))
    labels = [text.get_text() for text in axes[0].get_legend().get_texts()]
    assert labels == ["reference", *predictions]


def test_trajectories_shows_at_most_the_trajectories_there_are(data):
    y_true, predictions = data
    (ax,) = plot_trajectories(y_true, predictions, DT, components=1, n_trajectories=10, axes=_axes(1)[0])
    assert len(ax.lines) == len(y_true) * (1 + len(predictions))


@pytest.mark.parametrize("call, message", [
    (lambda y, p: plot_error_over_time(y, p, 0.0), "dt must be a positive"),
    (lambda y, p: plot_error_over_time(y, {}, DT), "predictions must be a non-empty dict"),
    (lambda y, p: plot_error_over_time(y, p["small drift"], DT), "predictions must be a non-empty dict"),
    (lambda y, p: plot_error_over_time(y, {"short": p["small drift"][:, :5]}, DT), "equal shape"),
    (lambda y, p: plot_trajectories(y, p, DT, components=[3]), r"must be state indices in \[0, 3\)"),
    (lambda y, p: plot_trajectories(y, p, DT, components=[-1]), "components must be"),
    (lambda y, p: plot_trajectories(y, p, DT, components=[]), "components must be"),
    (lambda y, p: plot_trajectories(y, p, DT, n_trajectories=0), "n_trajectories must be a positive int"),
    (lambda y, p: plot_trajectories(y, p, DT, components=[0, 1], axes=_axes(1)), "one Axes per component"),
    (lambda y, p: plot_trajectories(y, {"bad": p["small drift"][:2]}, DT), "equal shape"),
])
def test_bad_input_is_named(data, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(*data)


def test_missing_matplotlib_names_the_extra(data, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"sklearn-attns\[plot\]"):
        plot_error_over_time(*data, DT)
    with pytest.raises(ImportError, match=r"sklearn-attns\[plot\]"):
        plot_trajectories(*data, DT)
