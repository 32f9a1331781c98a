"""The documentation builds with warnings as errors, a broken cross-reference fails the
build, and the Results page opens with its summary table.

The build runs on a copy of ``docs/`` and ``examples/`` in a temporary folder (Sphinx
writes generated pages into its source folder), without running the examples
(``SKLEARN_ATTNS_DOCS_PLOT_GALLERY=0``). The broken builds reuse the first build's
environment, so that Sphinx reads again only the page that was broken.
"""

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_HEADER = ["Experiment", "Compared", "MSE (ours)", "MSE (paper)", "Agrees?"]
EXPERIMENT_NAMES = ("Fig. 3", "Fig. 4", "Fig. 5", "Table 1", "Table 2", "Appendix D.1")


class _Page(HTMLParser):
    """The main content of a built page, in order: headings, figures and tables (with the
    text of each cell), and the ids that links can point at."""

    def __init__(self):
        super().__init__()
        self.events, self.ids, self._depth, self._heading, self._table = [], set(), 0, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "article" and "bd-article" in (attrs.get("class") or "").split():
            self._depth = 1
            return
        if not self._depth:
            return
        if tag == "article":
            self._depth += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self._heading = [tag, ""]
        elif tag == "img":
            self.events.append(("img", attrs.get("src", "")))
        elif tag == "table" and self._table is None:
            self._table = {"rows": [], "links": []}
        elif self._table is not None and tag == "tr":
            self._table["rows"].append([])
        elif self._table is not None and tag in ("td", "th"):
            self._table["rows"][-1].append("")
        elif self._table is not None and tag == "a" and attrs.get("href"):
            self._table["links"].append(attrs["href"])

    def handle_endtag(self, tag):
        if not self._depth:
            return
        if tag == "article":
            self._depth -= 1
        elif self._heading is not None and tag == self._heading[0]:
            self.events.append(("heading", self._heading[1].strip().rstrip("#").strip()))
            self._heading = None
        elif tag == "table" and self._table is not None:
            self.events.append(("table", self._table))
            self._table = None

    def handle_data(self, data):
        if not self._depth:
            return
        if self._heading is not None:
            self._heading[1] += data
        if self._table is not None and self._table["rows"] and self._table["rows"][-1]:
            self._table["rows"][-1][-1] += data


def summary_table_problems(html):
    """What keeps ``html`` (a built Results page) from opening with the summary table:
    an empty list when the first table, or figure, or provenance heading of the main content
    is the summary table of the experiments, with a working link to each section."""
    page = _Page()
    page.feed(html)
    contents = [event for event in page.events if event[0] != "heading" or event[1] != "Results"]
    if not contents:
        return ["no main content found"]
    provenance = re.compile(r"provenance|how .* made|machines", re.IGNORECASE)
    first = next((event for event in contents if event[0] in ("img", "table") or provenance.search(event[1])),
                 ("nothing", ""))
    if first[0] != "table":
        return [f"the main content opens with {first[0]} {first[1]!r}, not the summary table"]
    rows = [[re.sub(r"\s+", " ", cell).strip() for cell in row] for row in first[1]["rows"]]
    problems = []
    if rows[0] != SUMMARY_HEADER:
        problems.append(f"the first table's header is {rows[0]}, not {SUMMARY_HEADER}")
    named = [row[0] for row in rows[1:]]
    if len(named) != len(EXPERIMENT_NAMES) or not all(
            n.startswith(e) for n, e in zip(named, EXPERIMENT_NAMES, strict=True)):
        problems.append(f"the summary's rows are {named}, not one per experiment {EXPERIMENT_NAMES}")
    if any(row[-1].split(".")[0] not in ("Yes", "Partly", "No") for row in rows[1:]):
        problems.append("each 'Agrees?' cell starts with Yes, Partly or No")
    broken = [href for href in first[1]["links"] if href.startswith("#") and href[1:] not in page.ids]
    if len(first[1]["links"]) < len(EXPERIMENT_NAMES) or broken:
        problems.append(f"each row links to its section; broken links: {broken}")
    return problems


