"""Apply a unified diff (as `git format-patch` or `diff -u` write them) to in-memory files.

Pure Python, so the result depends on nothing installed on the host. Hunks must match exactly
(no fuzz); a hunk may move (offset) when lines above it changed, and the nearest match wins.
A hunk that matches nowhere raises PatchError naming the file, the hunk number and its header.
"""

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(Exception):
    pass


@dataclass
class Hunk:
    header: str
    old_start: int  # 1-based, as written
    old: list[str] = field(default_factory=list)  # context and removed lines
    new: list[str] = field(default_factory=list)  # context and added lines
    old_eof_newline: bool = True
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


def parse(text: str) -> tuple[str, list[FilePatch]]:
    """(header before the first file, file patches)."""
    lines = text.splitlines()
    header, files, i = [], [], 0
    while i < len(lines) and not (lines[i].startswith("--- ") and i + 1 < len(lines)
                                  and lines[i + 1].startswith("+++ ")):
        header.append(lines[i])
        i += 1
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            files.append(FilePatch(_strip(line[4:]), _strip(lines[i + 1][4:])))
            i += 2
            continue
        m = _HUNK.match(line)
        if m and files:
            old_len = int(m.group(2)) if m.group(2) is not None else 1
            new_len = int(m.group(4)) if m.group(4) is not None else 1
            hunk = Hunk(line, int(m.group(1)))
            i += 1
            old_seen = new_seen = 0
            last = None
            while i < len(lines) and (old_seen < old_len or new_seen < new_len
                                      or lines[i].startswith("\\")):
                body = lines[i]
                tag, rest = body[:1], body[1:]
                if tag == "\\":  # "\ No newline at end of file" for the line before
                    if last in (" ", "-"):
                        hunk.old_eof_newline = False
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
                    raise PatchError(f"{files[-1].path}: {hunk.header}: unexpected line "
                                     f"{body!r}")
                last = tag or " "
                i += 1
            if old_seen != old_len or new_seen != new_len:
                raise PatchError(f"{files[-1].path}: {hunk.header}: the hunk is truncated")
            files[-1].hunks.append(hunk)
            continue
        i += 1  # git's "diff --git", "index ..." lines and the trailing signature
    if not files:
        raise PatchError("no file changes found (expected '--- a/…' and '+++ b/…' lines)")
    return "\n".join(header), files


def apply(files: dict[str, bytes], patch: FilePatch) -> bytes | None:
    """The new bytes of ``patch.path`` (None when the patch deletes it)."""
    if patch.old_path is None:
        if patch.path in files:
            raise PatchError(f"{patch.path}: the patch creates it, but it exists")
        text_lines, eof_newline = [], True
    else:
        if patch.old_path not in files:
            raise PatchError(f"{patch.old_path}: no such file in the package")
        text = files[patch.old_path].decode("utf-8")
        eof_newline = text.endswith("\n") or not text
        text_lines = text.splitlines()
    offset = 0
    for number, hunk in enumerate(patch.hunks, 1):
        want = hunk.old_start - 1 + offset if hunk.old else hunk.old_start + offset
        at = _find(text_lines, hunk.old, want)
        if at is None:
            raise PatchError(f"{patch.path}: hunk #{number} does not apply ({hunk.header}): "
                             f"its {len(hunk.old)} lines of context and removals are not in "
                             f"the file")
        text_lines[at:at + len(hunk.old)] = hunk.new
        offset = at - (hunk.old_start - 1) + len(hunk.new) - len(hunk.old)
        if at + len(hunk.new) == len(text_lines):
            eof_newline = hunk.new_eof_newline
    if patch.new_path is None:
        if text_lines:
            raise PatchError(f"{patch.path}: the patch deletes it, but lines remain")
        return None
    body = "\n".join(text_lines)
    if text_lines and eof_newline:
        body += "\n"
    return body.encode("utf-8")


def _find(lines: list[str], old: list[str], want: int) -> int | None:
    """Where ``old`` occurs in ``lines``, nearest to ``want`` first."""
    if not old:
        return max(0, min(want, len(lines)))
    n = len(old)
    for delta in range(len(lines) + 1):
        for at in (want - delta, want + delta) if delta else (want,):
            if 0 <= at <= len(lines) - n and lines[at:at + n] == old:
                return at
    return None
