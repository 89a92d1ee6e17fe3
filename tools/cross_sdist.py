"""Feasibility only: cross-compile a locked sdist with C code into an aarch64 wheel on amd64.

    .venv/bin/python tools/cross_sdist.py ROOT OUT psutil pycryptodomex wrapt --airflow 2.2.4

ROOT is an arm64 root of the arm64 Debian lock (rules/debian/extract_root.py); a copy of it,
with bullseye's arm64 libc6-dev, linux-libc-dev, libcrypt-dev, libpython3.9-dev,
libexpat1-dev and zlib1g-dev unpacked over it (fetched into the cache's CAS, checked against the
arm64 Packages index; the newest version the mirror serves), is the sysroot. The compiler is
the host's aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu); setup.py runs under
this venv's Python with the arm64 python3.9's sysconfig data (``_PYTHON_SYSCONFIGDATA_NAME``),
its headers and ``--plat-name linux_aarch64``. Each wheel lands in OUT; the tool prints the
ELF machine and the newest GLIBC symbol version its shared objects need.

This is not the build's way (that is rules/python/cross_build.py since: the image's python3.9,
the lock's setuptools and wheel, bullseye's cross gcc from a lock, hermetically): it answered
"does it cross-compile" (docs/arm64.md), and is kept to compare with.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rules.common.cache import default_cache  # noqa: E402
from rules.debian import debian_index, debian_version  # noqa: E402
from rules.fetch import download, pypi_files  # noqa: E402
from rules.load import project  # noqa: E402
from rules.lock import debian_lock, requirements_file  # noqa: E402

DEV = ["libc6-dev", "linux-libc-dev", "libcrypt-dev", "libpython3.9-dev", "libexpat1-dev",
       "zlib1g-dev"]


def dev_debs(proj, cache: Path) -> list[Path]:
    """The arm64 -dev packages of the sysroot, newest served version first."""
    src, found = proj.debian, {}
    for mirror, suite in src.archives:
        for st in debian_index.packages(mirror, suite, "main", "arm64", src.keyring, cache,
                                        debian_lock.FIELDS):
            if st["Package"] in DEV:
                found.setdefault(st["Package"], []).append(
                    (st["Version"], f"{mirror}/{st['Filename']}", st["SHA256"]))
    out = []
    for name in DEV:
        for version, url, sha in sorted(found[name], reverse=True,
                                        key=lambda f: debian_version.sort_key(f[0])):
            if not debian_lock.not_served([{"url": url}]):
                out.append(download.fetch_verified(url, sha, cache, what=name))
                print(f"sysroot: {name} {version}")
                break
    return out


def sdist(airflow: str, name: str, cache: Path) -> Path:
    lock = Path(__file__).resolve().parent.parent / f"constraints/constraints-{airflow}.txt"
    entry = {e.name: e for e in requirements_file.parse(lock.read_text())[1]}[name]
    files = pypi_files.index_files("https://pypi.org/simple", name, entry.version)
    chosen = pypi_files.choose(name, entry.version, files, entry.hashes,
                               pypi_files.target_tags("3.9", "aarch64-manylinux_2_31"))
    return download.fetch_verified(chosen.url, chosen.sha256, cache, what=chosen.filename)


def build(src: Path, sysroot: Path, work: Path, out: Path) -> Path | None:
    with tarfile.open(src) as t:
        t.extractall(work)
    tree = next(p for p in work.iterdir() if p.is_dir() and p.name != "sc")
    if not (tree / "setup.py").exists():
        print(f"{tree.name}: no setup.py (a pyproject build backend): not tried")
        return None
    sc = work / "sc"
    sc.mkdir(exist_ok=True)
    shutil.copy(sysroot / "usr/lib/python3.9/_sysconfigdata__aarch64-linux-gnu.py", sc)
    gcc = f"aarch64-linux-gnu-gcc --sysroot={sysroot}"
    env = dict(os.environ, CC=gcc, LDSHARED=f"{gcc} -shared",
               CFLAGS=f"-I{sysroot}/usr/include/python3.9 "
                      f"-I{sysroot}/usr/include/aarch64-linux-gnu/python3.9",
               _PYTHON_SYSCONFIGDATA_NAME="_sysconfigdata__aarch64-linux-gnu",
               _PYTHON_HOST_PLATFORM="linux-aarch64", PYTHONPATH=str(sc),
               SOURCE_DATE_EPOCH="1646179200")
    proc = subprocess.run([sys.executable, "setup.py", "-q", "bdist_wheel", "--plat-name",
                           "linux_aarch64", "--dist-dir", str(out)], cwd=tree, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{src.name}: failed\n" + "\n".join(proc.stderr.splitlines()[-15:]))
        return None
    return max(out.glob(f"{tree.name.rsplit('-', 1)[0].replace('-', '_')}*.whl"),
               key=lambda p: p.stat().st_mtime)


def describe(wheel: Path) -> str:
    machines, glibc = set(), []
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.endswith(".so"):
                path = Path(z.extract(name, tmp))
                machines.add(subprocess.run(["file", "-b", str(path)], capture_output=True,
                                            text=True).stdout.split(",")[1].strip())
                dump = subprocess.run(["aarch64-linux-gnu-objdump", "-T", str(path)],
                                      capture_output=True, text=True).stdout
                glibc += re.findall(r"GLIBC_([0-9.]+)", dump)
    if not machines:
        return f"{wheel.name}: no shared object (its extension was not built)"
    newest = max(glibc, key=lambda v: tuple(int(x) for x in v.split(".")), default="none")
    return f"{wheel.name}: {', '.join(sorted(machines))}, versioned GLIBC symbols: {newest}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("names", nargs="+")
    parser.add_argument("--airflow", default="2.2.4")
    args = parser.parse_args(argv)
    if not shutil.which("aarch64-linux-gnu-gcc"):
        raise SystemExit("apt-get install gcc-aarch64-linux-gnu")
    cache, proj = default_cache(), project.load(Path(__file__).resolve().parent.parent)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="runtime-cross-", dir="/dev/shm"))
    try:
        sysroot = work / "sysroot"
        subprocess.run(["cp", "-a", "--", f"{args.root}/.", str(sysroot)], check=True)
        for deb in dev_debs(proj, cache):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(sysroot)], check=True)
        for name in args.names:
            build_dir = work / name
            build_dir.mkdir()
            wheel = build(sdist(args.airflow, name, cache), sysroot, build_dir, args.out)
            if wheel:
                print(describe(wheel))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
