"""`invoke fetch`: fill the content-addressed cache with every locked input (network).

Debian .debs come from the Debian lock (URL + sha256); Python files are chosen per lock by
``rules.fetch.pypi_files`` and downloaded; every byte is checked against its locked sha256. The
locked sdists are then built into wheels once, offline, in the Debian root (made from the
fetched .debs), and cached by input digest. After this, `invoke image` needs no network.
"""

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rules.common import report
from rules.fetch import download, pypi_files
from rules.lock import debian_lock, requirements_file
from rules.graph import action_cache, scheduler
from rules.load.model import Project

WORKERS = 8


@dataclass
class FetchResult:
    what: str
    files: int
    downloaded: int
    bytes: int


def _fetch_all(jobs: list[tuple[str, str, str]], cache: Path, title: str) -> tuple[int, int]:
    """jobs: (url, sha256, label). Returns (downloaded count, total bytes in cache)."""
    missing = [j for j in jobs if not download.cas_path(cache, j[1]).exists()]
    with report.progress(title, total=len(jobs), done=len(jobs) - len(missing)) as advance:
        def one(job):
            download.fetch_verified(job[0], job[1], cache, what=job[2])
            advance(1)

        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(one, missing))
    size = sum(download.cas_path(cache, j[1]).stat().st_size for j in jobs)
    return len(missing), size


def fetch_debian(project: Project, cache: Path, arch: str | None = None) -> FetchResult:
    """The .debs of the Debian lock (of ``arch``'s lock beside it, when given)."""
    packages = debian_lock.packages_for(project, arch)
    what = "Debian packages" + (f" ({arch})" if arch and arch != project.debian.arch else "")
    jobs = [(p["url"], p["sha256"], p["filename"]) for p in packages]
    downloaded, size = _fetch_all(jobs, cache, what)
    return FetchResult(what, len(jobs), downloaded, size)


def fetch_cross(project: Project, cache: Path, target: str) -> FetchResult:
    """The .debs of the cross toolchain's lock for ``target`` (rules.lock.cross_lock)."""
    from rules.lock import cross_lock

    packages = cross_lock.load(project, target)["packages"]
    what = f"cross toolchain ({project.debian.arch} -> {target})"
    jobs = [(p["url"], p["sha256"], p["filename"]) for p in packages]
    downloaded, size = _fetch_all(jobs, cache, what)
    return FetchResult(what, len(jobs), downloaded, size)


def fetch_python(project: Project, airflow: str, cache: Path,
                 arch: str | None = None) -> FetchResult:
    """The chosen files of a lock, for the toolchain's platform or for ``arch``'s (the same
    pins and hashes: only which file of a pin differs)."""
    lock = project.locks[airflow]
    root = Path(project.root)
    text = (root / lock.lock).read_text(encoding="utf-8")
    entries = requirements_file.parse(text)[1]
    platform = None
    if arch and arch != project.debian.arch:
        platform = pypi_files.platform_for(project.python.platform, arch)
    tags = pypi_files.target_tags(project.python.version, platform or project.python.platform)

    def choose_all():
        def pick(entry):
            if lock.index_url:
                files = pypi_files.index_files(lock.index_url, entry.name, entry.version)
            else:
                files = [f for folder in lock.find_links
                         for f in pypi_files.folder_files(root / folder, entry.name,
                                                          entry.version)]
            return pypi_files.choose(entry.name, entry.version, files, entry.hashes, tags)

        with report.progress(f"Airflow {airflow}: index pages", total=len(entries)) as advance:
            def counted(entry):
                result = pick(entry)
                advance(1)
                return result

            with ThreadPoolExecutor(WORKERS) as pool:
                return list(pool.map(counted, entries))

    chosen = pypi_files.load_choices(cache, text, lock.lock, choose_all, platform=platform)
    jobs = [(c.url, c.sha256, c.filename) for c in chosen]
    where = f" ({arch})" if platform else ""
    downloaded, size = _fetch_all(jobs, cache, f"Airflow {airflow}{where}: Python files")
    sdists = sum(c.kind == "sdist" for c in chosen)
    return FetchResult(f"Airflow {airflow}{where} ({sdists} sdists)", len(jobs), downloaded,
                       size)


def build_sdists(project: Project, airflow: str, cache: Path) -> FetchResult:
    """Build the lock's sdists into wheels (actions of the graph: a second fetch builds
    nothing)."""
    from rules.image import build as image

    built, size, count = 0, 0, 0
    epochs = {image.shared_epoch(project, line) for line in project.lines.values()
              if line.airflow == airflow}
    for epoch in sorted(epochs):
        inputs = image.Inputs(project, cache, epoch)
        makers = [w.action for w in inputs.wheels(airflow).values()
                  if w.action is not None and w.action.kind == "sdist wheel"]
        if not makers:
            continue
        count += len(makers)
        with report.status(f"Airflow {airflow}: building {len(makers)} sdists into wheels"):
            outcomes = scheduler.run(makers, cache)
        built += sum(not outcomes[a].hit for a in makers)
        size += sum(outcomes[a].record.blobs["wheel"][1] for a in makers)
    return FetchResult(f"Airflow {airflow}: wheels built from sdists", count, built, size)


FETCHED = ("file choice", "sdist wheel")  # the kinds of action `fetch` runs


def cache_of_fetched(cache: Path, path: Path, kinds: tuple[str, ...] = FETCHED) -> Path:
    """A new cache at ``path`` holding only what `fetch` put in ``cache`` (the CAS linked, the
    records of the file choices and sdist wheels copied): every build action in it runs again."""
    path.mkdir(parents=True)
    (path / "cas").symlink_to(Path(cache).resolve() / "cas")
    copy_records(cache, path, kinds)
    return path


def copy_records(cache: Path, other: Path, kinds: tuple[str, ...]) -> None:
    """Copy the action records of these kinds from ``cache`` into the cache at ``other``."""
    (Path(other) / "actions").mkdir(parents=True, exist_ok=True)
    for record in sorted((Path(cache) / "actions").glob("*.json")):
        found = action_cache.read(cache, record.stem)
        if found is not None and found.kind in kinds:
            shutil.copyfile(record, Path(other) / "actions" / record.name)
