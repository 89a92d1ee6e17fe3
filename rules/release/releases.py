"""`invoke release`: the next version of a Runtime line, its release record and its notes.

A release is planned (the next semantic version; refused if it would go backwards or re-use a
published version), then made in a scratch clone of the checkout's HEAD: the release's edits
(BUILD, support policy) are committed there first, as the *release commit* (rules.release.commits),
and the gates run on it: the locks must be current, a build of both flavors in the clone and a
second one in another clone of the release commit (an empty action cache, another umask, TZ and
working folder) must give the same manifest digests, and the line's image tests must pass. Only
then are the release record (runtime/releases/VERSION.json: the facts the next release is
compared with) and the notes (runtime/RELEASE_NOTES.md, newest first) committed on top, and the
checkout fast-forwarded to both commits, the release commit tagged `runtime-VERSION`: checked
out and built, that tag gives the recorded digests.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from packaging.version import Version

from rules.common import atomic
from rules.fetch import locked_inputs as fetch
from rules.image import build as image
from rules.image import policy
from rules.image.config import flavors as flavors_of
from rules.load import project
from rules.lock import debian_lock, pip_lock, requirements_file
from rules.python import patched_wheel
from rules.release import commits, support
from rules.common.errors import UserError
from rules.load.model import Project, RuntimeImage

RECORDS = "runtime/releases"
NOTES = "runtime/RELEASE_NOTES.md"
NOTES_TITLE = "# Runtime release notes\n"
STANDARD_MONTHS, LTS_MONTHS = 12, 24  # support from the release date
BUMPS = ("patch", "minor", "major")


@dataclass(frozen=True)
class Plan:
    line: str  # the line released from
    new_line: str  # the line the new version belongs to (a new one for minor/major bumps)
    old_version: str
    version: str
    lts: bool
    supported_until: str


# Published versions -------------------------------------------------------------------------
def records(root: Path) -> dict[str, dict]:
    """Release records by version."""
    folder = Path(root) / RECORDS
    out = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UserError(f"{path.relative_to(root)}:{e.lineno}:{e.colno}: {e.msg}") from None
        out[data["version"]] = data
    return out


def latest(root: Path, line: str) -> dict | None:
    mine = [r for r in records(root).values() if r["line"] == line]
    return max(mine, key=lambda r: Version(r["version"])) if mine else None


def plan(proj: Project, line_name: str, bump: str, lts: bool, today: date) -> Plan:
    if bump not in BUMPS:
        raise UserError(f"unknown bump {bump!r}; bumps: {', '.join(BUMPS)}")
    line = proj.line(line_name)
    major, minor, patch = map(int, line.version.split("."))
    version = {"patch": f"{major}.{minor}.{patch + 1}", "minor": f"{major}.{minor + 1}.0",
               "major": f"{major + 1}.0.0"}[bump]
    new_line = ".".join(version.split(".")[:2])
    published = records(proj.root)
    taken = set(published) | {ln.version for ln in proj.lines.values()}
    if version in taken:
        newest = max((v for v, r in published.items() if r["line"] == line_name), key=Version,
                     default=None)
        behind = f"; BUILD says line {line_name} is at {line.version}, but {newest} is " \
                 "published: bring BUILD up to date first" \
            if newest and Version(newest) > Version(line.version) else ""
        raise UserError(f"refused: {version} is already published; a release never re-uses a "
                        f"version{behind}")
    if bump != "patch" and new_line in proj.lines:
        raise UserError(f"refused: line {new_line} already exists (its current release is "
                        f"{proj.lines[new_line].version})")
    same_line = [v for v, r in published.items() if r["line"] == new_line]
    newest = max(same_line, key=Version, default=None)
    if newest and Version(version) <= Version(newest):
        raise UserError(f"refused: {version} would go backwards: line {new_line} has already "
                        f"published {newest}")
    policy = support.load(proj.root)
    current = policy.get(new_line)
    is_lts = lts or bool(current and current.lts and bump == "patch")
    until = _add_months(today, LTS_MONTHS if is_lts else STANDARD_MONTHS).isoformat()
    if current and bump == "patch" and not lts:
        until = current.supported_until
    return Plan(line_name, new_line, line.version, version, is_lts, until)


def _add_months(day: date, months: int) -> date:
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    for last in (31, 30, 29, 28):
        try:
            return date(year, month + 1, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


# Edits -------------------------------------------------------------------------------------
def _line_block(text: str, name: str) -> tuple[int, int] | None:
    """(start, end) of the runtime_line(...) call whose name is ``name``: from its first line
    to the next line that starts with ")" (BUILD files are formatted one call per block)."""
    for m in re.finditer(r"^runtime_line\($", text, flags=re.M):
        close = re.compile(r"^\).*$\n?", flags=re.M).search(text, m.end())
        if close is None:
            continue
        block = text[m.start():close.end()]
        if re.search(rf'^\s+name = "{re.escape(name)}",', block, flags=re.M):
            return m.start(), close.end()
    return None


def edit_build(root: Path, p: Plan) -> tuple[Path, str]:
    """(BUILD file, its new text) with the release applied."""
    for package in project.build_packages(Path(root)):
        path = Path(root) / package / "BUILD"
        text = path.read_text(encoding="utf-8")
        span = _line_block(text, p.line)
        if span is None:
            continue
        block = text[span[0]:span[1]]
        old = f'    version = "{p.old_version}",'
        if old not in block:
            raise UserError(f"{path.relative_to(root)}: runtime_line \"{p.line}\" has no line "
                            f"{old.strip()!r} to move")
        if p.new_line == p.line:
            return path, text[:span[0]] + block.replace(old, f'    version = "{p.version}",') \
                + text[span[1]:]
        new_block = block.replace(old, f'    version = "{p.version}",').replace(
            f'    name = "{p.line}",', f'    name = "{p.new_line}",')
        return path, text[:span[1]] + "\n" + new_block + text[span[1]:]
    raise UserError(f"no BUILD file declares runtime_line \"{p.line}\"")


def apply_edits(root: Path, p: Plan) -> list[str]:
    """Write the release's edits into ``root``; return the files edited (relative paths)."""
    path, text = edit_build(root, p)
    atomic.write_text(path, text)
    policy = support.load(root)
    policy[p.new_line] = support.Support(p.lts, p.supported_until)
    support.save(root, policy)
    return [str(Path(path).relative_to(root)), support.POLICY]


