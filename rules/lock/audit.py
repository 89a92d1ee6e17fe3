"""`invoke audit`: the security fixes the locks are missing, found offline.

Debian: every locked package for which an archive of the Debian source (bullseye, -updates,
-security) has a newer version in its index *as last fetched* (rules.debian.debian_index
remembers each index `invoke lock` or `invoke audit --refresh` fetched, with InRelease's Date).
A newer version in -security is a security fix by the archive's definition; one in -updates
or a point release is a stable update. The comparison reads only the cache.

Python: every locked distribution with a known advisory, from PyPI's JSON API
(``/pypi/NAME/VERSION/json``, whose ``vulnerabilities`` are OSV records of the PyPA advisory
database), fetched by `--refresh` and kept in the cache. The index must serve that API: on
2026-12-03 this machine's PyPI answered 404 for every per-version URL (apache-airflow 2.2.4
included) and OSV, GitHub and Debian's security tracker were unreachable, so here the audit can
only say that Python advisories were not checked, and it does, with the reason recorded at the
last refresh. The patched Airflow (``X+runtime.N``) is checked as its upstream ``X``: a match
with a backported fix is for a reader to make (the backports are listed beside it).

Never checked here (said in every report): advisories for Debian packages with no fixed
version yet (they need the security tracker's data), vulnerability scanning of the image's
files (no vulnerability database is reachable), and distributions vendored inside others
(pip's own, listed in the SBOM).
"""

import http.client
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rules.common import atomic
from rules.debian import debian_index, debian_version
from rules.lock import debian_lock, requirements_file
from rules.load.model import Project

ADVISORIES_URL = "https://pypi.org/pypi/{name}/{version}/json"
SNAPSHOT = "audit/python-advisories.json"  # in the cache
FETCH_THREADS = 8
NEVER_CHECKED = (
    "Debian advisories without a fixed version (they need security-tracker.debian.org's data, "
    "not reachable from this machine's network)",
    "the image's files against a vulnerability database (none is reachable: no trivy/grype DB)",
    "distributions vendored inside other distributions (pip's own; the SBOM lists them)",
)


@dataclass(frozen=True)
class DebianFix:
    name: str
    locked: str
    newer: str  # the newest version of any archive
    archive: str  # where that newest version is ("bullseye-security", ...)
    security: bool  # a -security archive has a version newer than the locked one

@dataclass(frozen=True)
class Advisory:
    name: str
    locked: str
    id: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]
    summary: str


@dataclass
class Report:
    debian: list[DebianFix] = field(default_factory=list)
    python: dict[str, list[Advisory]] = field(default_factory=dict)  # by Airflow version
    checked: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)
    debian_checked: bool = False  # at least one index was compared with the lock
    debian_complete: bool = False  # every archive's index was compared with the lock
    python_complete: bool = False  # every pin of every lock audited had advisory data

    @property
    def pending(self) -> int:
        return len(self.debian) + sum(len(a) for a in self.python.values())


# Debian ------------------------------------------------------------------------------------
def debian_fixes(locked: list[dict], indexes: dict[str, list[dict]]) -> list[DebianFix]:
    """The locked packages (name, version) an index (by archive name) has a newer version of:
    the newest version found and its archive, and whether a -security archive has a newer
    one (a point release may copy a security fix into the main suite: it is still one)."""
    newest: dict[str, tuple[str, str]] = {}
    security: dict[str, str] = {}
    for archive, stanzas in sorted(indexes.items()):
        for s in stanzas:
            name, version = s["Package"], s["Version"]
            best = newest.get(name)
            if best is None or debian_version.compare(version, best[0]) > 0:
                newest[name] = (version, archive)
            if archive.endswith("-security") and (
                    name not in security or debian_version.compare(version, security[name]) > 0):
                security[name] = version
    out = []
    for p in locked:
        found = newest.get(p["name"])
        if found and debian_version.compare(found[0], p["version"]) > 0:
            fixed = security.get(p["name"])
            out.append(DebianFix(p["name"], p["version"], found[0], found[1], bool(
                fixed and debian_version.compare(fixed, p["version"]) > 0)))
    return out


def audit_debian(project: Project, cache: Path, report: Report,
                 today: datetime | None = None) -> None:
    source = project.debian
    locked = debian_lock.load(project)["packages"]
    indexes: dict[str, list[dict]] = {}
    today = today or datetime.now(timezone.utc)
    missing = 0
    for mirror, suite in source.archives:
        for component in source.components:
            where = f"Debian {suite} {component}/{source.arch}"
            try:
                got = debian_index.last_fetched(cache, mirror, suite, component, source.arch,
                                                ["Package", "Version"])
            except debian_index.IndexUnreadable as e:
                report.not_checked.append(f"{where}: the index in the cache cannot be read "
                                          f"({e}); run `invoke audit --refresh`")
                missing += 1
                continue
            if got is None:
                report.not_checked.append(
                    f"{where}: its index was never fetched into this cache (run `invoke audit "
                    "--refresh`, which needs the network)")
                missing += 1
                continue
            date, stanzas = got
            indexes.setdefault(suite, []).extend(stanzas)
            when = debian_index.release_date(date)
            age = f", {(today - when).days} days old" if when else ""
            report.checked.append(f"{where}: index of {date}{age}")
    if indexes:
        report.debian_checked = True
        report.debian_complete = missing == 0
        report.debian = debian_fixes(locked, indexes)
        known = {s["Package"] for stanzas in indexes.values() for s in stanzas}
        gone = sorted(p["name"] for p in locked if p["name"] not in known)
        if gone:
            report.not_checked.append(f"Debian packages in no index fetched (removed from the "
                                      f"archive?): {', '.join(gone)}")


