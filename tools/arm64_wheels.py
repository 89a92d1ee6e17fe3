"""Which locked Python distributions an arm64 image can install as they are: prints a table.

    .venv/bin/python tools/arm64_wheels.py                 # every lock under constraints/
    .venv/bin/python tools/arm64_wheels.py 2.2.4           # one Airflow version
    .venv/bin/python tools/arm64_wheels.py --markdown      # the table of docs/arm64.md

For each pin of each lock, the files of that version are read from PyPI's JSON simple index
(network) and only those whose sha256 the lock carries are considered, as the build does
(rules/fetch/pypi_files.py). The file the build would choose is chosen twice, for CPython 3.9 on
x86_64 and on aarch64 (manylinux <= 2.31: bullseye's glibc), and each pin is put in one class:

  aarch64 wheel   a binary wheel for aarch64 (cp39 or abi3) is locked
  pure wheel      the chosen file is a py*-none-any wheel, the same file on both platforms
  sdist, pure     no wheel fits either platform; the sdist holds no C/C++/Cython/Rust sources
                  (amd64 already builds it into a wheel; on arm64 the same wheel fits)
  sdist, C        aarch64 gets an sdist with native sources: it must be compiled for aarch64
                  (cross-compiled, or built under emulation) -- this blocks the line

An sdist's contents are read from the cache's CAS (`invoke fetch` put the amd64 ones there);
one missing there is downloaded into the CAS, checked against its locked sha256. Also said, per
blocking pin: whether PyPI holds an aarch64 wheel of that version the lock lacks (its hash is
not in the lock) or one for a newer glibc than 2.31.
"""

import argparse
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from packaging.utils import parse_wheel_filename  # noqa: E402

from rules.common.cache import default_cache  # noqa: E402
from rules.fetch import download, pypi_files  # noqa: E402
from rules.lock import requirements_file  # noqa: E402

INDEX = "https://pypi.org/simple"
NATIVE = (".c", ".cc", ".cpp", ".cxx", ".h", ".pyx", ".pxd", ".rs", ".f", ".f90", ".go")
PLATFORMS = {"x86_64": "x86_64-manylinux_2_31", "aarch64": "aarch64-manylinux_2_31"}
CLASSES = ("aarch64 wheel", "pure wheel", "sdist, pure", "sdist, C")


def native_sources(path: Path) -> list[str]:
    """The native source files (by suffix) in an sdist (tar or zip)."""
    if path.read_bytes()[:2] == b"PK":
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    else:
        with tarfile.open(path) as t:
            names = t.getnames()
    return sorted(n for n in names if n.lower().endswith(NATIVE))


def classify(entry, cache: Path) -> dict:
    files = pypi_files.index_files(INDEX, entry.name, entry.version)
    locked = {h.removeprefix("sha256:") for h in entry.hashes}
    picks = {arch: pypi_files.choose(entry.name, entry.version, files, entry.hashes,
                                     pypi_files.target_tags("3.9", platform))
             for arch, platform in PLATFORMS.items()}
    arm, x86 = picks["aarch64"], picks["x86_64"]
    row = {"name": entry.name, "version": entry.version, "arm": arm.filename,
           "x86": x86.filename, "note": ""}
    if arm.kind == "wheel":
        tags = parse_wheel_filename(arm.filename)[3]
        row["class"] = ("pure wheel" if all(t.platform == "any" for t in tags)
                        else "aarch64 wheel")
        return row
    blob = download.fetch_verified(arm.url, arm.sha256, cache, what=arm.filename)
    native = native_sources(blob)
    row["class"] = "sdist, C" if native else "sdist, pure"
    if native:
        aarch64 = [f["filename"] for f in files if f["filename"].endswith(".whl")
                   and "aarch64" in f["filename"]]
        unlocked = [f for f in aarch64 if not any(x["sha256"] in locked for x in files
                                                  if x["filename"] == f)]
        row["note"] = (f"{len(native)} native sources ({', '.join(native[:3])}"
                       f"{', ...' if len(native) > 3 else ''}); amd64 installs {x86.filename}; "
                       + (f"PyPI has aarch64 wheels the lock lacks: {', '.join(unlocked)}"
                          if unlocked else "PyPI has no aarch64 wheel of this version"))
    return row


def table(airflow: str, rows: list[dict], markdown: bool) -> str:
    counts = {c: sum(r["class"] == c for r in rows) for c in CLASSES}
    out = [f"Airflow {airflow} ({len(rows)} pins): "
           + ", ".join(f"{c}: {n}" for c, n in counts.items())]
    for r in rows:
        if r["class"] in ("sdist, pure", "sdist, C"):
            line = f"{r['name']}=={r['version']}: {r['class']}"
            if r["note"]:
                line += f" -- {r['note']}"
            out.append(("- " if markdown else "  ") + line)
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("airflow", nargs="*", help="Airflow versions (default: every lock)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--all", action="store_true", help="print every pin's class too")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    locks = sorted((root / "constraints").glob("constraints-*.txt"))
    cache = default_cache()
    blocked = {}
    with ThreadPoolExecutor(8) as pool:
        for path in locks:
            airflow = path.stem.removeprefix("constraints-")
            if args.airflow and airflow not in args.airflow:
                continue
            entries = requirements_file.parse(path.read_text(encoding="utf-8"))[1]
            rows = list(pool.map(lambda e: classify(e, cache), entries))
            print(table(airflow, rows, args.markdown))
            if args.all:
                for r in rows:
                    print(f"    {r['name']}=={r['version']}: {r['class']}: {r['arm']}")
            blocked[airflow] = [r["name"] for r in rows if r["class"] == "sdist, C"]
            print()
    for airflow, names in blocked.items():
        print(f"Airflow {airflow}: " + (f"blocked on arm64 by {', '.join(names)}" if names
                                        else "every pin installs on arm64 without compiling C"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
