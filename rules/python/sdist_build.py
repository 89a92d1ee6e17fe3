"""Build a lock's sdists into wheels, once, offline, inside the Debian root.

The build uses the lock's own pip, setuptools and wheel (installed as package trees and put on
PYTHONPATH): no build isolation, no index, SOURCE_DATE_EPOCH fixed. The wheel is cached by the
digest of everything that went into it: an action of the build graph (kind "sdist wheel"),
run by `invoke fetch` so that `invoke image` finds the wheels made.
"""

import hashlib
import shutil
import tempfile
from pathlib import Path

from rules.common import atomic
from rules.debian import chroot
from rules.fetch import download
from rules.python import wheel_install
from rules.common.errors import UserError
from rules.fetch.pypi_files import Chosen
from rules.graph.action import Action, Made

BUILD_VERSION = 1
BUILD_TOOLS = ("pip", "setuptools", "wheel")
WHEEL_EPOCH = 315532800  # 1980-01-01, the earliest time a zip file can hold


def action(sdist: Chosen, tools: list[Chosen], root: Action) -> Action:
    """The action that builds ``sdist`` into a wheel in the Debian root of ``root`` (a tree
    action), with the lock's build ``tools`` (each a package tree action)."""
    trees = [wheel_install.tool_tree_action(t) for t in tools]

    def run(ctx) -> Made:
        rootfs = ctx.dep(root).tree(ctx.cache, "root")
        binds = {tool.name: ctx.dep(tree).tree(ctx.cache, "tree")
                 for tool, tree in zip(tools, trees)}
        src = download.cas_path(ctx.cache, sdist.sha256)
        with tempfile.TemporaryDirectory(prefix="runtime-sdist-") as tmp:
            (Path(tmp) / "src").mkdir()
            (Path(tmp) / "out").mkdir()
            shutil.copy(src, Path(tmp) / "src" / sdist.filename)
            path = ":".join(f"/mnt/{name}/site" for name in sorted(binds))
            binds.update({"src": Path(tmp) / "src", "out": Path(tmp) / "out"})
            chroot.run(rootfs, ["python3.9", "-m", "pip", "wheel", "--no-deps",
                                "--no-build-isolation", "--no-index", "-q", "-w", "/mnt/out",
                                f"/mnt/src/{sdist.filename}"],
                       binds=binds,
                       env={"PYTHONPATH": path, "SOURCE_DATE_EPOCH": str(WHEEL_EPOCH)},
                       what=f"building {sdist.filename} into a wheel")
            wheel = one_wheel(Path(tmp) / "out", f"building {sdist.filename}")
            return stored(ctx.cache, wheel)

    return Action("sdist wheel", f"{sdist.name} ({sdist.filename})",
                  {"sdist": sdist.sha256, "recipe": str(BUILD_VERSION)}, run,
                  deps=(root, *trees))


def one_wheel(folder: Path, what: str) -> Path:
    """The one wheel a build wrote into ``folder``."""
    wheels = list(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise UserError(f"{what} gave {len(wheels)} wheels")
    return wheels[0]


def stored(cache: Path, wheel: Path) -> Made:
    """``wheel`` put in the CAS (atomically): the Made of a wheel-building action."""
    data = wheel.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    target = download.cas_path(cache, sha)
    if not target.exists():
        atomic.write_bytes(target, data)
    return Made(blobs={"wheel": (sha, len(data))}, values={"filename": wheel.name})


def tools_of(chosen: list[Chosen]) -> list[Chosen]:
    tools = [c for c in chosen if c.name in BUILD_TOOLS and c.kind == "wheel"]
    if len(tools) != len(BUILD_TOOLS):
        raise UserError(f"the lock must hold wheels of {', '.join(BUILD_TOOLS)} to build sdists")
    return tools


