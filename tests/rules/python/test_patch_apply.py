"""Why the backports are applied by our own rules/python/patch_apply.py: what whatthepatch and
patch-ng (both pinned in the dev lock) do on the cases a hermetic build must get right, and
what ours does instead. On the project's four real backports all three give the same bytes
(tools/bench_libs.py patch); they differ where a patch no longer fits its wheel."""

import pytest

from rules.python import patch_apply

GREETING = "def greet():\n    name = None\n    return 'hello ' + name\n\n\nX = 1\n"
FIXED = GREETING.replace("None", "'world'")
FIX = ("--- a/g.py\n+++ b/g.py\n@@ -1,3 +1,3 @@\n def greet():\n-    name = None\n"
       "+    name = 'world'\n     return 'hello ' + name\n")
MOVED = "# a line added above\n" + GREETING
CRLF = "a\r\nb\r\nc\x0cd\r\n"
CRLF_FIX = "--- a/f.css\n+++ b/f.css\n@@ -1,3 +1,3 @@\n a\r\n-b\r\n+B\r\n c\x0cd\r\n"
LF_FIX_FOR_CRLF = "--- a/f.css\n+++ b/f.css\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\x0cd\n"
RENAME = "diff --git a/a.py b/b.py\nsimilarity index 100%\nrename from a.py\nrename to b.py\n"


def ours(patch: str, name: str, text: str) -> bytes:
    _, (change,) = patch_apply.parse(patch)
    return patch_apply.apply({name: text.encode()}, change)


def patch_ng_apply(tmp_path, patch: str, name: str, text: str) -> tuple[bool, bytes]:
    import patch_ng

    (tmp_path / name).write_bytes(text.encode())
    ok = patch_ng.fromstring(patch.encode()).apply(strip=1, root=str(tmp_path))
    return ok, (tmp_path / name).read_bytes()


def test_ours_moves_a_hunk_both_libraries_refuse_it(tmp_path):
    import whatthepatch

    assert ours(FIX, "g.py", MOVED) == ("# a line added above\n" + FIXED).encode()
    with pytest.raises(whatthepatch.exceptions.HunkApplyException):
        whatthepatch.apply_diff(next(whatthepatch.parse_patch(FIX)), MOVED)
    assert patch_ng_apply(tmp_path, FIX, "g.py", MOVED) == (False, MOVED.encode())


def test_a_patch_already_in_the_file_fails_loudly_patch_ng_calls_it_success(tmp_path):
    with pytest.raises(patch_apply.PatchError, match="hunk #1 does not apply"):
        ours(FIX, "g.py", FIXED)
    # patch-ng finds the new lines and reports success ("already patched" is only logged)
    assert patch_ng_apply(tmp_path, FIX, "g.py", FIXED) == (True, FIXED.encode())


def test_line_ends_are_matched_exactly_patch_ng_ignores_them(tmp_path):
    assert ours(CRLF_FIX, "f.css", CRLF) == b"a\r\nB\r\nc\x0cd\r\n"
    with pytest.raises(patch_apply.PatchError, match="does not apply"):
        ours(LF_FIX_FOR_CRLF, "f.css", CRLF)
    # patch-ng compares lines without their ends: an LF patch applies to a CRLF file
    assert patch_ng_apply(tmp_path, LF_FIX_FOR_CRLF, "f.css", CRLF) == \
        (True, b"a\r\nB\r\nc\x0cd\r\n")


def test_whatthepatch_splits_on_form_feeds_and_drops_line_ends():
    import whatthepatch

    (diff,) = whatthepatch.parse_patch(CRLF_FIX)
    # the context line "c\x0cd" became "c" (splitlines), yet the hunk "applies"
    assert [c.line for c in diff.changes] == ["a", "b", "B", "c"]
    assert whatthepatch.apply_diff(diff, CRLF) == ["a", "B", "c", "d"]  # lines, no "\r\n"


def test_a_rename_is_refused_whatthepatch_reads_it_as_no_change():
    import whatthepatch

    with pytest.raises(patch_apply.PatchError, match="not supported"):
        patch_apply.parse(RENAME)
    (diff,) = whatthepatch.parse_patch(RENAME)
    assert diff.changes is None  # applying it would silently do nothing
