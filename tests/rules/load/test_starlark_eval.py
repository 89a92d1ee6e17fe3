"""WORKSPACE/BUILD files are real Starlark; every failure is located at file:line:col."""

import pytest

from rules.common.errors import BuildFileError
from rules.load.starlark_eval import RuleError, evaluate


def run(tmp_path, source, functions=None):
    path = tmp_path / "BUILD"
    path.write_text(source)
    evaluate(path, "pkg/BUILD", functions or {})


@pytest.mark.parametrize("source, line, col", [
    ('x = 1\nf(name = "a",, )\n', 2, 14),
    ('x = "abc\n', 1, 5),
    ("def f(:\n    pass\n", 1, 7),
    ("a = 1\n  b = 2\n", 2, 1),
    ("x = [1,\n", 1, 8),  # the parser gives no span at end of input: the end is reported
])
def test_syntax_error_is_located(tmp_path, source, line, col):
    with pytest.raises(BuildFileError) as err:
        run(tmp_path, source)
    assert (err.value.line, err.value.col) == (line, col)
    assert str(err.value).startswith(f"pkg/BUILD:{line}:{col}: syntax error: ")
    assert "\n" not in str(err.value)


def test_only_the_given_functions_exist(tmp_path):
    with pytest.raises(BuildFileError) as err:
        run(tmp_path, 'x = 1\nopen("/etc/passwd")\n')
    assert str(err.value).startswith("pkg/BUILD:2:1: Variable `open` not found")


def test_rule_errors_are_located_at_the_call(tmp_path):
    def target(**kw):
        raise RuleError('target "a": missing field \'b\'')

    with pytest.raises(BuildFileError) as err:
        run(tmp_path, 'x = 1\n\ntarget(name = "a")\n', {"target": target})
    assert str(err.value) == "pkg/BUILD:3:1: target \"a\": missing field 'b'"


def test_positional_arguments_are_refused(tmp_path):
    with pytest.raises(BuildFileError, match="keyword arguments only"):
        run(tmp_path, 'target("a")\n', {"target": lambda **kw: None})


def test_starlark_features_work(tmp_path):
    seen = []
    source = ('NAMES = ["a", "b"]\n'
              'def twice(n):\n    return [n, n + "2"]\n'
              '[target(name = n, also = twice(n)) for n in NAMES]\n')
    run(tmp_path, source, {"target": lambda **kw: seen.append(kw)})
    assert seen == [{"name": "a", "also": ["a", "a2"]}, {"name": "b", "also": ["b", "b2"]}]
