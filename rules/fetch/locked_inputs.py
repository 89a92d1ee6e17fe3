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


def fetch_debian(project: Project, cache: Path) -> FetchResult:
    packages = debian_lock.load(project)["packages"]
    jobs = [(p["url"], p["sha256"], p["filename"]) for p in packages]
    downloaded, size = _fetch_all(jobs, cache, "Debian packages")
    return FetchResult("Debian packages", len(jobs), downloaded, size)


def fetch_python(project: Project, airflow: str, cache: Path) -> FetchResult:
    lock = project.locks[airflow]
    root = Path(project.root)
    text = (root / lock.lock).read_text(encoding="utf-8")
    entries = requirements_file.parse(text)[1]
    tags = pypi_files.target_tags(project.python.version, project.python.platform)
    path = pypi_files.choices_path(cache, text)
    if path.exists():
        chosen = pypi_files.load_choices(cache, text, lock.lock)
    else:
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
                chosen = list(pool.map(counted, entries))
    jobs = [(c.url, c.sha256, c.filename) for c in chosen]
    downloaded, size = _fetch_all(jobs, cache, f"Airflow {airflow}: Python files")
    pypi_files.save_choices(cache, text, chosen)
    sdists = sum(c.kind == "sdist" for c in chosen)
    return FetchResult(f"Airflow {airflow} ({sdists} sdists)", len(jobs), downloaded, size)


def build_sdists(project: Project, airflow: str, cache: Path) -> FetchResult:
    """Build the lock's sdists into wheels (cached: a second fetch builds nothing)."""
    from rules.image import build as image
    from rules.python import sdist_build

    lock = project.locks[airflow]
    text = (Path(project.root) / lock.lock).read_text(encoding="utf-8")
    chosen = pypi_files.load_choices(cache, text, lock.lock)
    sdists = [c for c in chosen if c.kind == "sdist"]
    built, size = 0, 0
    if not sdists:
        return FetchResult(f"Airflow {airflow}: wheels built from sdists", 0, 0, 0)
    tools = sdist_build.tools_of(chosen)
    epochs = {image.shared_epoch(project, line) for line in project.lines.values()
              if line.airflow == airflow}
    for epoch in sorted(epochs):
        with image.Inputs(project, cache, epoch) as inputs:
            missing = sum(not sdist_build.record_path(cache, sdist_build.build_key(
                c, tools, inputs.rootfs_key)).exists() for c in sdists)
            with report.status(f"Airflow {airflow}: building {len(sdists)} sdists into wheels"):
                if missing:  # built in the Debian root, kept in the cache for `invoke image`
                    inputs.rootfs()
                wheels = image.wheels_for(project, airflow, inputs)
            inputs.save()
        built += missing
        size += sum(wheels[c.name][0].stat().st_size for c in sdists)
    return FetchResult(f"Airflow {airflow}: wheels built from sdists", len(sdists) * len(epochs),
                       built, size)


FETCHED = ("pypi-choices", "sdist-wheels")  # besides the CAS: what `fetch` writes


def cache_of_fetched(cache: Path, path: Path) -> Path:
    """A new cache at ``path`` holding only what `fetch` put in ``cache`` (the CAS linked, the
    file choices and sdist wheel records copied): every build action in it runs again."""
    path.mkdir(parents=True)
    (path / "cas").symlink_to(Path(cache).resolve() / "cas")
    for folder in FETCHED:
        if (Path(cache) / folder).is_dir():
            shutil.copytree(Path(cache) / folder, path / folder)
    return path
