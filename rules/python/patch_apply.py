"""Apply a unified diff (as `git format-patch` or `diff -u` write them) to in-memory files.

Pure Python, so the result depends on nothing installed on the host. Lines are split on "\\n"
only (a CRLF file keeps its "\\r"s, form feeds stay), hunks must match exactly (no fuzz) and in
order; a hunk may move (offset) when lines above it changed, and the nearest match wins. A hunk
that matches nowhere raises PatchError naming the file, the hunk number and its header. Git's
hunk-less changes are understood for empty new files and deleted files; renames, mode changes
and binary patches are refused, never skipped.

Kept our own on purpose. whatthepatch 1.0.7 and patch-ng 1.19.1 (pinned in the dev lock) give
the same bytes on the project's four backports (``.venv/bin/python tools/bench_libs.py
patch``; ours takes 0.1 ms or less per patch, whatthepatch 0.1-0.2 ms, patch-ng 0.7-12 ms as
it patches files on disk), but not where a patch no longer fits its wheel, which is when a
hermetic build must fail loudly (tests/rules/python/test_patch_apply.py): neither moves a hunk
whose lines moved (offset); patch-ng reports success for a patch whose new lines are already
in the file ("already patched" is only logged), matches lines without their line ends (an LF
patch applies to a CRLF file) and offers fuzz; whatthepatch splits patch and file with
``str.splitlines`` (a form feed ends a line and a context line is cut short, yet the hunk
applies), returns lines without their ends, and reads a rename as a file with no changes.
"""

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_UNSUPPORTED = ("rename from ", "copy from ", "old mode ", "new mode ", "GIT binary patch",
                "Binary files ")


class PatchError(Exception):
    pass


@dataclass
class Hunk:
    header: str
    old_start: int  # 1-based, as written
    old: list[str] = field(default_factory=list)  # context and removed lines
    new: list[str] = field(default_factory=list)  # context and added lines
    new_eof_newline: bool = True


@dataclass
class FilePatch:
    old_path: str | None  # None: the file is created
    new_path: str | None  # None: the file is deleted
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path


def _strip(path: str) -> str | None:
    path = path.split("\t")[0].strip()
    if path == "/dev/null":
        return None
    return path[2:] if path.startswith(("a/", "b/")) else path


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse(text: str) -> tuple[str, list[FilePatch]]:
    """(header before the first file, file patches)."""
    lines = _lines(text)
    header, files, i = [], [], 0
    git: dict | None = None  # the current `diff --git` block, until its ---/+++ lines

    def starts_file(at: int) -> bool:
        return lines[at].startswith("diff --git ") or (
            lines[at].startswith("--- ") and at + 1 < len(lines)
            and lines[at + 1].startswith("+++ "))

    while i < len(lines) and not starts_file(i):
        header.append(lines[i])
        i += 1

    def close_git():
        if git is None:
            return
        if git["new"]:
            files.append(FilePatch(None, git["path"]))  # an empty new file
        elif git["deleted"]:
            files.append(FilePatch(git["path"], None))  # deleting an empty file
        else:
            raise PatchError(f"{git['path']}: a change without hunks is not supported")

    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            close_git()
            m = re.match(r"^diff --git a/(\S+) b/(\S+)$", line)
            git = {"path": m.group(2) if m else line, "new": False, "deleted": False}
            i += 1
            continue
        if git is not None and line.startswith(_UNSUPPORTED):
            raise PatchError(f"{git['path']}: {line.split(' from')[0].strip()!r} changes "
                             "(renames, modes, binary files) are not supported in backports")
        if git is not None and line.startswith("new file mode"):
            git["new"] = True
        if git is not None and line.startswith("deleted file mode"):
            git["deleted"] = True
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            git = None
            files.append(FilePatch(_strip(line[4:]), _strip(lines[i + 1][4:])))
            i += 2
            continue
        m = _HUNK.match(line)
        if m and files and git is None:
            files[-1].hunks.append(_hunk(lines, i, m, files[-1].path))
            i += _hunk_length(lines, i, m)
            continue
        i += 1  # "index ...", similarity lines and the trailing signature
    close_git()
    if not files:
        raise PatchError("no file changes found (expected '--- a/…' and '+++ b/…' lines)")
    return "\n".join(header), files


