"""``python -m sklearn_attns work-precision``: the report, the figure, option errors, and that the
report's speed-ups are those of its own measured rows."""

import itertools
import json
import math
import re

import numpy as np
import pytest

from sklearn_attns.experiments import work_precision as wp
from sklearn_attns.experiments.cli import main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One smoke run on the elastic pendulum (a few seconds)."""
    pytest.importorskip("matplotlib", reason="the figure needs matplotlib")
    out = tmp_path_factory.mktemp("wp")
    code = main(["work-precision", "--systems", "elastic", "--quick", "--out", str(out)])
    return code, out


@pytest.mark.slow  # trains and times a tiny solver: about 10 s on two shared cores
def test_quick_run_writes_report_figure_and_rows(quick_run):
    code, out = quick_run
    assert code == 0
    report = (out / "work_precision.md").read_text()
    assert "command: `python -m sklearn_attns work-precision --systems elastic --quick --out" in report
    assert "machine: " in report and "load average" in report
    assert (out / "work_precision_elastic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads((out / "work_precision_elastic.json").read_text())
    families = {row["family"] for row in rows}
    assert families == {"hybrid", "classical", "reference"}
    # Every measured row is in the report's table, with its error as measured.
    for row in rows:
        assert f"| {row['error']:.3e} |" in report


def _seconds_at(curve, error):
    """Independent of the library: least time reaching ``error`` on (error, seconds) points,
    interpolated linearly in log-log on the lower envelope; ('above', cheapest) when every
    point is more accurate, None when none is."""
    points = sorted(curve)
    envelope = []
    for e, s in points:
        if not envelope or s < envelope[-1][1]:
            envelope.append((e, s))
    if error < envelope[0][0]:
        return None
    if error > points[-1][0]:
        return "above", envelope[-1][1]
    if error >= envelope[-1][0]:
        return "ok", envelope[-1][1]
    for (e0, s0), (e1, s1) in itertools.pairwise(envelope):
        if e0 <= error <= e1:
            w = (math.log(error) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return "ok", math.exp((1 - w) * math.log(s0) + w * math.log(s1))
    raise AssertionError("unreachable")


@pytest.mark.slow  # trains and times a tiny solver: about 10 s on two shared cores
def test_report_speedup_matches_its_rows(quick_run):
    _, out = quick_run
    rows = json.loads((out / "work_precision_elastic.json").read_text())
    report = (out / "work_precision.md").read_text()
    (hybrid,) = [r for r in rows if r["family"] == "hybrid"]
    base = [(r["error"], r["seconds"]) for r in rows if r["family"] == "classical" and r["method"] == "rk4"]
    line = re.search(r"speed-up vs rk4 at finer steps: (.*)", report).group(1)
    status, seconds = _seconds_at(base, hybrid["error"])
    expected = seconds / hybrid["seconds"]
    if status == "ok":
        shown = float(line.split("x")[0])
    else:
        shown = float(re.search(r"bound ([0-9.e+-]+)x", line).group(1))
    assert shown == pytest.approx(expected, rel=5e-3)
    # k: the hybrid's step over the rk4 step reaching its error (log-log in steps per unit time).
    steps = [(r["error"], 1 / r["step"]) for r in rows if r["family"] == "classical" and r["method"] == "rk4"]
    k = re.search(r"c_net/c_step = ([-0-9.e+]+), k = ([0-9.e+na]+)", report)
    found = _seconds_at(steps, hybrid["error"])
    if found is not None and found[0] == "ok":
        assert float(k.group(2)) == pytest.approx(found[1] * hybrid["step"], rel=5e-3)
    plain = min(r["seconds"] for r in rows if r["method"] == "rk4" and np.isclose(r["step"], hybrid["step"]))
    assert float(k.group(1)) == pytest.approx(hybrid["seconds"] / plain - 1, rel=5e-3, abs=5e-3)


@pytest.mark.slow  # trains and times a tiny solver: about 10 s on two shared cores
def test_summary_table_row_per_hybrid(quick_run):
    _, out = quick_run
    report = (out / "work_precision.md").read_text()
    result = wp.load_rows(out / "work_precision_elastic.json")
    table = wp.summary_table({"elastic": result})
    assert table in report
    assert len(table.splitlines()) == 2 + sum(r["family"] == "hybrid" for r in result.rows)


@pytest.mark.parametrize("argv, option", [
    (["--systems", "pendulum"], "--systems"),
    (["--threads", "0"], "--threads"),
    (["--dt", "0.3", "--systems", "elastic"], "--dt"),
    (["--dt", "-1"], "--dt"),
    (["--integrator", "rk45"], "--integrator"),
    (["--epochs", "many"], "--epochs"),
    (["--widths", "0"], "--widths"),
    (["--substeps", "0"], "--substeps"),
    (["--device", "tpu"], "--device"),
    (["--fitted", "/no/such/folder"], "--fitted"),
])
def test_bad_option_exits_2_naming_it(argv, option, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["work-precision", *argv, "--quick"])
    assert excinfo.value.code == 2
    assert option in capsys.readouterr().err


@pytest.mark.slow  # trains and times a tiny solver: a few seconds
def test_substeps_override_reaches_the_solvers_and_the_report():
    setting = wp._resolved(wp.SETTINGS["elastic"], True, {"substeps": 2, "integrator": None})
    result, settings, _ = wp.run_system("elastic", setting, quick=True, say=lambda line: None)
    hybrids = [row for row in result.rows if row["family"] == "hybrid"]
    assert hybrids and all(row["substeps"] == 2 for row in hybrids)
    assert "dt 0.2 in 2 substeps" in settings
    rk4 = {row["step"] for row in result.curves()["rk4"]}  # --quick: the NumPy path only
    assert 0.1 in rk4  # the plain step inside a hybrid step, for c_net / c_step
    assert "in 2 substeps" in wp.summary_table({"elastic": result})


@pytest.mark.slow  # measures a tiny solver: a few seconds
def test_fitted_solvers_are_saved_and_measured_again_without_fitting(quick_run, tmp_path):
    """The run's OUT/models holds each fitted solver; --fitted measures them again: the same
    predictions (the same error on the same test trajectories), no fit; a solver fitted for
    another setting is refused, naming what differs."""
    _, out = quick_run
    setting = wp._resolved(wp.SETTINGS["elastic"], True, {})
    assert sorted(path.name for path in (out / "models").iterdir()) == [f"elastic_w{setting.widths[0]}.npz"]
    result, _, timings = wp.run_system("elastic", setting, quick=True, fitted=out / "models",
                                       models=tmp_path / "models", say=lambda line: None)
    assert "loaded from" in timings and "fit w" not in timings
    assert not (tmp_path / "models").exists()  # nothing fitted, nothing saved
    stored = json.loads((out / "work_precision_elastic.json").read_text())
    first = {row["method"]: row["error"] for row in stored if row["family"] == "hybrid"}
    assert {row["method"]: row["error"] for row in result.rows if row["family"] == "hybrid"} == first
    other = wp._resolved(wp.SETTINGS["elastic"], True, {"dt": 0.1})
    with pytest.raises(wp.FittedSolverMismatch, match=r"fitted with .*'dt': 0.2.* needs .*'dt': 0.1"):
        wp.run_system("elastic", other, quick=True, fitted=out / "models", say=lambda line: None)


@pytest.mark.slow  # fits and times tiny polynomials: a few seconds
def test_polynomial_settings_fit_one_solver_per_degree_and_measure_them_again(tmp_path, capsys):
    argv = ["work-precision", "--systems", "klink_poly", "--quick", "--degrees", "1", "2"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    report = (tmp_path / "a" / "work_precision.md").read_text()
    assert "polynomial degrees [1, 2]" in report and "float64 network" in report
    assert "| AttNS poly1 |" in report and "| AttNS poly2 |" in report
    models = tmp_path / "a" / "models"
    assert sorted(path.name for path in models.iterdir()) == ["klink_poly_poly1.npz", "klink_poly_poly2.npz"]
    assert main([*argv, "--out", str(tmp_path / "b"), "--fitted", str(models)]) == 0
    first, again = (json.loads((tmp_path / run / "work_precision_klink_poly.json").read_text())
                    for run in "ab")
    assert ({row["method"]: row["error"] for row in first if row["family"] == "hybrid"}
            == {row["method"]: row["error"] for row in again if row["family"] == "hybrid"})
    assert "loaded from" in capsys.readouterr().out


@pytest.mark.slow  # makes the test data of a tiny run: a second
def test_fitted_solver_of_another_setting_exits_2_naming_it(quick_run, tmp_path, capsys):
    _, out = quick_run
    with pytest.raises(SystemExit) as excinfo:
        main(["work-precision", "--systems", "elastic", "--quick", "--dt", "0.1",
              "--fitted", str(out / "models"), "--out", str(tmp_path)])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "--fitted" in err and "elastic_w8.npz was fitted with" in err


def test_out_that_is_a_file_exits_2(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(SystemExit) as excinfo:
        main(["work-precision", "--out", str(path / "sub"), "--quick"])
    assert excinfo.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_settings_table_is_complete():
    assert set(wp.SETTINGS) == {"elastic", "elastic_heun", "elastic_dop853", "elastic_poly", "klink",
                                "klink_heun", "klink_euler", "klink_dop853", "klink_poly", "chain", "nbody",
                                "burgers", "grayscott"}
    for name, setting in wp.SETTINGS.items():
        # The test outputs are whole hybrid steps apart and within the training horizon.
        ratio = setting.test_spacing / setting.dt
        assert ratio == pytest.approx(round(ratio)), name
        assert setting.steps * setting.test_spacing <= setting.train_steps * setting.dt + 1e-12, name
        assert setting.why, name
    for name in ("burgers", "grayscott"):
        params = wp.SETTINGS[name].params
        assert (params["module"], params["state_input"]) == ("conv", True)
        assert wp.SETTINGS[name].n_train <= 100
