"""The lock of the cross toolchain: what builds the locks' C sdists for another architecture.

WORKSPACE's ``debian_source`` names two package lists (policy); this module resolves them into
a lock file of their own, beside the architecture's lock
(constraints/debian-bullseye.cross-arm64.lock.json), so the main lock, which the SBOMs and the
provenance hash, stays byte for byte what it was, and so does the arm64 lock:

- ``cross_packages``: packages of the build architecture (amd64: bullseye's
  gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, ...) with the closure of their Depends and
  Pre-Depends, from the same archives, each at the main lock's version where it holds the
  package (libc6, libstdc++6, zlib1g, ...), else the newest: 32 packages, 124 MB (each entry's
  ``role``: "toolchain").
- ``cross_target_packages``: packages of the target architecture (libpython3.9-dev,
  libpython3.9-minimal, libcrypt-dev for arm64; ``role``: "target"), no dependency followed
  (rules.debian.cross_root takes only their headers and sysconfig data), each at the target
  lock's version of that package, or of the package of the same source it locks
  (libpython3.9-dev at the arm64 lock's python3.9, libcrypt-dev at its libcrypt1's):
  the build must target the very python3.9 of the arm64 image. A version the mirror does not
  serve is an error, not a fallback.

Every chosen file is HEAD-checked as ``debian_lock.prepare_arch`` does (this mirror answers 404
for the arm64 files of bullseye-security). The document records the main lock's and the target
lock's ``packages_sha256``: either resolved again makes this one stale (`does not follow`).
`invoke lock --platform linux/arm64` writes it, `--check` checks it offline, `invoke fetch
--platform linux/arm64` downloads its .debs.
"""

import hashlib
import json
import time
from pathlib import Path

from rules.common.cache import default_cache
from rules.common.errors import StaleLockError, UserError
from rules.debian import debian_index
from rules.fetch import download
from rules.load.model import DebianSource, Project
from rules.lock import debian_lock
from rules.lock.debian_lock import DebianLockResult

LOCK_VERSION = 1


def lock_path(source: DebianSource, target: str) -> str:
    """constraints/debian-bullseye.lock.json -> constraints/debian-bullseye.cross-arm64.lock.json"""
    debian_lock.arch_lock_path(source, target)  # a known architecture
    stem = source.lock.removesuffix(".lock.json").removesuffix(".json")
    return f"{stem}.cross-{target}.lock.json"


def inputs(source: DebianSource, target: str, main: dict, target_lock: dict) -> dict:
    return {"archives": [f"{m} {s}" for m, s in source.archives],
            "components": list(source.components), "build_arch": source.arch,
            "target_arch": target, "packages": sorted(source.cross_packages),
            "target_packages": sorted(source.cross_target_packages),
            "pinned_to": main["packages_sha256"],
            "target_pinned_to": target_lock["packages_sha256"]}


