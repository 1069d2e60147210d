"""`drbench check` results in CI systems' own formats: JUnit XML and a markdown summary.

JUnit: one test case per expected value (classname `collection.index`, name `variant metric`),
a FAIL row as a failure whose message names the expected and stored values and the tolerance.
Markdown: the table `render_check` prints, for `$GITHUB_STEP_SUMMARY` or a merge-request note.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from leaderboard.check import STATUSES, CheckRow, seeds_label


def _stored(row: CheckRow) -> str:
    return "missing" if row.actual is None else f"{row.actual:.6f}"


def to_junit(rows: list[CheckRow], suite: str = "drbench check") -> str:
    """JUnit XML text: a `testsuite` of one `testcase` per row; FAIL rows carry a `failure`."""
    failures = sum(row.status == "FAIL" for row in rows)
    root = ET.Element("testsuites", name=suite, tests=str(len(rows)), failures=str(failures), errors="0")
    tests = ET.SubElement(root, "testsuite", name=suite, tests=str(len(rows)), failures=str(failures), errors="0",
                          skipped="0")
    for row in rows:
        e = row.expected
        case = ET.SubElement(tests, "testcase", classname=f"{e.collection}.{e.index}", name=f"{e.variant} {e.metric}",
                             time="0")
        detail = (f"expected {e.value:.6f}, stored {_stored(row)} ({seeds_label(e, named=True)}), tolerance {e.tolerance:g}"
                  + ("" if row.diff is None else f", diff {row.diff:+.6f}") + f": {row.status}")
        if row.status == "FAIL":
            failure = ET.SubElement(case, "failure", message=detail, type="regression")
            failure.text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def to_markdown(rows: list[CheckRow]) -> str:
    """A markdown table, one line per row, then the count per status."""
    lines = ["| variant | seeds | collection | index | metric | expected | stored | diff | tolerance | status |",
             "|---|---|---|---|---|---:|---:|---:|---:|---|"]
    marks = {"OK": "OK", "OKish": "OKish", "FAIL": "**FAIL**"}
    for row in rows:
        e = row.expected
        lines.append(f"| {e.variant} | {seeds_label(e)} | {e.collection} | {e.index} | {e.metric} | {e.value:.4f} | "
                     f"{'missing' if row.actual is None else f'{row.actual:.4f}'} | "
                     f"{'-' if row.diff is None else f'{row.diff:+.4f}'} | {e.tolerance:g} | {marks[row.status]} |")
    counts = ", ".join(f"{sum(r.status == s for r in rows)} {s}" for s in STATUSES)
    return "\n".join(["### drbench regression check", "", *lines, "", counts]) + "\n"
