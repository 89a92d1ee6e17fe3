"""Locked wheels -> package trees -> image paths.

Each wheel is installed once by pypa's ``installer`` into a package tree in the cache
(``site/`` for purelib and platlib, ``bin/``, ``data/``, ``include/``), keyed by the wheel's
sha256, the install recipe and the compiling interpreter; script shebangs point at the image's
python. Trees are then byte-compiled by the image's own python3.9 (``rules.compile_driver`` in
a chroot of ``rules.python_root``). Shared
objects in image trees lose their symbol tables and debug sections (``rules.elf_strip``), and
the wheel's RECORD is updated to match.
"""

import base64
import contextlib
import csv
import hashlib
import io
import os
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile

from rules import chroot, elf_strip, scratch
from rules.errors import UserError

INSTALL_VERSION = 2  # bump when the recipe changes
PYTHON = "/usr/bin/python3.9"
SITE = "usr/local/lib/python3.9/dist-packages"
# package tree folder -> image path
IMAGE_PATHS = {"site": SITE, "bin": "usr/local/bin", "data": "usr/local",
               "include": "usr/local/include/python3.9"}


def tree_key(wheel_sha256: str, compiler_key: str) -> str:
    """``compiler_key``: the key of the root whose python3.9 compiles the tree."""
    text = f"{INSTALL_VERSION}:{wheel_sha256}:{PYTHON}:{SITE}:{compiler_key}"
    return hashlib.sha256(text.encode()).hexdigest()


def tree_path(cache: Path, key: str) -> Path:
    return Path(cache) / "pkgtrees" / key


def install_tree(wheel: Path, filename: str, cache: Path, key: str, name: str) -> Path:
    """Unpack ``wheel`` (stored as ``filename``) into its package tree in the cache, without
    .pyc (for build tools, which never go into an image)."""
    done = tree_path(cache, key)
    if not done.is_dir():
        done.parent.mkdir(parents=True, exist_ok=True)
        work = _unpack(wheel, filename, done.parent, key, name)
        _publish(work, done)
    return done


@contextlib.contextmanager
def image_trees(wheels: list[tuple[Path, str, str, str]], cache: Path, root):
    """Package trees for (wheel blob, filename, tree key, name), installed, stripped and
    byte-compiled by the python3.9 of ``root()``, in a scratch folder (rules.scratch) that is
    removed on exit. Layers are cached, so the trees are not: they are made on a tmpfs, about
    twice as fast as in the cache's folder."""
    with scratch.folder(cache, "trees") as parent:
        trees = []
        for blob, filename, key, name in wheels:
            trees.append(_unpack(blob, filename, parent, key, name))
            strip_tree(trees[-1])
        compile_trees(root(), trees)
        yield trees


def _unpack(wheel: Path, filename: str, parent: Path, key: str, name: str) -> Path:
    work = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=parent))
    try:
        scheme = {"purelib": work / "site", "platlib": work / "site", "scripts": work / "bin",
                  "data": work / "data", "headers": work / "include" / name}
        destination = SchemeDictionaryDestination(
            {k: str(v) for k, v in scheme.items()}, interpreter=PYTHON, script_kind="posix",
            bytecode_optimization_levels=())
        named = work / ".wheel" / filename
        named.parent.mkdir()
        os.symlink(Path(wheel).resolve(), named)
        with WheelFile.open(named) as source, warnings.catch_warnings():
            # installer skips stray __pycache__ files some wheels carry, and says so each time
            warnings.filterwarnings("ignore", message="Skip installing .*__pycache__")
            install(source, destination, additional_metadata={"INSTALLER": b"runtime\n"})
        shutil.rmtree(named.parent)
    except Exception as e:
        shutil.rmtree(work, ignore_errors=True)
        raise UserError(f"cannot install {filename}: {e}") from None
    return work


def _publish(work: Path, done: Path) -> None:
    try:
        os.rename(work, done)
    except OSError:  # a concurrent build published the same tree first: identical
        shutil.rmtree(work, ignore_errors=True)


def strip_tree(tree: Path) -> int:
    """Strip the ELF files of a package tree in place and rewrite its RECORD rows for them;
    returns the bytes saved."""
    saved, changed = 0, {}  # changed: path -> (RECORD hash, size) of the stripped file
    for folder in IMAGE_PATHS:
        root = tree / folder
        for path in sorted(root.rglob("*")) if root.is_dir() else []:
            if path.is_symlink() or not path.is_file() or not elf_strip.is_elf(path):
                continue
            before = path.stat().st_size
            data = elf_strip.strip_file(path)
            if data is not None:
                saved += before - len(data)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                changed[path] = (f"sha256={digest.decode()}", str(len(data)))
    if changed:
        for record in (tree / "site").glob("*.dist-info/RECORD"):
            _update_record(record, tree / "site", changed)
    return saved


def _update_record(record: Path, site: Path, changed: dict[Path, tuple[str, str]]) -> None:
    rows = list(csv.reader(io.StringIO(record.read_text(encoding="utf-8"))))
    for row in rows:
        if row and Path(os.path.normpath(site / row[0])) in changed:
            row[1:3] = changed[Path(os.path.normpath(site / row[0]))]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    record.write_text(out.getvalue(), encoding="utf-8")


def compile_trees(root: Path, trees: list[Path]) -> None:
    """Byte-compile trees (all in one parent folder) with the python3.9 of ``root``."""
    if not trees:
        return
    base = trees[0].parent
    driver = Path(__file__).with_name("compile_driver.py")

    def compile_batch(batch):
        inside = [f"/mnt/trees/{t.name}" for t in batch]
        # -B: the root is never written (its standard library is compiled already)
        chroot.run(root, ["python3.9", "-B", "/mnt/driver/compile_driver.py", f"/{SITE}",
                          *inside],
                   binds={"trees": base, "driver": driver.parent},
                   what="byte-compiling Python packages")

    # Each package is compiled in its own forked process, so splitting the list between
    # parallel runs cannot change any byte.
    workers = max(1, min(len(trees), os.cpu_count() or 1, 4))
    batches = [trees[i::workers] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(compile_batch, batches))


def image_entries(trees: list[Path]) -> dict[str, Path]:
    """Image path -> host path for a set of package trees (first tree wins on a clash)."""
    from rules.layer import walk

    entries: dict[str, Path] = {}
    for tree in trees:
        for folder, image_path in IMAGE_PATHS.items():
            root = tree / folder
            if not root.is_dir():
                continue
            for rel in walk(root):
                entries.setdefault(f"{image_path}/{rel}", root / rel)
    return entries
