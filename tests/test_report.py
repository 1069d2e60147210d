"""`drbench report`: one self-contained HTML page from a real store, its numbers the leaderboard's,
its errors one line; and, in a real browser (Debian's chromium driven by Playwright), its tables
sort, its drill-down shows a query's rankings, and no request leaves the page."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.store import ExperimentRecord, RunRecord, open_store, write_run
from test_run import EndToEnd, end_to_end

runner = CliRunner()


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory, mirror: Path, tiny_model: Path) -> EndToEnd:
    return end_to_end(tmp_path_factory, mirror, tiny_model)


@pytest.fixture(scope="module")
def report(e2e: EndToEnd, mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    result = runner.invoke(app, ["report", "--store", str(e2e.store), "-o", str(path), "--mirror", str(mirror)])
    assert result.exit_code == 0, result.output
    return path


class Page(HTMLParser):
    """Every tag with its attributes, and the leaderboard's rows as (text, data-sort) cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.board: list[list[tuple[str, str | None]]] = []
        self.header: list[str] = []
        self._table = self._cell = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "table" and "leaderboard" in (attributes.get("class") or ""):
            self._table = "board"
        elif self._table and tag == "tr":
            self.board.append([])
        elif self._table and tag in ("td", "th"):
            self._cell, self._text = attributes.get("data-sort"), ""

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._table and tag in ("td", "th"):
            self.board[-1].append((self._text.strip(), self._cell))
        elif tag == "table":
            self._table = None


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_report_is_one_self_contained_file(report: Path) -> None:
    page = parse(report)
    # Nothing to fetch: no external script, style sheet, image or frame, and a policy that forbids any.
    for tag, attrs in page.tags:
        assert not (tag in ("script", "img", "iframe") and attrs.get("src")), (tag, attrs)
        assert tag != "link", attrs
    text = report.read_text(encoding="utf-8")
    assert "default-src 'none'" in text
    assert not re.search(r"url\(\s*['\"]?https?:", text)
    assert text.count("<svg") >= 1  # the metric bars, inline
    assert "git checkout" in text or "drbench run" in text  # the reproduce command


def test_report_board_holds_the_leaderboards_numbers(e2e: EndToEnd, report: Path) -> None:
    board = json.loads(runner.invoke(app, ["leaderboard", "--store", str(e2e.store), "--format", "json"]).output)
    page = parse(report)
    header = [text.split(" ")[0] for text, _ in page.board[0]]
    rows = {(cells[0][0], cells[1][0]): cells for cells in page.board[1:]}
    assert len(rows) == len(board)
    for row in board:
        cells = rows[(row["variant"] if row["index"] == "bm25" else f"{row['variant']} [{row['index']}]",
                      row["index"])]
        for metric, value in row["metrics"].items():
            text, sort = cells[header.index(metric)]
            assert float(sort) == pytest.approx(value, abs=1e-12)
            assert text.startswith(f"{value:.4f}")