def test_the_summary_check_fails_on_a_page_that_opens_otherwise():
    row = "<tr><td><a href='#{0}'>{1}</a></td><td>x</td><td>1e-6</td><td>2e-6</td><td>Yes. fine</td></tr>"
    table = ("<table><tr>" + "".join(f"<th>{h}</th>" for h in SUMMARY_HEADER) + "</tr>"
             + "".join(row.format(f"s{i}", name) for i, name in enumerate(EXPERIMENT_NAMES)) + "</table>")
    sections = "".join(f"<section id='s{i}'><h2>{name}</h2><img src='f{i}.png'></section>"
                       for i, name in enumerate(EXPERIMENT_NAMES))

    def page(body):
        outside = "<nav><table></table></nav>"  # tables outside the main content do not count
        return f"<html><body>{outside}<article class='bd-article'>{body}</article></body></html>"

    assert summary_table_problems(page("<h1>Results</h1><p>In short:</p>" + table + sections)) == []
    assert "opens with img" in summary_table_problems(page("<h1>Results</h1>" + sections + table))[0]
    assert "opens with heading 'Provenance'" in summary_table_problems(
        page("<h1>Results</h1><h2>Provenance</h2>" + table + sections))[0]
    assert "broken links" in summary_table_problems(page(table.replace("#s2", "#nowhere") + sections))[0]
    assert "header" in summary_table_problems(page(table.replace("Agrees?", "Verdict") + sections))[0]
    assert summary_table_problems(page("")) == ["no main content found"]


def _build(tree, *options):
    env = {**os.environ, "SKLEARN_ATTNS_DOCS_PLOT_GALLERY": "0", "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "sphinx", "-W", "-q", *options, "-b", "html",
               "-d", str(tree / "doctrees"), str(tree / "docs"), str(tree / "html")]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                          check=False)


@pytest.fixture(scope="module")
def docs_tree(tmp_path_factory):
    """``docs/`` and ``examples/`` copied and built once: ``(folder, finished process)``."""
    pytest.importorskip("sphinx", reason="the docs extra is not installed: pip install -e '.[docs]'")
    tree = tmp_path_factory.mktemp("docs")
    # The stored cells of the experiments are data, not pages.
    shutil.copytree(ROOT / "docs", tree / "docs",
                    ignore=shutil.ignore_patterns("_build", "generated", "auto_examples",
                                                  "sg_execution_times.rst", "cells"))
    shutil.copytree(ROOT / "examples", tree / "examples")
    return tree, _build(tree)


@pytest.mark.slow
def test_the_docs_build_without_a_warning(docs_tree):
    tree, result = docs_tree
    assert result.returncode == 0, (
        f"sphinx-build -W failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    for page in ("index", "api", "results", "results_provenance", "user_guide/index", "auto_examples/index",
                 "generated/sklearn_attns.plotting.plot_error_over_time"):
        assert (tree / "html" / f"{page}.html").exists(), page


@pytest.mark.slow
def test_the_navbar_reaches_the_main_sections(docs_tree):
    tree, _ = docs_tree
    html = (tree / "html" / "index.html").read_text(encoding="utf-8")
    navbar = html[html.index('class="bd-navbar-elements'):]
    navbar = navbar[: navbar.index("</ul>")]
    for target in ("user_guide/index.html", "auto_examples/index.html", "api.html", "results.html"):
        assert f'href="{target}"' in navbar, target


@pytest.mark.slow
def test_the_results_page_opens_with_the_summary_table(docs_tree):
    tree, _ = docs_tree
    assert summary_table_problems((tree / "html" / "results.html").read_text(encoding="utf-8")) == []


BREAKAGES = (  # page, a working reference in it, the same reference broken
    ("user_guide/saving.md", "{py:func}`~sklearn_attns.persistence.save_model`",
     "{py:func}`~sklearn_attns.persistence.save_model_nowhere`"),
    ("index.md", "{doc}`results`", "{doc}`results_nowhere`"),
    ("results.md", "(#fig-4-chaotic-systems)", "(#fig-4-nowhere)"),
)


@pytest.mark.slow
def test_a_broken_cross_reference_fails_the_build(docs_tree):
    """A missing object, a missing page and a missing section: each one is reported and fails
    the build (all three in one build, which goes on to report every warning)."""
    tree, built = docs_tree
    if built.returncode:
        pytest.fail("the docs do not build even unbroken (see test_the_docs_build_without_a_warning)")
    originals = {}
    for page, old, new in BREAKAGES:
        path = tree / "docs" / page
        originals[path] = text = path.read_text(encoding="utf-8")
        assert old in text, (page, old)
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    try:
        result = _build(tree, "--keep-going")
    finally:
        for path, text in originals.items():
            path.write_text(text, encoding="utf-8")
    assert result.returncode != 0
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    for page, _, new in BREAKAGES:
        name = re.search(r"[\w.]*nowhere", new).group()
        assert any(page in line and name.split(".")[-1] in line for line in warnings), (page, name, warnings)