def refresh_debian(project: Project, cache: Path) -> None:
    """Fetch (network) and remember every index of the Debian source."""
    source = project.debian
    for mirror, suite in source.archives:
        for component in source.components:
            debian_index.packages(mirror, suite, component, source.arch, source.keyring, cache,
                                  ["Package"])


# Python ------------------------------------------------------------------------------------
def pins(project: Project, airflow: str) -> list[tuple[str, str]]:
    text = (Path(project.root) / project.locks[airflow].lock).read_text(encoding="utf-8")
    return [(e.name, e.version) for e in requirements_file.parse(text)[1]]


def advisories_of(name: str, version: str, document: dict) -> list[Advisory]:
    """The advisories of one PyPI JSON document (withdrawn ones left out)."""
    out = []
    for v in document.get("vulnerabilities") or []:
        if v.get("withdrawn"):
            continue
        summary = (v.get("summary") or v.get("details") or "").strip().splitlines()
        out.append(Advisory(name, version, v.get("id", "?"), tuple(v.get("aliases") or ()),
                            tuple(v.get("fixed_in") or ()), summary[0][:120] if summary else ""))
    return out


def _get_json(url: str, timeout: float = 30) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


NETWORK_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, ValueError,
                  http.client.HTTPException)


def refresh_python(project: Project, airflows: list[str], cache: Path,
                   url: str = ADVISORIES_URL) -> dict:
    """Fetch (network) the advisories of every pin of ``airflows`` and merge them into the
    snapshot kept in the cache (pins not asked, or whose request failed, keep what was fetched
    before, with its date); return the snapshot. A source that cannot answer for a published
    pin (Airflow's own) is recorded as unusable, with the reason, rather than asked 600
    times."""
    wanted = sorted({p for airflow in airflows for p in pins(project, airflow)})
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    old = _load_snapshot(cache) or {}
    kept = old.get("advisories", {}) if old.get("source") == url else {}
    refresh = {"when": now, "unusable": None, "failed": []}
    probe = next(((n, v) for n, v in wanted if n == "apache-airflow"), wanted[0])
    try:
        _get_json(url.format(name=probe[0], version=probe[1]))
    except NETWORK_ERRORS as e:
        refresh["unusable"] = (f"{url.format(name=probe[0], version=probe[1])} (a published "
                               f"version) could not be read: {e}")
        wanted = []

    def one(pin):
        try:
            return pin, _get_json(url.format(name=pin[0], version=pin[1])), None
        except NETWORK_ERRORS as e:
            return pin, None, str(e)

    fresh = {}
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        for (name, version), document, error in pool.map(one, wanted):
            if document is None:
                refresh["failed"].append(f"{name}=={version} ({error})")
                continue
            fresh[f"{name}=={version}"] = {"fetched": now, "advisories": [
                a.__dict__ for a in advisories_of(name, version, document)]}
    snapshot = {"source": url, "advisories": {**kept, **fresh}, "last_refresh": refresh}
    atomic.write_text(Path(cache) / SNAPSHOT, json.dumps(snapshot, indent=1, sort_keys=True)
                      + "\n")
    return snapshot


def _load_snapshot(cache: Path) -> dict | None:
    """The advisory snapshot, or None if there is none or it is not one (a damaged snapshot is
    treated as none: `--refresh` writes it again)."""
    try:
        data = json.loads((Path(cache) / SNAPSHOT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and isinstance(data.get("advisories"), dict) and \
        isinstance(data.get("last_refresh"), dict)
    return data if ok else None


def _advisories(entry) -> list[Advisory] | None:
    try:
        return [Advisory(a["name"], a["locked"], a["id"], tuple(a["aliases"]),
                         tuple(a["fixed_in"]), a["summary"]) for a in entry["advisories"]]
    except (KeyError, TypeError):
        return None


def audit_python(project: Project, airflows: list[str], cache: Path, report: Report) -> None:
    snapshot = _load_snapshot(cache)
    if snapshot is None:
        report.not_checked.append("Python advisories: never fetched into this cache (run "
                                  "`invoke audit --refresh`, which needs the network)")
        return
    last = snapshot["last_refresh"]
    if last.get("unusable"):
        report.not_checked.append(f"Python advisories: the last refresh ({last.get('when')}) "
                                  f"could not use the source: {last['unusable']}")
    known = snapshot["advisories"]
    complete = True
    for airflow in airflows:
        missing, found, dates = [], [], set()
        for name, version in pins(project, airflow):
            entry = known.get(f"{name}=={version}")
            advisories = _advisories(entry) if entry is not None else None
            if advisories is None:
                missing.append(f"{name}=={version}")
                continue
            found += advisories
            dates.add(entry.get("fetched", "?"))
        if len(missing) == len(pins(project, airflow)):
            complete = False
            continue  # (said above, or below: nothing of this lock was checked)
        report.python[airflow] = found
        report.checked.append(f"Python lock of Airflow {airflow}: advisories from "
                              f"{snapshot['source'].split('/{name}')[0]} fetched "
                              f"{min(dates)}" + (f" to {max(dates)}" if len(dates) > 1 else ""))
        if missing:
            complete = False
            report.not_checked.append(f"Python lock of Airflow {airflow}: no advisory data for "
                                      f"{len(missing)} pins ({', '.join(missing[:8])}"
                                      f"{', ...' if len(missing) > 8 else ''})")
    if not report.python and not last.get("unusable"):
        report.not_checked.append("Python advisories: none fetched for these locks (run "
                                  "`invoke audit --refresh`)")
    report.python_complete = complete and bool(report.python)


def audit(project: Project, airflows: list[str], cache: Path) -> Report:
    report = Report()
    audit_debian(project, cache, report)
    audit_python(project, airflows, cache, report)
    report.not_checked.extend(NEVER_CHECKED)
    return report
