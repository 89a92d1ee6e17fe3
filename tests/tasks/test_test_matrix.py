"""The check × line table of `invoke test-image`, from pytest's JUnit XML."""

from tasks import test_matrix

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_acceptance" name="test_pip_check_is_clean[base]" time="1"/>
<testcase classname="tests.test_acceptance" name="test_webserver" time="1">
  <failure message="boom">trace</failure></testcase>
<testcase classname="tests.test_acceptance_executors" name="test_pod_run" time="1">
  <skipped type="pytest.xfail" message="upstream bug"/></testcase>
<testcase classname="tests.test_acceptance_executors" name="test_only_here" time="1">
  <skipped type="pytest.skip" message="n/a"/></testcase>
</testsuite></testsuites>"""


def test_matrix_reads_outcomes_per_line(tmp_path):
    (tmp_path / "a.xml").write_text(JUNIT)
    (tmp_path / "b.xml").write_text(JUNIT.replace('<failure message="boom">trace</failure>', "")
                                    .replace(
        '<testcase classname="tests.test_acceptance_executors" name="test_only_here" time="1">\n'
        '  <skipped type="pytest.skip" message="n/a"/></testcase>\n', ""))
    columns, rows = test_matrix.matrix({"4.2": tmp_path / "a.xml", "5.0": tmp_path / "b.xml",
                                        "3.0": tmp_path / "missing.xml"})
    assert columns == ["check", "4.2", "5.0"]
    assert rows == [
        ["executors: only_here", "skip", "-"],
        ["executors: pod_run", "xfail", "xfail"],
        ["image: pip_check_is_clean[base]", "pass", "pass"],
        ["image: webserver", "FAIL", "pass"],
        ["passed / all", "1 / 4", "2 / 3"],
    ]
    assert test_matrix.markdown(columns, rows[-1:]) == \
        "| check | 4.2 | 5.0 |\n|---|---|---|\n| passed / all | 1 / 4 | 2 / 3 |\n"
