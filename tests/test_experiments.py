"""The reproduction commands: every experiment's path at a tiny size, outputs, resume, CLI.

Each experiment runs end to end on a handful of trajectories with one epoch and a
16-unit network, which checks the plumbing (data, fits, rollouts, CSV, Markdown, figure),
not the numbers.
"""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import interrupt_training_after, subnormal_reads_as_zero

from sklearn_attns import experiments
from sklearn_attns.__main__ import main
from sklearn_attns.experiments import (
    EXPERIMENTS,
    SCALES,
    figures,
    format_mse,
    run_experiment,
    top_second_derivative,
    with_overrides,
)
from sklearn_attns.experiments import cells as cells_module
from sklearn_attns.experiments import run as run_module

pytest.importorskip("matplotlib")

TINY = with_overrides(SCALES["tiny"], max_epochs=1)
NAMES = ("fig3", "fig4", "fig5", "table1", "table2", "appendix-d1")  # the paper's


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks run fastest on one thread, and a busy machine cannot stall them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _run(name, out, scale=TINY, **kwargs):
    return run_experiment(name, scale, out=out, device="cpu", verbose=0, **kwargs)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Each experiment run once at the tiny size for the module: ``finished(name) -> (records, paths)``."""
    done = {}

    def get(name):
        if name not in done:
            done[name] = _run(name, tmp_path_factory.mktemp(name))
        return done[name]

    return get


def test_the_experiments_are_registered():
    # The paper's six, then the PDE experiment (tests/test_pde_experiment.py).
    assert tuple(EXPERIMENTS) == NAMES + ("pde",)


@pytest.mark.parametrize("name", NAMES)
def test_experiment_writes_csv_markdown_and_figure(name, finished):
    records, paths = finished(name)
    tmp_path = paths["csv"].parent
    n_cells = len(EXPERIMENTS[name].cells(TINY))
    assert len(records) == n_cells
    assert set(paths) == {"csv", "markdown", "figure"}
    for path in paths.values():
        assert path.parent == tmp_path and path.stat().st_size > 0
    assert paths["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((tmp_path / "cells").glob("*.json"))) == n_cells

    with open(paths["csv"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == n_cells
    assert {"mse", "paper_mse", "fit_s", "method"} <= set(rows[0])
    assert all(float(row["mse"]) >= 0 for row in rows)

    markdown = paths["markdown"].read_text(encoding="utf-8")
    header = next(line for line in markdown.splitlines() if line.startswith("| "))
    assert "MSE (ours)" in header and "MSE (paper)" in header
    assert "Scale **tiny**" in markdown
    assert len([line for line in markdown.splitlines() if line.startswith("| ")]) == n_cells + 1


@pytest.mark.parametrize("name, number", [("fig4", "4.26e-9"), ("table1", "2.56e-8"), ("table2", "3.64e-4"),
                                          ("appendix-d1", "8.54e-8")])
def test_markdown_puts_the_papers_numbers_beside_ours(name, number, finished):
    _, paths = finished(name)
    assert number in paths["markdown"].read_text(encoding="utf-8")


def test_table1_reports_relative_inference_speed(finished):
    records, paths = finished("table1")
    speeds = {r["variant"]: r["rel_speed"] for r in records if r["system"] == "2-link pendulum"}
    assert speeds[experiments.DEFAULT_VARIANT] == "reference"
    others = [v for k, v in speeds.items() if k != experiments.DEFAULT_VARIANT]
    assert len(others) == 4 and all(v[0] in "↑↓" and v.endswith("%") for v in others)
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "Rel. infer. speed (ours)" in markdown and "↓ 93.95%" in markdown


@pytest.fixture
def cells_run(monkeypatch):
    """The keys of the cells that ``run_cell`` runs from now on, in order."""
    calls = []
    real_run_cell = run_module.run_cell

    def counting_run_cell(cell, *args, **kwargs):
        calls.append(cell.key)
        return real_run_cell(cell, *args, **kwargs)

    monkeypatch.setattr(run_module, "run_cell", counting_run_cell)
    return calls


def test_resume_skips_finished_cells_and_reruns_changed_ones(tmp_path, request):
    first, _ = _run("appendix-d1", tmp_path)
    calls = request.getfixturevalue("cells_run")
    again, paths = _run("appendix-d1", tmp_path)
    assert calls == []
    assert [r["mse"] for r in again] == [r["mse"] for r in first]
    assert paths["markdown"].exists()

    # One cell lost: only it runs again.
    lost = min((tmp_path / "cells").glob("*.json"))
    lost.unlink()
    _run("appendix-d1", tmp_path)
    assert calls == [lost.stem]

    # A damaged file is run again, not trusted.
    calls.clear()
    lost.write_text("{not json", encoding="utf-8")
    _run("appendix-d1", tmp_path)
    assert calls == [lost.stem]

    # Other settings (here the epochs) make the stored cells stale.
    calls.clear()
    _run("appendix-d1", tmp_path, scale=with_overrides(TINY, max_epochs=2))
    assert len(calls) == len(first)

    # resume=False reruns everything.
    calls.clear()
    _run("appendix-d1", tmp_path, scale=with_overrides(TINY, max_epochs=2), resume=False)
    assert len(calls) == len(first)


def test_report_writes_the_finished_cells_and_lists_the_others(tmp_path, monkeypatch, capsys):
    records, _ = _run("appendix-d1", tmp_path)
    kept = min((tmp_path / "cells").glob("*.json"))
    for path in (tmp_path / "cells").glob("*.json"):
        if path != kept:
            path.unlink()

    def fail(*args, **kwargs):
        raise AssertionError("report_only ran a cell")

    monkeypatch.setattr(run_module, "run_cell", fail)
    reported, paths = _run("appendix-d1", tmp_path, report_only=True)
    assert len(reported) == 1 and reported[0]["mse"] in [r["mse"] for r in records]
    with open(paths["csv"], newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 1
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert f"Not run yet ({len(records) - 1} of {len(records)} cells" in markdown
    assert markdown.split("Not run yet")[1].split("): ")[1].count("; ") == len(records) - 2  # each one named
    assert paths["figure"].exists()

    # The command-line flag; it cannot be combined with --fresh.
    assert main(["reproduce", "appendix-d1", "--scale", "tiny", "--out", str(tmp_path), "--epochs", "1",
                 "--device", "cpu", "--report"]) == 0
    assert "not run yet" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["reproduce", "appendix-d1", "--report", "--fresh"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(ValueError, match="report_only=True .* resume=True"):
        _run("appendix-d1", tmp_path, report_only=True, resume=False)


def test_only_runs_the_matching_cells_and_reports_the_whole_experiment(tmp_path, cells_run, capsys):
    calls = cells_run
    all_keys = [cell.key for cell in EXPERIMENTS["appendix-d1"].cells(TINY)]
    klink = [key for key in all_keys if key.startswith("klink_pendulum")]
    assert 0 < len(klink) < len(all_keys)

    records, paths = _run("appendix-d1", tmp_path, only="klink_pendulum*")
    assert calls == klink
    assert {r["system"] for r in records} == {"2-link pendulum"}
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert f"Not run yet ({len(all_keys) - len(klink)} of {len(all_keys)} cells" in markdown

    # A second part (patterns from the command line) completes the experiment.
    calls.clear()
    assert main(["reproduce", "appendix-d1", "--scale", "tiny", "--out", str(tmp_path), "--epochs", "1",
                 "--device", "cpu", "--only", "elastic*-none-*", "--only", "elastic*-neurvec-*",
                 "--only", "*elastic*-attns-*"]) == 0
    assert sorted(calls) == sorted(set(all_keys) - set(klink))
    markdown = paths["markdown"].read_text(encoding="utf-8")
    assert "Not run yet" not in markdown and markdown.count("Elastic pendulum") == len(calls)

    with pytest.raises(SystemExit):
        main(["reproduce", "appendix-d1", "--scale", "tiny", "--only", "spring_mass*"])
    assert "matches none of the 6 cells of appendix-d1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "appendix-d1", "--only", "klink*", "--report"])
    assert "--report runs none" in capsys.readouterr().err
    with pytest.raises(TypeError, match="only must be a pattern"):
        _run("appendix-d1", tmp_path, only=[])
    with pytest.raises(ValueError, match="report_only=True runs no cell"):
        _run("appendix-d1", tmp_path, only="klink*", report_only=True)


def test_stored_cell_holds_settings_and_result(finished):
    _, paths = finished("fig4")
    cells = paths["csv"].parent / "cells"
    stored = json.loads(next(cells.glob("*attns-data50.json")).read_text(encoding="utf-8"))
    assert stored["settings"]["max_epochs"] == 1 and stored["settings"]["correction"] == "attns"
    assert {"mse", "mse_per_step", "loss_curve", "fit_s", "predict_s"} <= set(stored["result"])


def test_reproduce_help_lists_the_six_experiments():
    result = subprocess.run([sys.executable, "-m", "sklearn_attns", "reproduce", "--help"],
                            capture_output=True, text=True, check=True)
    for name in NAMES:
        assert name in result.stdout
    assert "--scale" in result.stdout and "tiny" not in result.stdout


def test_bad_experiment_name_errors_clearly(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "fig9"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'fig9'" in err and "appendix-d1" in err
    with pytest.raises(ValueError, match="unknown experiment 'fig9'.*table1"):
        run_experiment("fig9")


def test_bad_scale_errors_clearly(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "fig4", "--scale", "huge"])
    assert "invalid scale 'huge' (choose from quick, medium, paper)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown scale"):
        run_experiment("fig4", "huge")


def test_cli_runs_an_experiment_at_the_hidden_tiny_scale(tmp_path, capsys, monkeypatch):
    out = tmp_path / "d1"
    modes, run = [], run_module.run_experiment
    monkeypatch.setattr(run_module, "run_experiment",
                        lambda *a, **k: modes.append(subnormal_reads_as_zero()) or run(*a, **k))
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU has no flush-to-zero mode (torch.set_flush_denormal returns False)")
    assert main(["reproduce", "appendix-d1", "--scale", "tiny", "--out", str(out), "--device", "cpu",
                 "--epochs", "1", "--verbose"]) == 0
    # The whole command runs with subnormals flushed; the caller's mode is back after it.
    assert modes == [True] and not subnormal_reads_as_zero()
    assert (out / "appendix-d1.md").exists() and (out / "appendix-d1.png").exists()
    printed = capsys.readouterr().out
    assert "appendix-d1 finished" in printed
    # --verbose names each cell before it runs and prints the epochs of those that train.
    cells = experiments.EXPERIMENTS["appendix-d1"].cells(SCALES["tiny"])
    assert printed.count(": running") == len(cells)
    assert printed.count("epoch 1/1: loss") == sum(c.correction != "none" for c in cells) > 0


def test_demo_prints_the_table_and_writes_the_figures(tmp_path, capsys, monkeypatch, request):
    monkeypatch.setattr(cells_module, "DEMO_SCALE", with_overrides(TINY, data={"spring_mass": 0.002}))
    assert main(["demo", "--out", str(tmp_path), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "| Spring-mass |" in printed and "AttNS" in printed and "NeurVec" in printed
    assert "RK4 (plain)" in printed
    for name, what in (("demo.png", "test MSE"), ("demo_error.png", "test MSE over time"),
                       ("demo_trajectories.png", "trajectories")):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figure ({what}): {tmp_path / name}" in printed

    # Each cell keeps the reference and its prediction of the first test trajectories.
    n_state = 2 * TINY.n_masses
    cell_files = sorted((tmp_path / "cells").glob("*.json"))
    assert len(cell_files) == 3
    stored = [json.loads(path.read_text(encoding="utf-8"))["result"]["paths"] for path in cell_files]
    for paths in stored:
        true, predicted = np.array(paths["true"]), np.array(paths["predicted"])
        assert true.shape == predicted.shape and true.shape[0] == experiments.DEMO.keep_paths
        assert true.shape[2] == n_state
        np.testing.assert_array_equal(true, stored[0]["true"])
        np.testing.assert_array_equal(predicted[:, 0], true[:, 0])  # the same initial states

    # A stored cell without them (made before the figures needed them) is run again.
    calls = request.getfixturevalue("cells_run")
    content = json.loads(cell_files[0].read_text(encoding="utf-8"))
    del content["result"]["paths"]
    cell_files[0].write_text(json.dumps(content), encoding="utf-8")
    assert main(["demo", "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert calls == [cell_files[0].stem]


def test_demo_uses_the_paper_network_on_the_twenty_mass_chain():
    cells = experiments.DEMO.cells(experiments.DEMO_SCALE)
    assert [c.correction for c in cells] == ["none", "neurvec", "attns"]
    assert {c.n_masses for c in cells} == {20} and {c.data_fraction for c in cells} == {0.5}
    assert dict(cells[-1].paper)["mse"] == 2.58e-6


def test_missing_matplotlib_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"sklearn-attns\[plot\]"):
        _run("appendix-d1", tmp_path)
    assert (tmp_path / "appendix-d1.csv").exists() and (tmp_path / "appendix-d1.md").exists()
    assert main(["reproduce", "appendix-d1", "--scale", "tiny", "--out", str(tmp_path), "--device", "cpu",
                 "--epochs", "1"]) == 1
    assert "matplotlib" in capsys.readouterr().err


def test_quick_scale_says_what_differs_from_the_paper():
    note = SCALES["quick"].note
    assert "256" in note and "1024" in note and "epochs" in note
    assert SCALES["paper"].width == 1024 and SCALES["paper"].data["spring_mass"] == "paper"


def test_top_second_derivative_picks_the_most_curved_trajectories():
    t = np.linspace(0.0, 2.0, 21)
    X = np.stack([np.sin(w * t) for w in (1.0, 3.0, 0.5, 6.0, 2.0, 0.1, 0.2, 0.3, 0.4, 0.6)])[:, :, None]
    np.testing.assert_array_equal(top_second_derivative(X, 0.1), [3])
    np.testing.assert_array_equal(top_second_derivative(X, 0.1, fraction=0.2), [1, 3])
    assert len(top_second_derivative(X[:3], 0.1)) == 1  # at least one


def test_format_mse():
    assert format_mse(2.58e-6) == "2.58e-6"
    assert format_mse(4.33) == "4.33e0"
    assert format_mse(float("inf")) == "blew up"
    assert format_mse("") == "—"


def test_cell_keys_are_unique_within_each_experiment():
    for scale in SCALES.values():
        for experiment in EXPERIMENTS.values():
            keys = [cell.key for cell in experiment.cells(scale)]
            assert len(keys) == len(set(keys)), experiment.name


@pytest.mark.parametrize("other, ours, expected", [
    (0.4, 2e-6, "200,000x lower test MSE"),
    (3e-6, 2e-6, "1.50x lower test MSE"),
    (1e-6, 2e-6, "2.00x higher test MSE"),
    (float("inf"), 2e-6, "test MSE 2e-06 against inf"),
])
def test_demo_summary_ratio(other, ours, expected):
    from sklearn_attns.experiments.cli import _ratio

    assert _ratio(other, ours) == expected


def test_bar_chart_legend_names_every_series_once(tmp_path, monkeypatch):
    """Table 2's LSTM and Transformer rows have no spring-mass bar, so they first appear
    in the second panel; the legend must still name them (and nothing twice)."""
    panels = (("chain", ("Ours", "w/ skip")), ("pendulum", ("Ours", "LSTM", "Transformer")))
    records = [{"system": system, "variant": variant, "mse": 1e-6, "paper_mse": ""}
               for system, variants in panels for variant in variants]
    shown = {}
    monkeypatch.setattr(figures, "_finish",
                        lambda figure, handles, labels, title, path: shown.update(labels=labels))
    figures.bar_chart(records, tmp_path / "t.png", panels=("system",), series="variant")
    assert shown["labels"] == ["Ours", "w/ skip", "LSTM", "Transformer"]


@pytest.mark.parametrize("chart", ["bar_chart", "curve_chart"])
def test_charts_are_not_cut_at_the_image_edges(tmp_path, chart):
    """A long legend label (Table 1's 'Ours (h = 2, d1 = 1024)') on a one-panel figure was
    cut off at the right edge: every edge of the saved image must be background."""
    import matplotlib.image

    long_label = "Ours (h = 2, d1 = 1024), a long legend label"
    records = [{"system": "chain", "variant": variant, "mse": mse, "paper_mse": "", "data": "50%",
                "loss_curve": [1.0, 0.1], "mse_per_step": [0.0, mse, 2 * mse], "dt": 0.1}
               for variant, mse in ((long_label, 1e-6), ("h = 3", 1e-5))]
    path = tmp_path / "chart.png"
    if chart == "bar_chart":
        figures.bar_chart(records, path, panels=("system",), series="variant", title="one panel")
    else:
        figures.curve_chart(records, path, panels="data", series="variant", title="one panel")
    image = matplotlib.image.imread(path)[..., :3]
    for edge in (image[0], image[-1], image[:, 0], image[:, -1]):
        assert np.all(edge > 0.95), "something is drawn on the image's edge: the figure was cut"


def test_corrections_and_integrators_come_from_the_library_registries():
    from sklearn_attns.corrections import CORRECTIONS
    from sklearn_attns.integrators import INTEGRATORS

    assert set(experiments.CORRECTIONS) == {c.name for c in CORRECTIONS.values()} == set(CORRECTIONS)
    assert len(experiments.CORRECTIONS) == len(set(experiments.CORRECTIONS))
    # The plain integrator first, then the paper's order (Fig. 3's legend).
    assert experiments.CORRECTIONS[:6] == ("none", "attns", "attns-m", "neurvec", "csm", "fsnet")
    # Each method once, whatever aliases the registry holds; by order of accuracy.
    assert experiments.INTEGRATORS == ("euler", "heun", "rk3", "rk4")
    assert set(experiments.INTEGRATORS) == {i.name for i in INTEGRATORS.values() if i.order <= 4}
    assert "improved_euler" not in experiments.INTEGRATORS
    # Each has the paper's name (a new one in the library shows its registry name until it gets one).
    assert set(cells_module.METHOD_NAMES) | {"none"} == set(CORRECTIONS)
    assert set(cells_module.INTEGRATOR_NAMES) == set(experiments.INTEGRATORS)
    fig3 = EXPERIMENTS["fig3"].cells(TINY)
    assert {c.correction for c in fig3} == set(CORRECTIONS)
    assert [c.integrator for c in fig3][::len(fig3) // 4] == list(experiments.INTEGRATORS)


def test_with_overrides_records_what_it_changes():
    quick = SCALES["quick"]
    assert with_overrides(quick) is quick and with_overrides(quick, max_epochs=None) is quick
    five = with_overrides(quick, max_epochs=5)
    assert five.changes == (("max_epochs", 30, 5),)
    assert "with 5 training epochs instead of its 30" in five.describe()
    # Composed changes keep the scale's own value; a change back to it is no change.
    assert with_overrides(five, max_epochs=7).changes == (("max_epochs", 30, 7),)
    assert with_overrides(five, max_epochs=30).changes == ()
    assert with_overrides(five, batch_size=64).changes == (("max_epochs", 30, 5), ("batch_size", 512, 64))
    with pytest.raises(TypeError, match="cannot change"):
        with_overrides(quick, epochs=5)


def test_markdown_header_says_when_epochs_override_the_scale(tmp_path):
    """--epochs 1 at the tiny scale (2 epochs): the table was made with 1 epoch, and says so."""
    assert main(["reproduce", "appendix-d1", "--scale", "tiny", "--epochs", "1", "--out", str(tmp_path),
                 "--device", "cpu", "--report"]) == 0
    header = (tmp_path / "appendix-d1.md").read_text(encoding="utf-8").splitlines()[2]
    assert header.startswith("Scale **tiny**, with 1 training epoch instead of its 2:"), header
    assert main(["reproduce", "appendix-d1", "--scale", "tiny", "--out", str(tmp_path), "--report"]) == 0
    header = (tmp_path / "appendix-d1.md").read_text(encoding="utf-8").splitlines()[2]
    assert header.startswith("Scale **tiny**: a smoke-test size"), header
    # The solver's own choice of epochs is a valid override too.
    assert main(["reproduce", "appendix-d1", "--scale", "tiny", "--epochs", "auto", "--out", str(tmp_path),
                 "--report"]) == 0
    header = (tmp_path / "appendix-d1.md").read_text(encoding="utf-8").splitlines()[2]
    assert header.startswith("Scale **tiny**, with max_epochs = 'auto' instead of its 2:"), header


def _cli_error(capsys, *argv):
    """The exit code and the message of a command line that must be refused."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize("command", [["demo"], ["reproduce", "appendix-d1", "--scale", "tiny"]])
@pytest.mark.parametrize("option, value, expected", [
    ("--threads", "0", "expected a positive integer, got '0'"),
    ("--threads", "two", "expected a positive integer, got 'two'"),
    ("--epochs", "-1", "max_epochs"),
    ("--epochs", "1.5", "max_epochs"),
    ("--epochs", "many", "max_epochs"),
    ("--device", "bogus", "'bogus'"),
    ("--device", "tpu", "'tpu'"),
])
def test_cli_refuses_bad_options_with_a_usage_error(command, option, value, expected, capsys, data_home,
                                                    tmp_path):
    code, err = _cli_error(capsys, *command, "--out", str(tmp_path / "out"), option, value)
    assert code == 2
    assert f"error: argument {option}: " in err and expected in err, err
    assert "Traceback" not in err
    # Refused before anything ran: no data set made, no output folder.
    assert not data_home.exists() and not (tmp_path / "out").exists()


def test_cli_refuses_cuda_where_there_is_none(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here, so --device cuda is valid")
    code, err = _cli_error(capsys, "demo", "--out", str(tmp_path), "--device", "cuda")
    assert code == 2 and "argument --device: " in err and "CUDA is not available" in err


@pytest.mark.parametrize("below", ["", "sub"])
def test_cli_refuses_an_output_folder_that_is_a_file(below, capsys, data_home, tmp_path):
    existing = tmp_path / "results.txt"
    existing.write_text("not a folder", encoding="utf-8")
    out = existing / below if below else existing
    code, err = _cli_error(capsys, "reproduce", "appendix-d1", "--scale", "tiny", "--out", str(out))
    assert code == 2 and "error: argument --out: " in err and "results.txt" in err and "is a file" in err, err
    assert existing.read_text(encoding="utf-8") == "not a folder" and not data_home.exists()


def test_interrupted_cell_stores_nothing_and_runs_again(tmp_path, cells_run):
    """Ctrl-C in a fit stops the experiment: the cell is not stored (a stored cell would be
    trusted on the next run, with its training cut short), and the next run computes it."""
    keys = [cell.key for cell in EXPERIMENTS["appendix-d1"].cells(TINY)]
    with interrupt_training_after(1), pytest.raises(KeyboardInterrupt):
        _run("appendix-d1", tmp_path)
    interrupted = cells_run[-1]
    assert EXPERIMENTS["appendix-d1"].cells(TINY)[keys.index(interrupted)].correction != "none"
    finished = keys[:keys.index(interrupted)]
    cell_dir = tmp_path / "cells"
    # Only the cells that finished before it, and no partial or temporary file.
    assert sorted(path.name for path in cell_dir.iterdir()) == sorted(f"{key}.json" for key in finished)

    cells_run.clear()
    records, _ = _run("appendix-d1", tmp_path)
    assert cells_run == keys[len(finished):] and cells_run[0] == interrupted
    assert len(records) == len(keys)
    assert all(r["epochs"] == TINY.max_epochs for r in records if r["depth"] != "")
