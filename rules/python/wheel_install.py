"""Locked wheels -> package trees -> image paths.

Each wheel is unpacked (``rules.python.wheel_unpack``) into a package tree (``site/`` for purelib
and platlib, ``bin/``, ``data/``, ``include/``), keyed by the wheel's sha256, the install recipe and
the compiling interpreter; script shebangs point at the image's python. Image trees are then
byte-compiled by the image's own python3.9 (``rules.python.compile_driver`` in a chroot of
``rules.debian.python_root``); their shared objects lose their symbol tables and debug sections on
the way (``rules.python.elf_strip``), before RECORD is written. Build tools' trees (for building
sdists) are cached, without .pyc.
"""

import contextlib
import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rules.common import scratch
from rules.debian import chroot
from rules.fetch import download
from rules.graph import action_cache
from rules.graph.action import Action, Made
from rules.python import elf_strip, wheel_unpack

INSTALL_VERSION = 3  # bump when the recipe changes
PYTHON = "/usr/bin/python3.9"
SITE = "usr/local/lib/python3.9/dist-packages"
# package tree folder -> image path
IMAGE_PATHS = {"site": SITE, "bin": "usr/local/bin", "data": "usr/local",
               "include": "usr/local/include/python3.9"}


def tree_key(wheel_sha256: str, compiler_key: str) -> str:
    """``compiler_key``: the key of the root whose python3.9 compiles the tree."""
    text = f"{INSTALL_VERSION}:{wheel_sha256}:{PYTHON}:{SITE}:{compiler_key}"
    return hashlib.sha256(text.encode()).hexdigest()


def tool_tree_action(tool) -> Action:
    """The package tree of a build tool's wheel (``tool``: a rules.fetch.pypi_files.Chosen),
    in the cache, without .pyc: build tools never go into an image."""
    def run(ctx) -> Made:
        done = action_cache.tree_path(ctx.cache, "package tree", action.key)
        if not done.is_dir():
            done.parent.mkdir(parents=True, exist_ok=True)
            wheel = download.cas_path(ctx.cache, tool.sha256)
            work = _unpack(wheel, tool.filename, done.parent, action.key, tool.name)
            _publish(work, done)
        return Made(trees={"tree": done.relative_to(ctx.cache).as_posix()})

    action = Action("package tree", f"{tool.name} ({tool.filename})",
                    {"wheel": tool.sha256, "recipe": str(INSTALL_VERSION), "site": SITE,
                     "python": PYTHON}, run)
    return action


@contextlib.contextmanager
def image_trees(wheels: list[tuple[Path, str, str, str]], cache: Path, root):
    """Package trees for (wheel blob, filename, tree key, name), installed, stripped and
    byte-compiled by the python3.9 of ``root()``, in a scratch folder (rules.common.scratch) that is
    removed on exit. Layers are cached, so the trees are not: they are made on a tmpfs, about
    twice as fast as in the cache's folder."""
    with scratch.folder(cache, "trees") as parent:
        trees = []
        for blob, filename, key, name in wheels:
            trees.append(_unpack(blob, filename, parent, key, name, strip=True))
        compile_trees(root(), trees)
        yield trees


def _unpack(wheel: Path, filename: str, parent: Path, key: str, name: str, *,
            strip: bool = False) -> Path:
    work = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=parent))
    try:
        wheel_unpack.unpack(wheel, filename, work, name, interpreter=PYTHON, layout=IMAGE_PATHS,
                            strip=elf_strip.strip_bytes if strip else None)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return work


def _publish(work: Path, done: Path) -> None:
    try:
        os.rename(work, done)
    except OSError:  # a concurrent build published the same tree first: identical
        shutil.rmtree(work, ignore_errors=True)


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
    from rules.oci.layer import walk

    entries: dict[str, Path] = {}
    for tree in trees:
        for folder, image_path in IMAGE_PATHS.items():
            root = tree / folder
            if not root.is_dir():
                continue
            for rel in walk(root):
                entries.setdefault(f"{image_path}/{rel}", root / rel)
    return entries