def test_report_drill_down_covers_the_queries_with_titles_and_labels(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json">(.*?)</script>', text, re.S).group(1))
    assert data["judged"] and not data["missing"]
    assert data["covered"] == min(200, data["total"])
    query = data["queries"][0]
    assert len(query["top"]) == len(data["systems"]) and all(len(top) <= 10 for top in query["top"])
    # Cranfield documents have titles, and labels mark the judged documents of the top 10.
    assert all(doc in data["titles"] for top in query["top"] for doc, _, _ in top)
    assert query["judged"] and all(grade > 0 for _, grade, _ in query["judged"])
    # Every judged document in a system's top 10 has that rank in the judged table.
    seen = 0
    for q in data["queries"]:
        for doc, _, ranks in q["judged"]:
            for s, top in enumerate(q["top"]):
                ids = [d for d, _, _ in top]
                if doc in ids:
                    assert ranks[s] == ids.index(doc) + 1
                    seen += 1
    assert seen


def test_report_errors_are_one_line(e2e: EndToEnd, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    open_store(empty).close()
    cases = [
        (["--store", str(tmp_path / "missing.db")], "missing.db"),
        (["--store", str(empty)], "no runs"),
        (["--store", str(e2e.store), "-e", "nope"], "nope"),
        (["--store", str(e2e.store), "-b", "nope"], "nope"),
        (["--store", str(e2e.store), "-o", str(tmp_path / "no" / "such" / "r.html")], "does not exist"),
        (["--store", str(e2e.store), "-o", str(tmp_path)], "is a folder"),
        (["--store", str(e2e.store), "-o", "/proc/drbench-report.html"], "cannot write"),
        (["--store", str(e2e.store), "-o", str(e2e.store)], "the results store itself"),
        (["--store", str(e2e.store), "-o", "/dev/null"], "not a regular file"),
        (["--store", str(e2e.store), "--mirror", str(tmp_path / "no-mirror")], "is not a directory"),  # as `run`
    ]
    for args, fragment in cases:
        result = runner.invoke(app, ["report", "-o", str(tmp_path / "r.html"), *args])
        assert e2e.store.read_bytes()[:16] == b"SQLite format 3\x00"  # never overwritten
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], (args, result.output)
    assert not (tmp_path / "r.html").exists()


def test_report_imports_neither_torch_nor_transformers(e2e: EndToEnd, tmp_path: Path) -> None:
    import subprocess

    code = ("import sys; from harness.cli import app; from typer.testing import CliRunner; "
            f"r = CliRunner().invoke(app, ['report', '--store', {str(e2e.store)!r}, '-o', {str(tmp_path / 'r.html')!r}]); "
            "assert r.exit_code == 0, r.output; "
            "print(sorted({m.partition('.')[0] for m in sys.modules} & {'torch', 'transformers'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


# --- in a real browser ----------------------------------------------------------------------

def chromium() -> str:
    """Debian's chromium, which Playwright drives (its own browser download is unreachable here).
    Without it (or Playwright), skip; where CI sets DRBENCH_REQUIRE_BROWSER=1, fail instead."""
    found = os.environ.get("DRBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    missing = None
    if not found:
        missing = "no chromium found (apt-get install chromium, or set DRBENCH_CHROMIUM)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "Playwright is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("DRBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{missing} (DRBENCH_REQUIRE_BROWSER=1)")
        pytest.skip(missing)
    return found


def test_report_in_a_real_browser(report: Path, tmp_path: Path) -> None:
    exercise_in_browser(report, tmp_path / "report.png")


def test_report_of_a_real_benchmark_store_in_a_browser(tmp_path: Path, mirror: Path) -> None:
    """The same on a store you name (DRBENCH_REPORT_STORE), e.g. recipes/star_adore.toml's:
    too big to build in a test, so it runs where one exists."""
    store = os.environ.get("DRBENCH_REPORT_STORE")
    if not store:
        pytest.skip("set DRBENCH_REPORT_STORE to a store, e.g. recipes/star_adore.toml's, to test its report")
    path = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--store", store, "-o", str(path), "--mirror", str(mirror)])
    assert result.exit_code == 0, result.output
    exercise_in_browser(path, tmp_path / "report.png")


def exercise_in_browser(report: Path, shot: Path) -> None:
    """Sort a leaderboard by a click, pick a query in the drill-down, take a screenshot; no
    request but the file itself, no script error."""
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            errors: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.goto(report.as_uri())

            # Sorting: a click on a metric's header orders the rows by it, best first; a second click reverses.
            board = page.locator("table.leaderboard").first
            headers = board.locator("thead th").all_inner_texts()
            column = headers.index("ndcg@10")

            def shown() -> list[tuple[str, float]]:
                rows = board.locator("tbody tr")
                return [(rows.nth(i).locator("td").nth(0).inner_text(),
                         float(rows.nth(i).locator("td").nth(column).get_attribute("data-sort")))
                        for i in range(rows.count())]

            before = shown()
            board.locator("thead th").nth(column).click()
            descending = shown()
            assert [v for _, v in descending] == sorted((v for _, v in before), reverse=True)
            board.locator("thead th").nth(column).click()
            ascending = shown()
            assert [v for _, v in ascending] == sorted(v for _, v in before)
            assert descending != before or ascending != before  # the order did change
            assert board.locator("thead th").nth(column).get_attribute("aria-sort") == "ascending"

            # The drill-down: pick a query, see every system's top 10 and its judged documents.
            drill = page.locator(".drill").first
            option = drill.locator("select option").nth(1)
            query_id = option.inner_text().split(":")[0]
            drill.locator("select").select_option(index=1)
            out = drill.locator(".drill-out")
            assert out.get_attribute("data-query") == query_id
            rankings = out.locator(".ranking")
            data = json.loads(drill.locator("script[type='application/json']").text_content())
            assert rankings.count() == len(data["systems"])
            for i in range(rankings.count()):
                items = rankings.nth(i).locator("li")
                assert 1 <= items.count() <= 10
            assert out.locator("table.judged tbody tr").count() >= 1

            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert not errors, errors
            assert requests == [report.as_uri()], requests  # nothing but the file itself
        finally:
            browser.close()


NASTY = 'x<!--<script>"&'  # a name that would end or swallow the page's inline script if not escaped


@pytest.fixture(scope="module")
def nasty_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two systems on a collection ir_datasets does not know (so no texts), one with a hostile name."""
    folder = tmp_path_factory.mktemp("nasty")
    db = open_store(folder / "results.db")
    experiment = ExperimentRecord(name="odd", recipe_path=None, recipe_text='[eval]\nmetrics = ["ndcg@10"]\n',
                                  recipe_hash="h", git_commit=None, git_dirty=False, packages={}, python="3.11",
                                  platform="test", seed=13, started_at="t")
    for variant, values in (("bm25", (0.2, 0.5)), (NASTY, (0.4, 0.1))):
        write_run(db, experiment, RunRecord(
            experiment="odd", variant=variant, kind="bm25" if variant == "bm25" else "zero-shot",
            collection="toy/not-in-ir-datasets", index_factory="bm25" if variant == "bm25" else "Flat",
            run_key="k", model=None, depth=3, n_docs=3, started_at="t", finished_at="t", seed=13,
            metrics={"ndcg@10": sum(values) / 2}, query_metrics={"ndcg@10": {"q1": values[0], "q2": values[1]}},
            results={q: [("d1", 3.0), ("d2", 2.0), ("d3", 1.0)] for q in ("q1", "q2")}))
    db.close()
    path = folder / "report.html"
    result = runner.invoke(app, ["report", "--store", str(folder / "results.db"), "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_report_without_texts_says_why_and_keeps_ids(nasty_report: Path) -> None:
    text = nasty_report.read_text(encoding="utf-8")
    data = json.loads(re.search(r'<script type="application/json">(.*?)</script>', text, re.S).group(1))
    assert data["missing"] and "toy/not-in-ir-datasets" in data["missing"] and not data["judged"]
    assert data["systems"] == ["bm25", NASTY] and data["queries"][0]["top"][0][0][0] == "d1"
    assert "<!--" not in text.split("<body>", 1)[1]  # the name is escaped everywhere, JSON included


def test_report_with_hostile_names_still_works_in_a_browser(nasty_report: Path) -> None:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(nasty_report.as_uri())
            assert page.locator("section.provenance").count() == 1  # the page after the script survived
            assert NASTY in page.locator("table.leaderboard").inner_text()
            page.locator(".drill select").select_option(index=1)
            assert page.locator(".drill-out .ranking").count() == 2
            assert NASTY in page.locator(".drill-out").inner_text()
            assert not errors, errors
        finally:
            browser.close()
