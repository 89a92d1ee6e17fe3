"""Build a lock's sdists into wheels, once, offline, inside the Debian root.

The build uses the lock's own pip, setuptools and wheel (installed as package trees and put on
PYTHONPATH): no build isolation, no index, SOURCE_DATE_EPOCH fixed. The wheel is cached by the
digest of everything that went into it.
"""

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from rules.common import atomic
from rules.debian import chroot
from rules.fetch import download
from rules.python import wheel_install
from rules.common.errors import UserError
from rules.fetch.pypi_files import Chosen

BUILD_VERSION = 1
BUILD_TOOLS = ("pip", "setuptools", "wheel")
WHEEL_EPOCH = 315532800  # 1980-01-01, the earliest time a zip file can hold


def build_key(sdist: Chosen, tools: list[Chosen], rootfs_key: str) -> str:
    text = json.dumps([BUILD_VERSION, sdist.sha256, sorted(t.sha256 for t in tools),
                       rootfs_key])
    return hashlib.sha256(text.encode()).hexdigest()


def built_wheel(sdist: Chosen, tools: list[Chosen], rootfs: Path, rootfs_key: str,
                cache: Path) -> tuple[Path, str]:
    """The wheel built from ``sdist`` (path in the CAS, sha256), building it on a miss."""
    record = record_path(cache, build_key(sdist, tools, rootfs_key))
    if record.exists():
        data = json.loads(record.read_text())
        path = download.cas_path(cache, data["sha256"])
        if path.exists():
            return path, data["sha256"]
    trees = {}
    for tool in tools:
        wheel = download.cas_path(cache, tool.sha256)
        tkey = wheel_install.tree_key(tool.sha256, "build-tool")
        trees[tool.name] = wheel_install.install_tree(wheel, tool.filename, cache, tkey,
                                                      tool.name)
    src = download.cas_path(cache, sdist.sha256)
    with tempfile.TemporaryDirectory(prefix="runtime-sdist-") as tmp:
        (Path(tmp) / "src").mkdir()
        (Path(tmp) / "out").mkdir()
        shutil.copy(src, Path(tmp) / "src" / sdist.filename)
        binds = {"src": Path(tmp) / "src", "out": Path(tmp) / "out", **trees}
        path = ":".join(f"/mnt/{name}/site" for name in sorted(trees))
        chroot.run(rootfs, ["python3.9", "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--no-index", "-q", "-w", "/mnt/out",
                            f"/mnt/src/{sdist.filename}"],
                   binds=binds, env={"PYTHONPATH": path, "SOURCE_DATE_EPOCH": str(WHEEL_EPOCH)},
                   what=f"building {sdist.filename} into a wheel")
        wheels = list((Path(tmp) / "out").glob("*.whl"))
        if len(wheels) != 1:
            raise UserError(f"building {sdist.filename} gave {len(wheels)} wheels")
        data = wheels[0].read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        target = download.cas_path(cache, sha)
        if not target.exists():
            atomic.write_bytes(target, data)
    atomic.write_text(record, json.dumps({"sdist": sdist.filename, "wheel": wheels[0].name,
                                          "sha256": sha}) + "\n")
    return target, sha


def record_path(cache: Path, key: str) -> Path:
    """Where the record of a built wheel (sdist name, wheel name, sha256) is kept."""
    return Path(cache) / "sdist-wheels" / f"{key}.json"


def tools_of(chosen: list[Chosen]) -> list[Chosen]:
    tools = [c for c in chosen if c.name in BUILD_TOOLS and c.kind == "wheel"]
    if len(tools) != len(BUILD_TOOLS):
        raise UserError(f"the lock must hold wheels of {', '.join(BUILD_TOOLS)} to build sdists")
    return tools


