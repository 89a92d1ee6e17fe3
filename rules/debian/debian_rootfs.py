"""The Debian base: mmdebstrap from the locked .debs, served from a local file:// mirror.

The mirror is made from the content-addressed cache (Packages and Release written here), so the
build needs no network. The root is made reproducible: SOURCE_DATE_EPOCH, the standard
library's .pyc recompiled single-process with a fixed hash seed (py3compile's are not
deterministic), and no apt lists, caches, logs, resolv.conf or hostname left behind.
"""

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator

from rules.common import scratch
from rules.fetch import download
from rules.graph import action_cache, scheduler
from rules.graph.action import Action, Made, digest
from rules.lock import debian_lock
from rules.common.errors import UserError, raise_if_interrupted
from rules.load.model import Project

ROOTFS_VERSION = 5  # bump when the recipe below changes
FACTS = ("etc/passwd",)  # files of the root that actions read after it is gone (the config layer)

# dpkg's settings in the root: no fsync per file (a build's root is written once, then read), and
# what slim images leave out: manuals, docs (but not the copyright files) and translations.
DPKG_CONFIG = [
    "force-unsafe-io",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
]

# The settings go into their own dpkg config file, written by a setup hook: as mmdebstrap's
# --dpkgopt they would send every essential package through mmtarfilter (Python's tarfile,
# about 12 s). Essential packages are thus extracted whole once, and the customize hook
# removes what the rules leave out, so the root ends up as if dpkg had applied them. The file
# stays in the image: a user's apt-get install keeps the image slim too.
_SETUP = r"""
set -e
mkdir -p "$1/etc/dpkg/dpkg.cfg.d"
cp "$2" "$1/etc/dpkg/dpkg.cfg.d/runtime"
"""

_CUSTOMIZE = r"""
set -e
R="$1"
rm -rf "$R"/usr/share/man/* "$R"/usr/share/info/* "$R"/usr/share/lintian/*
find "$R/usr/share/doc" -mindepth 1 ! -type d ! -path "$R/usr/share/doc/*/copyright" -delete
find "$R/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
find "$R/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
chroot "$R" find /etc/alternatives -xtype l -delete  # links to manuals removed above
for d in /usr/lib/python3.9 /usr/lib/python3/dist-packages; do
  [ -d "$R$d" ] || continue
  find "$R$d" -name __pycache__ -type d -prune -exec rm -rf {} +
  chroot "$R" /usr/bin/env -i PYTHONHASHSEED=0 PATH=/usr/bin:/bin \
    python3.9 -m compileall -q -j 1 --invalidation-mode unchecked-hash "$d" >/dev/null
done
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/* "$R"/var/cache/debconf/*-old \
  "$R"/var/lib/dpkg/*-old "$R"/var/log/* "$R"/etc/resolv.conf "$R"/etc/hostname \
  "$R"/etc/machine-id "$R"/var/lib/dbus/machine-id "$R"/root/.cache \
  "$R"/var/lib/apt/lists/lock "$R"/var/cache/ldconfig/aux-cache
: > "$R/etc/machine-id"
mkdir -p "$R/var/lib/apt/lists/partial" "$R/var/cache/apt/archives/partial"
"""


def root_inputs(project: Project, epoch: int) -> dict[str, str]:
    """Named inputs of the root: every locked package, the recipe, the clamp, the sources."""
    named = {f"deb {p['name']}": p["sha256"] for p in debian_lock.load(project)["packages"]}
    named.update({
        "recipe": digest([ROOTFS_VERSION, DPKG_CONFIG, _SETUP, _CUSTOMIZE]),
        "epoch": str(epoch), "archives": digest([list(a) for a in project.debian.archives]),
        "sources.list": sources_list(project)})
    if project.debian.root_builder == "extract":  # (the default's keys stay as they were)
        from rules.debian import extract_root

        named["recipe"] = extract_root.recipe_digest()
        named["builder"] = "extract"
    return named


def root_action(project: Project, epoch: int) -> Action:
    """The action that makes the Debian root as a tree of the cache (for what runs in it: sdist
    builds, the PEX). Its record keeps the files later actions read (FACTS) as values."""
    def run(ctx) -> Made:
        done = action_cache.tree_path(ctx.cache, "debian root", root.key)
        if not done.is_dir():  # the rename in publish() is the commit: a folder there is whole
            with made(project, ctx.cache, epoch) as tmp:
                publish(tmp, done)
        return Made(trees={"root": done.relative_to(ctx.cache).as_posix()},
                    values=facts(done))

    root = Action("debian root", f"{project.debian.name} {project.debian.arch}",
                  root_inputs(project, epoch), run, urgent=True)
    return root


def facts(root: Path) -> dict[str, str]:
    """The files of a root that actions read after it is gone (the config layer's passwd)."""
    return {rel: (root / rel).read_text(encoding="utf-8") for rel in FACTS}


def sources_list(project: Project) -> str:
    comps = " ".join(project.debian.components)
    return "".join(f"deb {m} {s} {comps}\n" for m, s in project.debian.archives)


def build(project: Project, cache: Path, epoch: int) -> Path:
    """The Debian root folder for this lock, in the cache (made and copied there on a miss)."""
    root = root_action(project, epoch)
    return scheduler.run([root], cache)[root].record.tree(cache, "root")