# Facts and notes ----------------------------------------------------------------------------
def facts(proj: Project, line_name: str, digests: dict[str, str], today: date,
          revision: str) -> dict:
    """The release record; ``revision``: the release commit (tagged ``commits.tag_name``)."""
    line = proj.line(line_name)
    lock_text = (Path(proj.root) / proj.locks[line.airflow].lock).read_text(encoding="utf-8")
    python = {e.name: e.version for e in requirements_file.parse(lock_text)[1]}
    python["apache-airflow"] = proj.airflow_version(line.airflow)
    patches = patch_facts(proj, line.airflow)
    debian = {p["name"]: p["version"] for p in debian_lock.load(proj)["packages"]}
    return {"version": line.version, "line": line.name, "date": today.isoformat(),
            "lts": line.lts, "airflow": proj.airflow_version(line.airflow),
            "built_from": revision, "tag": commits.tag_name(line.version), "digests": digests,
            "patches": patches,
            "python_packages": python, "debian_packages": debian}


def patch_facts(proj: Project, airflow: str) -> dict[str, dict]:
    """Patch file name -> subject, upstream reference and sha256, for Airflow ``airflow``."""
    patchset = proj.patches.get(airflow)
    out = {}
    for path in patchset.patches if patchset else ():
        data = (Path(proj.root) / path).read_bytes()
        header = data.decode("utf-8").split("\n--- ", 1)[0]
        subject = re.search(r"^Subject: (?:\[PATCH[^\]]*\] )?(.*)$", header, flags=re.M)
        ref = patched_wheel.UPSTREAM_REF.search(header)
        out[Path(path).name] = {
            "subject": subject.group(1) if subject else "", "upstream": ref.group(0) if ref else "",
            "sha256": hashlib.sha256(data).hexdigest()}
    return out


def _changes(old: dict, new: dict) -> tuple[list[str], list[str], list[str]]:
    changed = [f"{n} {old[n]} → {new[n]}" for n in sorted(new) if n in old and old[n] != new[n]]
    added = [f"{n} {new[n]}" for n in sorted(new) if n not in old]
    removed = [f"{n} {old[n]}" for n in sorted(old) if n not in new]
    return changed, added, removed


