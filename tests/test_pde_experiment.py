"""``reproduce pde``: the PDE systems' experiment runs, resumes, writes its table over seeds,
and its plain-RK4 row is the error of an RK4 rollout written out here.

The per-system settings are shrunk for the tests (16 grid points, a short horizon, a
coarse fine step) by changing the one table that holds them, ``PDE_SETTINGS``.
"""

import csv

import numpy as np
import pytest
import torch

from sklearn_attns.__main__ import main
from sklearn_attns.datasets import load_pde_trajectories
from sklearn_attns.experiments import EXPERIMENTS, SCALES, format_mse, run_experiment, with_overrides
from sklearn_attns.experiments import cells as cells_module
from sklearn_attns.experiments import run as run_module
from sklearn_attns.systems import Burgers, FitzHughNagumo, GrayScott

pytest.importorskip("matplotlib")

SMALL = {
    "burgers": cells_module.PDESetting(Burgers(n_points=16), dt=0.05, t_end=0.5, fine_dt=0.01, n_train=8,
                                       n_test=4),
    "fhn": cells_module.PDESetting(FitzHughNagumo(n_points=8), dt=0.1, t_end=0.5, fine_dt=0.02, n_train=8,
                                   n_test=4),
    "grayscott": cells_module.PDESetting(GrayScott(n_points=8), dt=0.5, t_end=2.0, fine_dt=0.1, n_train=8,
                                         n_test=4),
}
SCALE = with_overrides(SCALES["tiny"], data={"burgers": 1.0, "fhn": 1.0, "grayscott": 1.0}, max_epochs=1,
                       seeds=(0, 1))


@pytest.fixture(autouse=True)
def _small_settings(monkeypatch):
    for name, setting in SMALL.items():
        monkeypatch.setitem(cells_module.PDE_SETTINGS, name, setting)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(out, **kwargs):
    return run_experiment("pde", SCALE, out=out, device="cpu", verbose=0, **kwargs)


def _rk4_rollout(rhs, u0, dt, n_steps):
    """Classical RK4 at step ``dt``, written out (float64)."""
    u, path = u0, [u0]
    for _ in range(n_steps):
        k1 = rhs(u)
        k2 = rhs(u + dt / 2 * k1)
        k3 = rhs(u + dt / 2 * k2)
        k4 = rhs(u + dt * k3)
        u = u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        path.append(u)
    return np.stack(path, axis=1)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_cells_cover_systems_methods_fractions_and_seeds():
    cells = EXPERIMENTS["pde"].cells(SCALES["medium"])
    trained = [c for c in cells if c.correction != "none"]
    assert {c.benchmark for c in cells} == {"burgers", "fhn", "grayscott"}
    assert {c.data_fraction for c in cells} == {0.25, 0.5, 1.0}
    assert {c.seed for c in trained} == {0, 1, 2}
    assert {(c.correction, dict(c.params)["module"], dict(c.params).get("state_input", False))
            for c in trained} == {("attns", "mlp", False), ("attns", "conv", True),
                                  ("neurvec", "conv", False), ("csm", "conv", False)}
    # One plain RK4 cell per system and fraction (it has nothing to seed); 4 methods x 3 seeds beside it.
    assert len(cells) == 3 * 3 * (1 + 4 * 3)


