"""The library never imports the application built on it (``sklearn_attns.experiments``).

The experiments, their figures and their command line use the library as any user would;
the library (estimators, training, data, metrics, plotting helpers) must work without them.
"""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sklearn_attns"
APPLICATION = "experiments"
# The command-line shim starts the application; it is the one module allowed to import it.
ENTRY_POINT = "__main__.py"
CORE = ("sklearn_attns", *(f"sklearn_attns.{name}" for name in (
    "estimator", "training", "corrections", "systems", "integrators", "datasets", "persistence", "metrics",
    "parallel", "plotting")))


def _core_files():
    return sorted(path for path in PACKAGE.glob("*.py") if path.name != ENTRY_POINT)


def _core_modules():
    files = (f"sklearn_attns.{path.stem}" for path in _core_files() if path.stem != "__init__")
    return sorted({*CORE, *files})


def _application_imports(source):
    """``(line, text)`` of each import of the application in ``source``, a core module's code."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isprintable() \
                and " " not in node.value:
            # importlib.import_module(".experiments", ...) and the like
            names = [node.value] if node.value.strip(".").split(".")[-1] == APPLICATION else []
        else:
            continue
        if any(APPLICATION in name.split(".") for name in names):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_core_modules_exist():
    present = {f"sklearn_attns.{path.stem}" for path in _core_files()} | {"sklearn_attns"}
    assert set(CORE) <= present, f"renamed or removed: {sorted(set(CORE) - present)}"


def test_importing_the_core_leaves_the_application_out():
    code = ("import importlib, sys\n"
            f"for name in {_core_modules()!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.startswith('sklearn_attns.')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent)
    loaded = eval(result.stdout.strip().splitlines()[-1])  # the list printed above
    assert "sklearn_attns.plotting" in loaded and "sklearn_attns.estimator" in loaded
    assert [m for m in loaded if m.split(".")[1] == APPLICATION] == []


def test_no_core_file_imports_the_application():
    found = {path.name: _application_imports(path.read_text(encoding="utf-8")) for path in _core_files()}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_the_scan_finds_each_way_of_importing_the_application():
    for source in ("from .experiments import run_experiment", "from . import experiments",
                   "import sklearn_attns.experiments.cli",
                   "from sklearn_attns.experiments.run import run_cell",
                   "import importlib\nimportlib.import_module('.experiments', 'sklearn_attns')",
                   "def f():\n    from .experiments import cells\n"):
        assert _application_imports(source), source
    for source in ("from .metrics import mse_per_step", "import json", "x = 'experiments are run with care'"):
        assert not _application_imports(source), source


def test_the_entry_point_only_starts_the_application():
    source = (PACKAGE / ENTRY_POINT).read_text(encoding="utf-8")
    assert [text for _, text in _application_imports(source)] == ["from .experiments.cli import main"]
