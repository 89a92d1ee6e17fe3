"""The Debian lock: the image's package set, resolved to exact .debs (rules_distroless shape).

Roots are the Essential and Priority: required packages (what mmdebstrap's minbase installs) plus
the packages WORKSPACE names; the closure follows Depends and Pre-Depends, taking the newest
version across the archives (bullseye, -updates, -security) and the first alternative that can
be satisfied. The JSON records its inputs, so ``--check`` works offline.
"""

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from rules.common import atomic
from rules.fetch import download
from rules.debian import debian_index, debian_version
from rules.common.errors import StaleLockError, UserError
from rules.load.model import DebianSource, Project
from rules.common.cache import default_cache

LOCK_VERSION = 1
FIELDS = ["Package", "Version", "Architecture", "SHA256", "Size", "Filename", "Source",
          "Priority", "Essential", "Provides", "Depends", "Pre-Depends"]  # what the lock reads


def inputs(source: DebianSource) -> dict:
    return {
        "archives": [f"{m} {s}" for m, s in source.archives],
        "components": list(source.components),
        "arch": source.arch,
        "packages": sorted(source.packages),
    }


def inputs_digest(source: DebianSource) -> str:
    text = json.dumps({"lock_version": LOCK_VERSION, **inputs(source)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Universe:
    """Every package of the archives, newest version per name, and who provides what."""

    def __init__(self, prefer: dict[str, str] | None = None):
        self.best: dict[str, dict] = {}
        self.providers: dict[str, list[tuple[str, str | None]]] = {}
        # name -> version to take whenever an archive holds it, newer ones notwithstanding (an
        # architecture's lock follows the amd64 lock's versions where the mirror serves them)
        self.prefer = prefer or {}
        self.unserved: set[str] = set()  # URLs the mirror does not serve: never chosen

    def add(self, stanza: dict, mirror: str) -> None:
        name = stanza["Package"]
        if f"{mirror}/{stanza['Filename']}" in self.unserved:
            return
        current = self.best.get(name)
        wanted = self.prefer.get(name)
        if current and wanted is not None:
            if current["Version"] == wanted or (
                    stanza["Version"] != wanted
                    and debian_version.compare(stanza["Version"], current["Version"]) <= 0):
                return
        elif current and debian_version.compare(stanza["Version"], current["Version"]) <= 0:
            return
        self.best[name] = dict(stanza, _mirror=mirror)

    def index_provides(self) -> None:
        for name, stanza in sorted(self.best.items()):
            for item in _split(stanza.get("Provides", "")):
                virtual, op, version = debian_version.parse_relation(item)
                self.providers.setdefault(virtual, []).append(
                    (name, version if op == "=" else None))


def _split(field: str) -> list[str]:
    return [p.strip() for p in field.replace("\n", " ").split(",") if p.strip()]


def resolve(universe: Universe, roots: list[str]) -> dict[str, list[str]]:
    """Package name -> resolved dependency names, for the closure of ``roots``."""
    chosen: dict[str, list[str]] = {}
    queue = list(roots)
    while queue:
        name = queue.pop(0)
        if name in chosen:
            continue
        stanza = universe.best.get(name)
        if stanza is None:
            raise UserError(f"Debian package '{name}' is not in the archives")
        deps = []
        for field in ("Pre-Depends", "Depends"):
            for group in _split(stanza.get(field, "")):
                pick = _satisfy(universe, chosen, queue, group, name)
                deps.append(pick)
                queue.append(pick)
        chosen[name] = sorted(set(deps))
    return chosen


def _satisfy(universe: Universe, chosen: dict, queue: list, group: str, owner: str) -> str:
    options = [debian_version.parse_relation(a) for a in group.split("|")]
    candidates = []
    for dep, op, version in options:
        real = universe.best.get(dep)
        if real and debian_version.satisfies(real["Version"], op, version):
            candidates.append(dep)
        for provider, provided in universe.providers.get(dep, []):
            if op is None or (provided and debian_version.satisfies(provided, op, version)):
                candidates.append(provider)
    if not candidates:
        raise UserError(f"Debian package '{owner}': cannot satisfy dependency '{group}'")
    for candidate in candidates:  # prefer what is already in the set
        if candidate in chosen or candidate in queue:
            return candidate
    return candidates[0]


@dataclass
class DebianLockResult:
    path: str
    action: str
    packages: int
    seconds: float
    files: dict  # what to write: absolute path -> text (empty when unchanged)


def lock(project: Project, cache: Path | None = None) -> DebianLockResult:
    """Resolve and write the Debian lock."""
    result = prepare(project, cache)
    atomic.write_all(result.files)
    return result


def prepare(project: Project, cache: Path | None = None) -> DebianLockResult:
    """Resolve the Debian lock without writing it: the result says what to write."""
    source = project.debian
    path = Path(project.root) / source.lock
    started = time.monotonic()
    digest = inputs_digest(source)
    if path.exists():
        try:
            recorded = json.loads(path.read_text())
            if recorded["inputs_sha256"] == digest and packages_intact(recorded):
                count = len(json.loads(path.read_text())["packages"])
                return DebianLockResult(source.lock, "unchanged", count,
                                        time.monotonic() - started, {})
        except (ValueError, KeyError):
            pass
    packages = resolve_packages(source, source.arch, cache or default_cache())
    document = {"lock_version": LOCK_VERSION, "inputs_sha256": digest,
                "packages_sha256": packages_digest(packages),
                "inputs": inputs(source), "packages": packages}
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    old = path.read_text() if path.exists() else None
    action = "unchanged" if text == old else ("rewritten" if old else "written")
    return DebianLockResult(source.lock, action, len(packages), time.monotonic() - started,
                            {} if text == old else {path: text})


def resolve_packages(source: DebianSource, arch: str, cache: Path,
                     prefer: dict[str, str] | None = None,
                     unserved: set[str] = frozenset(), roots: list[str] | None = None
                     ) -> list[dict]:
    """The lock's package entries for ``arch``: the closure of the Essential/required base and
    the source's packages (or of ``roots`` alone, when given), newest versions (or
    ``prefer``'s, where an archive holds them), never a file of ``unserved`` (URLs)."""
    universe = Universe(prefer)
    universe.unserved = set(unserved)
    for mirror, suite in source.archives:
        for component in source.components:
            for stanza in debian_index.packages(mirror, suite, component, arch,
                                                source.keyring, cache, FIELDS):
                universe.add(stanza, mirror)
    universe.index_provides()
    if roots is None:
        roots = sorted(n for n, s in universe.best.items()
                       if s.get("Essential") == "yes" or s.get("Priority") == "required"
                       ) + sorted(source.packages)
    closure = resolve(universe, roots)
    return [entry(universe.best[name], closure[name]) for name in sorted(closure)]


def entry(stanza: dict, depends: list[str]) -> dict:
    """The lock's entry of an index stanza (``_mirror``: the archive it came from)."""
    name = stanza["Package"]
    return {
        "name": name,
        "version": stanza["Version"],
        "arch": stanza["Architecture"],
        "sha256": stanza["SHA256"],
        "size": int(stanza["Size"]),
        "filename": stanza["Filename"],
        "url": f"{stanza['_mirror']}/{stanza['Filename']}",
        "source": stanza.get("Source", name).split(" ")[0],
        "priority": stanza.get("Priority", ""),
        "essential": stanza.get("Essential") == "yes",
        "depends": depends,
    }


def packages_digest(packages: list) -> str:
    canonical = json.dumps(packages, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def packages_intact(document: dict) -> bool:
    """Whether the packages are the ones `invoke lock` wrote (a hand edit makes the lock stale)."""
    return document.get("packages_sha256") == packages_digest(document.get("packages"))


def load(project: Project) -> dict:
    path = Path(project.root) / project.debian.lock
    if not path.exists():
        raise StaleLockError(f"{project.debian.lock} is missing; run `invoke lock`")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{project.debian.lock}:{e.lineno}:{e.colno}: {e.msg}; run `invoke "
                        f"lock` to write it again") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{project.debian.lock}: cannot be read ({e})") from None
    if not isinstance(document, dict):
        raise UserError(f"{project.debian.lock}: not a Debian lock; run `invoke lock`")
    return document


def check(project: Project) -> None:
    document = load(project)
    if not packages_intact(document):
        raise StaleLockError(f"stale Debian lock: {project.debian.lock}'s packages are not the "
                             f"ones `invoke lock` wrote (edited by hand?); run `invoke lock`")
    if document.get("inputs_sha256") == inputs_digest(project.debian):
        return
    import difflib

    recorded = json.dumps(document.get("inputs", {}), indent=2, sort_keys=True).splitlines()
    wanted = json.dumps(inputs(project.debian), indent=2, sort_keys=True).splitlines()
    diff = "\n".join(difflib.unified_diff(recorded, wanted, f"{project.debian.lock} (inputs)",
                                          "WORKSPACE debian_source", lineterm=""))
    raise StaleLockError(f"stale Debian lock; run `invoke lock`:\n{diff}")


# Other architectures -------------------------------------------------------------------------
# A lock for another architecture (arm64) sits beside the main one, in a file of its own
# (constraints/debian-bullseye.arm64.lock.json), so the amd64 lock, and everything that hashes it
# (the SBOMs, the provenance), stays byte for byte what it was. It is resolved from the same
# archives, pinned to the main lock: every package takes the main lock's version when the
# mirror serves it for that architecture, else the newest (listed under "differences").

ARCHES = ("arm64",)  # the architectures `invoke lock --platform` may add


def arch_lock_path(source: DebianSource, arch: str) -> str:
    """constraints/debian-bullseye.lock.json -> constraints/debian-bullseye.arm64.lock.json"""
    if arch not in ARCHES:
        raise UserError(f"no Debian lock for architecture {arch!r} (known: {', '.join(ARCHES)})")
    stem = source.lock.removesuffix(".lock.json").removesuffix(".json")
    return f"{stem}.{arch}.lock.json"


def arch_inputs(source: DebianSource, arch: str, main: dict) -> dict:
    return {**inputs(source), "arch": arch, "pinned_to": main["packages_sha256"]}


def arch_inputs_digest(source: DebianSource, arch: str, main: dict) -> str:
    text = json.dumps({"lock_version": LOCK_VERSION, **arch_inputs(source, arch, main)},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_arch(project: Project, arch: str, cache: Path | None = None) -> DebianLockResult:
    """Resolve the ``arch`` lock (the main lock must be current) without writing it."""
    source = project.debian
    rel = arch_lock_path(source, arch)
    path = Path(project.root) / rel
    started = time.monotonic()
    check(project)
    main = load(project)
    digest = arch_inputs_digest(source, arch, main)
    if path.exists():
        try:
            recorded = json.loads(path.read_text())
            if recorded["inputs_sha256"] == digest and packages_intact(recorded):
                return DebianLockResult(rel, "unchanged", len(recorded["packages"]),
                                        time.monotonic() - started, {})
        except (ValueError, KeyError):
            pass
    pinned = {p["name"]: p["version"] for p in main["packages"]}
    cache = cache or default_cache()
    unserved: set[str] = set()
    while True:  # an index may list files its mirror no longer serves: resolve without them
        packages = resolve_packages(source, arch, cache, prefer=pinned, unserved=unserved)
        missing = not_served([p for p in packages
                              if not download.cas_path(cache, p["sha256"]).exists()])
        if not missing:
            break
        unserved |= set(missing)
    got = {p["name"]: p["version"] for p in packages}
    gone = {url.rsplit("/", 1)[1].split("_")[0] for url in unserved}
    differences = [
        {"name": n, "main": pinned.get(n), arch: got.get(n),
         "why": ("the mirror does not serve " + arch + " " + str(pinned.get(n))
                 if n in gone else "not in the " + arch + " index")}
        for n in sorted(set(pinned) | set(got)) if pinned.get(n) != got.get(n)]
    document = {"lock_version": LOCK_VERSION, "inputs_sha256": digest,
                "packages_sha256": packages_digest(packages),
                "inputs": arch_inputs(source, arch, main), "differences": differences,
                "packages": packages}
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    old = path.read_text() if path.exists() else None
    action = "unchanged" if text == old else ("rewritten" if old else "written")
    return DebianLockResult(rel, action, len(packages), time.monotonic() - started,
                            {} if text == old else {path: text})


def not_served(packages: list[dict]) -> list[str]:
    """The URLs of these packages the mirror answers 404 for (one HEAD request each)."""
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    def gone(url: str) -> bool:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60).close()
            return False
        except urllib.error.HTTPError as e:
            if e.code in (404, 410):
                return True
            raise UserError(f"cannot reach {url}: {e}") from None
        except OSError as e:
            raise UserError(f"cannot reach {url}: {e}") from None

    urls = [p["url"] for p in packages]
    with ThreadPoolExecutor(8) as pool:
        return [u for u, g in zip(urls, pool.map(gone, urls)) if g]


def load_arch(project: Project, arch: str) -> dict:
    """The ``arch`` lock, checked: written by `invoke lock --platform`, for the current main
    lock (a main lock resolved again makes it stale)."""
    rel = arch_lock_path(project.debian, arch)
    path = Path(project.root) / rel
    if not path.exists():
        raise StaleLockError(f"{rel} is missing; run `invoke lock --platform linux/{arch}`")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise UserError(f"{rel}: cannot be read ({e}); run `invoke lock --platform "
                        f"linux/{arch}`") from None
    if not packages_intact(document):
        raise StaleLockError(f"stale Debian lock: {rel}'s packages are not the ones `invoke "
                             f"lock` wrote (edited by hand?); run `invoke lock --platform "
                             f"linux/{arch}`")
    if document.get("inputs_sha256") != arch_inputs_digest(project.debian, arch,
                                                           load(project)):
        raise StaleLockError(f"stale Debian lock: {rel} does not follow "
                             f"{project.debian.lock}; run `invoke lock --platform linux/{arch}`")
    return document


def packages_for(project: Project, arch: str | None = None) -> list[dict]:
    """The locked packages of ``arch`` (the main lock's for None or its own architecture)."""
    if arch in (None, project.debian.arch):
        return load(project)["packages"]
    return load_arch(project, arch)["packages"]