@pytest.mark.slow
def test_runs_resumes_and_writes_the_table_over_seeds(tmp_path, monkeypatch):
    records, paths = _run(tmp_path, only="burgers*")
    assert {r["system"] for r in records} == {"Burgers"}
    assert len(records) == 3 * (1 + 4 * 2) and paths["figure"].exists()
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "Not run yet (54 of 81 cells" in markdown
    # One row per system, fraction and method: the two seeds are pooled into a mean and its spread.
    table = [line for line in markdown.splitlines() if line.startswith("| Burgers |")]
    assert len(table) == 3 * 5
    local = next(line for line in table if "| 50% | AttNS | local (conv), slope + state |" in line)
    mse = [r["mse"] for r in records if r["data"] == "50%" and r["variant"] == "local (conv), slope + state"]
    plain = next(r["mse"] for r in records if r["data"] == "50%" and r["correction"] == "plain solver")
    assert len(mse) == 2
    assert f"| {format_mse(np.mean(mse))} ± {format_mse(np.std(mse, ddof=1))} |" in local
    assert f"| {plain / np.mean(mse):.3g} |" in local
    assert f"| {format_mse(min(mse))} – {format_mse(max(mse))} |" in local

    # Resume: a second run fits nothing and writes the same table.
    monkeypatch.setattr(run_module, "run_cell",
                        lambda *args, **kwargs: pytest.fail("a finished cell ran again"))
    again, paths = _run(tmp_path, only="burgers*")
    assert [r["mse"] for r in again] == [r["mse"] for r in records]
    assert paths["markdown"].read_text(encoding="utf-8") == markdown

    # A changed setting of the system is a new experiment: its cells run again.
    class Reran(Exception):
        pass

    def rerun(cell, *args, **kwargs):
        raise Reran(cell.key)

    monkeypatch.setattr(run_module, "run_cell", rerun)
    monkeypatch.setitem(cells_module.PDE_SETTINGS, "burgers",
                        cells_module.PDESetting(Burgers(n_points=16), dt=0.1, t_end=0.5, fine_dt=0.01,
                                                n_train=8, n_test=4))
    with pytest.raises(Reran, match="burgers-rk4-none-data25"):
        _run(tmp_path, only="burgers*")


@pytest.mark.slow
def test_plain_rk4_row_equals_an_rk4_rollout_written_out(tmp_path):
    _, paths = _run(tmp_path, only="fhn-rk4-none-*")
    setting = SMALL["fhn"]
    n_train, n_test = setting.sizes(SCALE.data["fhn"])
    data = load_pde_trajectories(setting.system, n_train, n_test, setting.t_end, setting.dt, setting.fine_dt,
                                 random_state=SCALE.random_state)
    X = data.test
    paths_rk4 = _rk4_rollout(setting.system.rhs, X[:, 0], setting.dt, X.shape[1] - 1)
    expected = np.mean((paths_rk4[:, 1:] - X[:, 1:]) ** 2)
    plain = [r for r in _rows(paths["csv"])
             if r["correction"] == "plain solver" and r["system"] == "FitzHugh-Nagumo"]
    assert len(plain) == 3
    for row in plain:
        assert float(row["mse"]) == pytest.approx(expected, rel=1e-9)
    rows = [line for line in paths["markdown"].read_text(encoding="utf-8").splitlines()
            if line.startswith("| FitzHugh-Nagumo |") and "RK4 (plain)" in line]
    assert len(rows) == 3 and all(f"| {format_mse(expected)} |" in line for line in rows)


def test_pde_data_is_float64_made_once_and_cached(data_home):
    setting = SMALL["burgers"]
    args = (setting.system, 3, 2, setting.t_end, setting.dt, setting.fine_dt)
    first = load_pde_trajectories(*args)
    assert first.train.dtype == np.float64
    assert first.train.shape == (3, 11, 16) and first.test.shape == (2, 11, 16)
    stamp = first.path.stat().st_mtime_ns
    second = load_pde_trajectories(*args)
    assert second.path == first.path and second.path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(second.train, first.train)
    # The splits are drawn with different seeds, and another seed is other data.
    assert not np.allclose(first.train[:2, 0], first.test[:, 0])
    assert load_pde_trajectories(*args, random_state=1).path != first.path


@pytest.mark.parametrize("name, value, expected", [
    ("n_train", 0, "n_train must be >= 1"),
    ("fine_dt", 0.03, "dt=0.05 must be a positive integer multiple of fine_dt=0.03"),
])
def test_pde_loader_names_bad_arguments(name, value, expected, data_home):
    kwargs = {"system": Burgers(n_points=16), "n_train": 2, "n_test": 2, "t_end": 0.5, "dt": 0.05,
              "fine_dt": 0.01}
    kwargs[name] = value
    with pytest.raises(ValueError, match=expected):
        load_pde_trajectories(**kwargs)


def test_reproduce_help_lists_pde(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    assert "pde" in help_text and "FitzHugh-Nagumo" in help_text
