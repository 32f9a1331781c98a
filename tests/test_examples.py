"""Every script in ``examples/`` runs to the end, as the documentation build runs them.

Each runs in a fresh Python process with the non-interactive ``Agg`` backend, from a
temporary working folder so that nothing it writes lands in the repository. Scripts
that plot are skipped where matplotlib is not installed (it is in the ``plot`` and
``docs`` extras). These are the slowest tests of the suite (seconds to tens of seconds
each), marked slow: ``pytest -m "not slow"`` leaves them out.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_examples_found():
    names = {path.name for path in EXAMPLES}
    expected = {"plot_own_ode.py", "plot_grid_search_dt.py", "plot_limited_data.py", "plot_gpu.py",
                "plot_cluster.py"}
    assert expected <= names, f"missing examples: {sorted(expected - names)}"


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(script, tmp_path):
    if "matplotlib" in script.read_text() and importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed")
    # One torch thread unless the caller says otherwise: the examples' networks are small,
    # and on a busy machine a second thread makes them many times slower, not faster.
    env = {"OMP_NUM_THREADS": "1", **os.environ, "MPLBACKEND": "Agg"}
    # The package of this checkout, whatever another installation of it the interpreter has.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(script)], check=False, cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (
        f"{script.name} exited with {result.returncode}\n--- stdout ---\n{result.stdout[-4000:]}\n"
        f"--- stderr ---\n{result.stderr[-4000:]}"
    )