def notes_entry(new: dict, old: dict | None, img: RuntimeImage) -> str:
    """The release notes' entry of ``new`` (a record), against ``old``; ``img``: the line's
    image policy, which names the tags."""
    lts = ", LTS" if new["lts"] else ""
    out = [f"## Runtime {new['version']} (line {new['line']}{lts}) — {new['date']}", ""]
    if old is None:
        out.append("First recorded release of this line.")
        old = {"airflow": None, "patches": {}, "python_packages": {}, "debian_packages": {}}
    else:
        out.append(f"Changes since {old['version']}:")
    out.append("")
    airflow = new["airflow"] if old["airflow"] in (None, new["airflow"]) else \
        f"{new['airflow']} (was {old['airflow']})"
    out.append(f"- Apache Airflow {airflow}")
    added = [n for n in new["patches"] if n not in old["patches"]]
    removed = [n for n in old["patches"] if n not in new["patches"]]
    for name in added:
        p = new["patches"][name]
        out.append(f"- Backported fix added: {p['subject'] or name} ({p['upstream']}; {name})")
    for name in removed:
        out.append(f"- Backported fix removed: {name}")
    for title, key in (("Python packages", "python_packages"),
                       ("Debian packages", "debian_packages")):
        changed, plus, minus = _changes(old[key], new[key])
        if old[key] and (changed or plus or minus):
            for label, items in (("updated", changed), ("added", plus), ("removed", minus)):
                if items:
                    out.append(f"- {title} {label}: " + ", ".join(items))
        elif not old[key]:
            out.append(f"- {title}: {len(new[key])} locked")
        else:
            out.append(f"- {title}: unchanged")
    for flavor, digest in sorted(new["digests"].items()):
        floating = ", ".join(f"`{policy.reference(img, t)}`"
                             for t in policy.floating_tags(img, new["version"], flavor))
        out.append(f"- Image `{policy.reference(img, policy.tag(img, new['version'], flavor))}` "
                   f"({flavor}): `{digest}`" + (f"; floating tag {floating}" if floating else ""))
    if "provenance_keyid" in new:
        out.append(f"- Provenance signed with key `{new['provenance_keyid']}`"
                   if new["provenance_keyid"] else "- Provenance unsigned (no signing key)")
    if new.get("tag"):
        out.append(f"- Built from commit {new['built_from'][:12]}, tagged `{new['tag']}`: "
                   f"`git checkout {new['tag']} && invoke image --runtime {new['line']}` gives "
                   "these digests")
    else:  # (records before 2026-12-03: the edits were committed after the build)
        out.append(f"- Built from commit {new['built_from'][:12]} with this release's edits "
                   "(BUILD version, support policy)")
    return "\n".join(out) + "\n"


def write_record(root: Path, data: dict, entry: str) -> list[str]:
    """Write the record and the notes' new entry; return the files written (relative)."""
    atomic.write_text(Path(root) / RECORDS / f"{data['version']}.json",
                      json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    notes = Path(root) / NOTES
    body = notes.read_text(encoding="utf-8").removeprefix(NOTES_TITLE).lstrip("\n") \
        if notes.exists() else ""
    atomic.write_text(notes, NOTES_TITLE + "\n" + entry + ("\n" + body if body else ""))
    return [f"{RECORDS}/{data['version']}.json", NOTES]


# Gates -------------------------------------------------------------------------------------
@contextmanager
def scratch_clone(root: Path, head: str, cache: Path):
    """A clone of the checkout at ``head``: what is committed, and nothing else, is released."""
    parent = Path(cache) / "tmp"
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="release-", dir=parent) as tmp:
        yield commits.clone(root, head, Path(tmp) / "project")


@contextmanager
def _elsewhere(folder: Path):
    """Another umask, TZ and working folder for the second build."""
    old_umask, old_tz, old_cwd = os.umask(0o077), os.environ.get("TZ"), os.getcwd()
    os.environ["TZ"] = "Pacific/Kiritimati"
    time.tzset()
    os.chdir(folder)
    try:
        yield
    finally:
        os.umask(old_umask)
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()
        os.chdir(old_cwd)