@contextlib.contextmanager
def made(project: Project, cache: Path, epoch: int) -> Iterator[Path]:
    """A new Debian root for this lock, in a scratch folder (rules.common.scratch) removed on exit.
    An image build writes its base layer from it and never copies it into the cache (about
    1.4 s and 300 MB)."""
    packages = debian_lock.load(project)["packages"]
    if project.debian.root_builder == "extract":
        from rules.debian import extract_root

        with scratch.folder(cache, "rootfs") as work:
            target = work / "root"
            target.mkdir()
            extract_root.make(packages, cache, target, project.debian.arch, epoch,
                              sources_list(project))
            _check_versions(target, packages)
            yield target
        return
    for tool in ("mmdebstrap", "dpkg-deb", "unshare"):
        if not shutil.which(tool):
            raise UserError(f"{tool} is missing: apt-get install mmdebstrap dpkg util-linux")
    # Made on a tmpfs (rules.common.scratch): dpkg's tens of thousands of small files cost about a
    # quarter less time there.
    with scratch.folder(cache, "rootfs") as work:
        mirror = work / "mirror"
        suite = project.debian.archives[0][1]
        _write_mirror(mirror, packages, cache, suite, project.debian.arch)
        target = work / "root"
        target.mkdir()
        wanted = [p["name"] for p in packages if not p["essential"]]
        hook = work / "customize.sh"
        hook.write_text(_CUSTOMIZE)
        setup = work / "setup.sh"
        setup.write_text(_SETUP)
        dpkg_cfg = work / "dpkg.cfg"
        dpkg_cfg.write_text("".join(f"{rule}\n" for rule in DPKG_CONFIG))
        dpkg_cfg.chmod(0o644)
        sources = work / "sources.list"
        sources.write_text(sources_list(project))
        sources.chmod(0o644)  # copy-in keeps the mode: never let the caller's umask in
        # A private mount namespace: a build killed at any point leaves no mounts behind.
        cmd = ["unshare", "--mount", "--propagation", "private", "--fork",
               "mmdebstrap", "--quiet", "--mode=root", "--variant=minbase",
               f"--architectures={project.debian.arch}", "--components=main",
               f"--include={','.join(sorted(wanted))}",
               "--aptopt=Acquire::Check-Valid-Until \"false\"",
               f"--setup-hook=sh {setup} \"$1\" {dpkg_cfg}",
               f"--customize-hook=sh {hook} \"$1\"",
               f"--customize-hook=copy-in {sources} /etc/apt/",
               suite, str(target),
               f"deb [trusted=yes] copy://{mirror} {suite} main"]
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), TMPDIR=str(work),
                   LC_ALL="C.UTF-8", TZ="UTC")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              preexec_fn=lambda: os.umask(0o022))
        if proc.returncode != 0:
            raise_if_interrupted(proc.returncode)
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            raise UserError(f"mmdebstrap failed:\n{tail}")
        _check_versions(target, packages)
        yield target


def publish(root: Path, done: Path) -> None:
    """Copy a root made by ``made`` into the cache at ``done`` (complete, or not at all)."""
    copy = Path(tempfile.mkdtemp(prefix=f".{done.name[:12]}-", dir=_mkdir(done.parent)))
    try:
        proc = subprocess.run(["cp", "-a", "--", f"{root}/.", str(copy)], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise UserError(f"cannot copy the Debian root into the cache: {proc.stderr.strip()}")
        os.rename(copy, done)
    except OSError:  # another build finished first: theirs is the same
        if not done.is_dir():
            raise
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_mirror(mirror: Path, packages: list[dict], cache: Path, suite: str, arch: str):
    pool = mirror / "pool"
    pool.mkdir(parents=True)
    stanzas = []
    for p in packages:
        blob = download.cas_path(cache, p["sha256"])
        if not blob.exists():
            raise UserError(f"{p['filename']} is not in the cache: run `invoke fetch`")
        name = Path(p["filename"]).name
        os.symlink(blob, pool / name)
        control = control_text(blob).rstrip("\n")
        stanzas.append(f"{control}\nFilename: pool/{name}\nSize: {p['size']}\n"
                       f"SHA256: {p['sha256']}\n")
    binary = mirror / "dists" / suite / "main" / f"binary-{arch}"
    binary.mkdir(parents=True)
    index = "\n".join(stanzas).encode()
    (binary / "Packages").write_bytes(index)
    digest = hashlib.sha256(index).hexdigest()
    (mirror / "dists" / suite / "Release").write_text(
        f"Suite: {suite}\nCodename: {suite}\nArchitectures: {arch}\nComponents: main\n"
        f"SHA256:\n {digest} {len(index)} main/binary-{arch}/Packages\n")


def control_text(deb: Path) -> str:
    """The control file of a .deb, as `dpkg-deb -f` prints it (read here: one process per
    package cost about a second for 160 packages)."""
    with open(deb, "rb") as f:
        if f.read(8) == b"!<arch>\n":
            while len(header := f.read(60)) == 60:
                name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
                data = f.read(size)
                f.read(size % 2)
                if not name.startswith("control.tar"):
                    continue
                try:
                    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                        for member in tar:
                            if member.name in ("./control", "control"):
                                return tar.extractfile(member).read().decode()
                except tarfile.ReadError:  # a compression tarfile lacks (zstd)
                    break
    return subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True,
                          check=True).stdout


def _check_versions(root: Path, packages: list[dict]) -> None:
    status = (root / "var/lib/dpkg/status").read_text()
    installed = {}
    for block in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if ": " in line and not line.startswith(" "))
        if fields.get("Status", "").endswith(" installed"):
            installed[fields["Package"]] = fields["Version"]
    wanted = {p["name"]: p["version"] for p in packages}
    if installed != wanted:
        extra = sorted(set(installed) - set(wanted))
        missing = sorted(set(wanted) - set(installed))
        raise UserError(f"Debian root differs from the lock: extra {extra}, missing {missing}")


check_versions = _check_versions  # (rules.debian.arch_root checks its roots the same way)
