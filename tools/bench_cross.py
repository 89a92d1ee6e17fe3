"""Measure the cross build (rules/python/cross_build.py): each sdist's time, wheel, size, ELF
facts, and whether rounds in empty caches give the same bytes.

    .venv/bin/python tools/bench_cross.py [--airflow 2.2.4] [--rounds 2] [NAME ...]

NAME: pins of the lock whose aarch64 file is an sdist (default: the six C sdists of
docs/arm64.md that the lock holds). Each round makes a new cache in a temporary folder holding
only the locked inputs (hard links into the shared CAS), so the cross root, the tool trees and
every wheel are made again; the sdists are fetched into the shared CAS first (PyPI).
"""

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rules.common.cache import default_cache  # noqa: E402
from rules.debian import cross_root  # noqa: E402
from rules.fetch import download, pypi_files  # noqa: E402
from rules.graph import scheduler  # noqa: E402
from rules.load import project  # noqa: E402
from rules.lock import cross_lock, debian_lock, requirements_file  # noqa: E402
from rules.python import cross_build, sdist_build  # noqa: E402

C_SDISTS = ("psutil", "pycryptodomex", "pyrsistent", "wrapt", "pendulum",
            "snowflake-connector-python")


def sdists(airflow: str, names, cache: Path):
    text = (Path(__file__).resolve().parent.parent / f"constraints/constraints-{airflow}.txt"
            ).read_text()
    entries = {e.name: e for e in requirements_file.parse(text)[1]}
    tags = pypi_files.target_tags("3.9", "aarch64-manylinux_2_31")
    out = []
    for name in names or [n for n in C_SDISTS if n in entries]:
        e = entries[name]
        c = pypi_files.choose(name, e.version, pypi_files.index_files(
            "https://pypi.org/simple", name, e.version), e.hashes, tags)
        if c.kind != "sdist":
            print(f"{name} {e.version}: {c.filename} (no build needed)")
            continue
        download.fetch_verified(c.url, c.sha256, cache, what=c.filename)
        out.append(c)
    chosen = pypi_files.load_choices(cache, text, f"constraints/constraints-{airflow}.txt")
    return out, sdist_build.tools_of(chosen)


def linked_cache(path: Path, shas, shared: Path) -> Path:
    for sha in shas:
        dst = download.cas_path(path, sha)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(download.cas_path(shared, sha), dst)
        except OSError:
            shutil.copyfile(download.cas_path(shared, sha), dst)
    return path


def describe(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as z:
        shared = [z.read(n) for n in z.namelist() if n.endswith(".so")]
    versions = {tuple(int(x) for x in v) for data in shared
                for v in re.findall(rb"GLIBC_(\d+)\.(\d+)", data)}
    newest = ".".join(map(str, max(versions))) if versions else "-"
    return f"{len(shared)} | {newest}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--airflow", default="2.2.4")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    shared, proj = default_cache(), project.load(Path(__file__).resolve().parent.parent)
    chosen, tools = sdists(args.airflow, args.names, shared)
    debs = [p["sha256"] for p in debian_lock.load(proj)["packages"]] + [
        p["sha256"] for p in cross_lock.load(proj, "arm64")["packages"]]
    rows: dict[str, list] = {c.name: [] for c in chosen}
    roots = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="runtime-bench-cross-",
                                         dir=shared.parent) as tmp:
            cache = linked_cache(Path(tmp), {*debs, *(c.sha256 for c in chosen),
                                             *(t.sha256 for t in tools)}, shared)
            root = cross_root.action(proj)
            started = time.monotonic()
            scheduler.run([root], cache)
            roots.append(time.monotonic() - started)
            for c in chosen:
                made = cross_build.action(c, tools, root)
                started = time.monotonic()
                record = scheduler.run([made], cache)[made].record
                wheel = record.blob(cache, "wheel")
                rows[c.name].append((time.monotonic() - started, record.values["filename"],
                                     record.blobs["wheel"], describe(wheel)))
    print(f"load {os.getloadavg()[0]:.1f}; cross root per round: "
          + ", ".join(f"{s:.1f} s" for s in roots))
    print("| sdist | wheel | size | .so | newest GLIBC | seconds per round | same bytes |")
    print("|---|---|---|---|---|---|---|")
    for c in chosen:
        runs = rows[c.name]
        same = "yes" if len({r[2][0] for r in runs}) == 1 else "NO"
        print(f"| {c.filename} | {runs[0][1]} | {runs[0][2][1] / 1e3:.0f} kB | {runs[0][3]} | "
              f"{', '.join(f'{r[0]:.1f}' for r in runs)} | {same} (`{runs[0][2][0][:12]}`) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