def check_patches(proj: Project, p: Plan) -> None:
    """Changed backports need a new revision: one version, one set of bytes."""
    previous = latest(proj.root, p.new_line) or latest(proj.root, p.line)
    airflow = proj.line(p.line).airflow
    version = proj.airflow_version(airflow)
    if not previous or previous["airflow"] != version:
        return
    patchset = proj.patches.get(airflow)
    now = {name: entry["sha256"] for name, entry in patch_facts(proj, airflow).items()}
    before = {name: entry.get("sha256") for name, entry in previous["patches"].items()}
    if now != before:
        raise UserError(f"refused: the backports of Airflow {airflow} changed since "
                        f"{previous['version']}, but it is still {version}: raise `revision` "
                        f"in {patchset.label if patchset else 'its airflow_patches target'}")


def check_locks(proj: Project, line_name: str) -> None:
    try:
        pip_lock.check_all(proj, [proj.line(line_name).airflow])
        debian_lock.check(proj)
    except UserError as e:
        raise UserError(f"refused: the lock check failed: {e}") from None


def check_reproducible(proj: Project, line_name: str, out: Path, cache: Path,
                       signing_key=None) -> dict[str, str]:
    """Digests by flavor, after two builds agree on them: one in ``proj`` (a clone at the
    release commit), one in a fresh clone of that commit, with a fresh action cache, elsewhere.
    The first build's provenance is signed with ``signing_key`` (ed25519: the same bytes)."""
    flavors = flavors_of(proj, proj.line(line_name))
    first = image.build(proj, line_name, flavors, out, cache, signing_key=signing_key)
    release = commits.git(Path(proj.root), "rev-parse", "HEAD").strip()
    with tempfile.TemporaryDirectory(prefix="release-rebuild-", dir=Path(cache) / "tmp") as tmp:
        again = project.load(commits.clone(Path(proj.root), release, Path(tmp) / "checkout"))
        fresh = fetch.cache_of_fetched(cache, Path(tmp) / "cache")
        with _elsewhere(Path(tmp)):
            second = image.build(again, line_name, flavors, Path(tmp) / "out", fresh)
    ours = {flavor: img.digest for flavor, img in zip(flavors, first.images)}
    theirs = {flavor: img.digest for flavor, img in zip(flavors, second.images)}
    if ours != theirs:
        diff = ", ".join(f"{f}: {ours[f]} then {theirs[f]}" for f in flavors
                         if ours[f] != theirs[f])
        raise UserError(f"refused: the reproducibility check failed ({diff})")
    return ours


def check_images(copy: Path, line_name: str, tests: str | None, docker_host: str,
                 digests: dict[str, str], version: str) -> str:
    """The acceptance suite of the line (or the tests ``tests`` selects), run in ``copy``; the
    images it builds must be the ones being released. Returns pytest's summary line."""
    tested = copy / "out" / "tested"
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "acceptance", "-p", "no:cacheprovider",
           "tests/acceptance"]
    if tests:
        cmd += ["-k", tests]
    env = dict(os.environ, DOCKER_HOST=docker_host, RUNTIME_TEST_LINE=line_name,
               RUNTIME_TEST_IMAGE_OUT=str(tested))
    proc = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, env=env)
    if proc.returncode == 5:
        raise UserError(f"refused: no image test of line {line_name} matches -k {tests!r}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise UserError(f"refused: the image tests of line {line_name} failed:\n{tail}")
    if not (tested / "index.json").exists():
        raise UserError(f"refused: the image tests selected ({tests!r}) built no image, so "
                        "nothing says the images tested are the ones released: choose tests "
                        "that run the images")
    index = json.loads((tested / "index.json").read_text())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
            for m in index["manifests"] if "artifactType" not in m}  # (not the SBOMs)
    proj = project.load(copy)
    img = proj.image(proj.line(line_name))
    for flavor, digest in digests.items():
        tested_digest = refs.get(policy.tag(img, version, flavor))
        if tested_digest != digest:
            raise UserError(f"refused: the images tested ({tested_digest})"
                            f" are not the ones built for release ({digest})")
    return (proc.stdout.strip().splitlines() or [""])[-1]
