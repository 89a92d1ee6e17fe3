"""The acceptance results of several Runtime lines as one table: check × line, read from the
JUnit XML files pytest writes (one per line)."""

import xml.etree.ElementTree as ET
from pathlib import Path

OUTCOMES = {"passed": "pass", "failed": "FAIL", "error": "ERROR", "skipped": "skip",
            "xfail": "xfail"}


def outcomes(junit_xml: Path) -> dict[str, str]:
    """test name (flavor parameter kept) -> outcome word."""
    results = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        # tests.acceptance.test_<area> (older reports: tests.test_acceptance_<area>)
        module = case.get("classname", "").rsplit(".", 1)[-1].removeprefix("test_")
        area = module.removeprefix("acceptance_") if module != "acceptance" else "image"
        name = f"{area}: {case.get('name', '').removeprefix('test_')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
            elif child.tag == "skipped":
                outcome = "xfail" if child.get("type") == "pytest.xfail" else "skipped"
        results[name] = OUTCOMES[outcome]
    return results


def matrix(per_line: dict[str, Path]) -> tuple[list[str], list[list[str]]]:
    """(columns, rows): one row per check, one column per line; '-' where a line lacks it."""
    results = {line: outcomes(path) for line, path in per_line.items() if path.exists()}
    checks = sorted({name for r in results.values() for name in r})
    rows = [[check] + [results[line].get(check, "-") for line in results] for check in checks]
    totals = ["passed / all"] + [f"{sum(v == 'pass' for v in r.values())} / {len(r)}"
                                 for r in results.values()]
    return ["check", *results], rows + [totals]


def markdown(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