def _counts(m) -> tuple[int, int]:
    return (int(m.group(2)) if m.group(2) is not None else 1,
            int(m.group(4)) if m.group(4) is not None else 1)


def _hunk(lines: list[str], i: int, m, path: str) -> Hunk:
    old_len, new_len = _counts(m)
    hunk = Hunk(lines[i], int(m.group(1)))
    old_seen = new_seen = 0
    last = None
    i += 1
    while i < len(lines) and (old_seen < old_len or new_seen < new_len
                              or lines[i].startswith("\\")):
        body = lines[i]
        tag, rest = body[:1], body[1:]
        if tag == "\\":  # "\ No newline at end of file", for the line before
            if last in (" ", "+"):
                hunk.new_eof_newline = False
        elif tag in (" ", ""):
            hunk.old.append(rest)
            hunk.new.append(rest)
            old_seen += 1
            new_seen += 1
        elif tag == "-":
            hunk.old.append(rest)
            old_seen += 1
        elif tag == "+":
            hunk.new.append(rest)
            new_seen += 1
        else:
            raise PatchError(f"{path}: {hunk.header}: unexpected line {body!r}")
        last = tag or " "
        i += 1
    if old_seen != old_len or new_seen != new_len:
        raise PatchError(f"{path}: {hunk.header}: the hunk is truncated")
    return hunk


def _hunk_length(lines: list[str], i: int, m) -> int:
    old_len, new_len = _counts(m)
    n, old_seen, new_seen = 1, 0, 0
    while i + n < len(lines) and (old_seen < old_len or new_seen < new_len
                                  or lines[i + n].startswith("\\")):
        tag = lines[i + n][:1]
        old_seen += tag in (" ", "", "-")
        new_seen += tag in (" ", "", "+")
        n += 1
    return n


def apply(files: dict[str, bytes], patch: FilePatch) -> bytes | None:
    """The new bytes of ``patch.path`` (None when the patch deletes it)."""
    if patch.old_path is None:
        if patch.path in files:
            raise PatchError(f"{patch.path}: the patch creates it, but it exists")
        text_lines, eof_newline = [], True
    else:
        if patch.old_path not in files:
            raise PatchError(f"{patch.old_path}: no such file in the package")
        try:
            text = files[patch.old_path].decode("utf-8")
        except UnicodeDecodeError:
            raise PatchError(f"{patch.old_path}: not a UTF-8 text file") from None
        eof_newline = text.endswith("\n") or not text
        text_lines = _lines(text)
    offset, floor = 0, 0  # floor: hunks apply in order, below the previous one
    for number, hunk in enumerate(patch.hunks, 1):
        base = hunk.old_start - 1 if hunk.old else hunk.old_start  # 0-based, as written
        at = _find(text_lines, hunk.old, base + offset, floor)
        if at is None:
            raise PatchError(f"{patch.path}: hunk #{number} does not apply ({hunk.header}): "
                             f"its {len(hunk.old)} lines of context and removals are not in "
                             f"the file")
        text_lines[at:at + len(hunk.old)] = hunk.new
        offset = at - base + len(hunk.new) - len(hunk.old)
        floor = at + len(hunk.new)
        if floor == len(text_lines):
            eof_newline = hunk.new_eof_newline
    if patch.new_path is None:
        if text_lines:
            raise PatchError(f"{patch.path}: the patch deletes it, but lines remain")
        return None
    body = "\n".join(text_lines)
    if text_lines and eof_newline:
        body += "\n"
    return body.encode("utf-8")


def _find(lines: list[str], old: list[str], want: int, floor: int) -> int | None:
    """Where ``old`` occurs in ``lines`` at or below ``floor``, nearest to ``want`` first."""
    if not old:
        return max(floor, min(want, len(lines)))
    n = len(old)
    for delta in range(len(lines) + 1):
        for at in (want - delta, want + delta) if delta else (want,):
            if floor <= at <= len(lines) - n and lines[at:at + n] == old:
                return at
    return None