def inputs_digest(source: DebianSource, target: str, main: dict, target_lock: dict) -> str:
    text = json.dumps({"lock_version": LOCK_VERSION,
                       **inputs(source, target, main, target_lock)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _declared(source: DebianSource) -> None:
    if not source.cross_packages or not source.cross_target_packages:
        raise UserError(f'WORKSPACE: debian_source "{source.name}" declares no cross_packages '
                        "or cross_target_packages: no cross toolchain to lock")


def prepare(project: Project, target: str, cache: Path | None = None,
            target_lock: dict | None = None) -> DebianLockResult:
    """Resolve the cross lock for ``target`` without writing it. ``target_lock``: the target
    architecture's lock document (default: the committed one, checked)."""
    source = project.debian
    _declared(source)
    rel = lock_path(source, target)
    path = Path(project.root) / rel
    started = time.monotonic()
    main = debian_lock.load(project)
    target_lock = target_lock or debian_lock.load_arch(project, target)
    digest = inputs_digest(source, target, main, target_lock)
    if path.exists():
        try:
            recorded = json.loads(path.read_text())
            if recorded["inputs_sha256"] == digest and debian_lock.packages_intact(recorded):
                return DebianLockResult(rel, "unchanged", len(recorded["packages"]),
                                        time.monotonic() - started, {})
        except (ValueError, KeyError):
            pass
    cache = cache or default_cache()
    pinned = {p["name"]: p["version"] for p in main["packages"]}
    unserved: set[str] = set()
    while True:  # as prepare_arch: never a file the mirror does not serve
        tools = debian_lock.resolve_packages(source, source.arch, cache, prefer=pinned,
                                             unserved=unserved,
                                             roots=sorted(source.cross_packages))
        missing = debian_lock.not_served(
            [p for p in tools if not download.cas_path(cache, p["sha256"]).exists()])
        if not missing:
            break
        unserved |= set(missing)
    packages = ([dict(p, role="toolchain") for p in tools]
                + [dict(p, role="target") for p in target_packages(source, target,
                                                                   target_lock, cache)])
    document = {"lock_version": LOCK_VERSION, "inputs_sha256": digest,
                "packages_sha256": debian_lock.packages_digest(packages),
                "inputs": inputs(source, target, main, target_lock), "packages": packages}
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    old = path.read_text() if path.exists() else None
    action = "unchanged" if text == old else ("rewritten" if old else "written")
    return DebianLockResult(rel, action, len(packages), time.monotonic() - started,
                            {} if text == old else {path: text})


def wanted_versions(names, target_lock: dict, sources: dict[str, str]) -> dict[str, str]:
    """Name -> the version to take: the target lock's of that package, else of the package of
    the same source it locks (``sources``: name -> source, from the index)."""
    locked = {p["name"]: p for p in target_lock["packages"]}
    by_source: dict[str, set[str]] = {}
    for p in target_lock["packages"]:
        by_source.setdefault(p["source"], set()).add(p["version"])
    out = {}
    for name in names:
        if name in locked:
            out[name] = locked[name]["version"]
            continue
        versions = by_source.get(sources.get(name, name), set())
        if len(versions) != 1:
            raise UserError(f"cross target package {name}: the target lock holds "
                            f"{len(versions)} versions of its source "
                            f"{sources.get(name, name)!r}; name a package it locks")
        out[name] = versions.pop()
    return out


def target_packages(source: DebianSource, target: str, target_lock: dict,
                    cache: Path) -> list[dict]:
    names = sorted(source.cross_target_packages)
    found: dict[str, list[dict]] = {}
    for mirror, suite in source.archives:
        for component in source.components:
            for st in debian_index.packages(mirror, suite, component, target,
                                            source.keyring, cache, debian_lock.FIELDS):
                if st["Package"] in names:
                    found.setdefault(st["Package"], []).append(dict(st, _mirror=mirror))
    sources = {n: s[0].get("Source", n).split(" ")[0] for n, s in found.items()}
    wanted = wanted_versions(names, target_lock, sources)
    out = []
    for name in names:
        stanzas = [s for s in found.get(name, []) if s["Version"] == wanted[name]]
        entries = [debian_lock.entry(s, []) for s in stanzas]
        served = [e for e in entries if download.cas_path(cache, e["sha256"]).exists()
                  or not debian_lock.not_served([e])]
        if not served:
            raise UserError(f"cross target package {name} {wanted[name]} ({target}): "
                            f"{'not served by the mirror' if entries else 'not in the index'}; "
                            f"the target headers must match the {target} lock's python")
        out.append(served[0])
    return out


def load(project: Project, target: str) -> dict:
    """The cross lock, checked: written by `invoke lock --platform`, for the current main and
    target locks."""
    source = project.debian
    _declared(source)
    rel = lock_path(source, target)
    path = Path(project.root) / rel
    again = f"run `invoke lock --platform linux/{target}`"
    if not path.exists():
        raise StaleLockError(f"{rel} is missing; {again}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise UserError(f"{rel}: cannot be read ({e}); {again}") from None
    if not debian_lock.packages_intact(document):
        raise StaleLockError(f"stale Debian lock: {rel}'s packages are not the ones `invoke "
                             f"lock` wrote (edited by hand?); {again}")
    main, target_lock = debian_lock.load(project), debian_lock.load_arch(project, target)
    if document.get("inputs_sha256") != inputs_digest(source, target, main, target_lock):
        raise StaleLockError(f"stale Debian lock: {rel} does not follow WORKSPACE's "
                             f"cross packages, {source.lock} and "
                             f"{debian_lock.arch_lock_path(source, target)}; {again}")
    return document
