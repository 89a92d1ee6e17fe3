"""Our reader of pip-compile locks against pip-requirements-parser (pip's own parser, vendored):
they agree on every committed lock, and on the layouts pip-compile writes (continuations, hashes,
extras, markers, options, `-r`). We keep ours on the build's path because it is about 100x
faster (see rules/lock/requirements_file.py); these tests keep it honest."""

import pytest
from packaging.utils import canonicalize_name
from pip_requirements_parser import RequirementsFile

from rules.lock import requirements_file
from tests.fixtures import REPO

A, B, C = ("sha256:" + c * 64 for c in "abc")


def pip_parse(tmp_path, text, include_nested=False, name="requirements.txt"):
    # from_file: 32.0.1's from_string raises NameError (Path is not imported)
    (tmp_path / name).write_text(text)
    return RequirementsFile.from_file(str(tmp_path / name), include_nested=include_nested)


def pins(parsed):
    return {(canonicalize_name(r.name), str(r.specifier).removeprefix("=="),
             tuple(sorted(r.hash_options))) for r in parsed.requirements}


@pytest.mark.parametrize("path", sorted((REPO / "constraints").glob("constraints-*.txt")),
                         ids=lambda p: p.name)
def test_both_read_the_same_pins_and_hashes_from_every_committed_lock(tmp_path, path):
    text = path.read_text()
    parsed = pip_parse(tmp_path, text)
    assert not parsed.invalid_lines and not parsed.options
    _, entries = requirements_file.parse(text)
    assert {(e.name, e.version, tuple(sorted(e.hashes))) for e in entries} == pins(parsed)


LOCK = f"""\
#
# header comment
#
foo[bar, baz]==1.0 ; python_version < "3.8" \\
    --hash={A} \\
    --hash={B}
    # via
    #   x
Zap_Zip==2.0 \\
    --hash={C}
    # via -r requirements.in
"""


def test_continuations_extras_markers_and_via_notes(tmp_path):
    parsed = pip_parse(tmp_path, LOCK)
    foo, _ = parsed.requirements
    assert (foo.name, str(foo.specifier), sorted(foo.extras)) == ("foo", "==1.0", ["bar", "baz"])
    assert str(foo.marker) == 'python_version < "3.8"' and foo.hash_options == [A, B]
    assert [c.line for c in parsed.comments][-3:] == ["# via", "#   x", "# via -r requirements.in"]
    header, entries = requirements_file.parse(LOCK)
    assert pins(parsed) == {(e.name, e.version, tuple(sorted(e.hashes))) for e in entries}
    # ours keeps each pin's lines as written (extras without spaces, as pip-compile writes them)
    assert entries[0].lines == ['foo[bar,baz]==1.0 ; python_version < "3.8" \\',
                                f"    --hash={A} \\", f"    --hash={B}", "    # via", "    #   x"]
    assert header == ["#", "# header comment", "#"]
    assert requirements_file.render(header, entries) == LOCK.replace("[bar, baz]", "[bar,baz]")


def test_a_marker_written_without_spaces_is_not_part_of_the_version(tmp_path):
    text = f'foo==1.0;python_version<"3.8" \\\n    --hash={A}\n'
    (requirement,) = pip_parse(tmp_path, text).requirements
    assert str(requirement.specifier) == "==1.0"
    assert requirements_file.parse(text)[1][0].version == "1.0"


def test_options_and_includes_pip_follows_and_we_leave_in_the_header(tmp_path):
    (tmp_path / "base.txt").write_text(f"six==1.16.0 \\\n    --hash={C}\n")
    text = f"--index-url https://example.org/simple\n-r base.txt\nfoo==1.0 \\\n    --hash={A}\n"
    parsed = pip_parse(tmp_path, text, include_nested=True)
    assert [o.options for o in parsed.options] == [{"index_url": "https://example.org/simple"},
                                                   {"requirements": ["base.txt"]}]
    assert [r.name for r in parsed.requirements] == ["six", "foo"]
    # our locks have no options or includes (uv writes neither): before the first pin they are
    # header lines, after it they are refused
    header, entries = requirements_file.parse(text)
    assert header[:2] == ["--index-url https://example.org/simple", "-r base.txt"]
    assert [e.name for e in entries] == ["foo"]
    with pytest.raises(ValueError, match="unexpected line"):
        requirements_file.parse(text + "-r base.txt\n")
