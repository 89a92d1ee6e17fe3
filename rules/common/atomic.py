"""Write files so that a reader never sees half of one: temp file beside it, then rename."""

import os
import tempfile
from pathlib import Path


def _stage(path: Path, data: bytes, mode: int) -> str:
    """``data`` written whole (fsync'd) to a new temp file beside ``path``; its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    path = Path(path)
    tmp = _stage(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_all(files: dict) -> None:
    """Write each path -> text of ``files`` as one change as far as a file system allows: every
    file is first written whole beside its target, and only when all are written are they
    renamed into place, so a failure (a folder that cannot be made, a full disk) changes
    nothing and says which file, in one line."""
    from rules.common.errors import UserError

    staged: list[tuple[str, Path]] = []
    try:
        for path, text in files.items():
            path = Path(path)
            try:
                staged.append((_stage(path, text.encode("utf-8"), 0o644), path))
            except OSError as e:
                raise UserError(f"cannot write {path} ({e.strerror or e}); no file was "
                                f"changed") from None
        for tmp, path in staged:
            os.replace(tmp, path)
        staged.clear()
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)


def link_or_copy(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` by a hard link (same file system) or a copy; keep an existing one."""
    if Path(dst).exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        import shutil

        shutil.copyfile(src, dst)


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds exactly it; return whether it wrote."""
    path = Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(path, text)
    return True
