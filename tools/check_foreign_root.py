"""Checks of a Debian root made for arm64 on an amd64 host (rules/debian/extract_root.py),
by running its own code under qemu-user, explicitly (no binfmt handler is registered):

    .venv/bin/python tools/check_foreign_root.py ROOT            # every check
    .venv/bin/python tools/check_foreign_root.py ROOT --no-pyc   # without the .pyc proof

1. ``qemu-aarch64-static -L ROOT ROOT/usr/bin/python3.9 -c 'import ssl, sqlite3'`` runs;
2. every ELF file of the root is aarch64 (none x86-64);
3. dpkg-query (the host's, on the root's database) lists every locked package, installed;
4. the .pyc proof: a copy of the root's standard library, its .pyc removed, is byte-compiled by
   the root's own arm64 python3.9 under qemu-user, chrooted into the copy, as the build compiles
   (rules.debian.extract_root.compile_stdlib); every .pyc must equal the build's, byte for byte.

Needs root (chroot) and qemu-user-static. Prints what it finds; exit 1 when a check fails.
"""

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rules.debian import extract_root  # noqa: E402
from rules.debian.chroot import CHROOT  # noqa: E402

QEMU = {"arm64": "qemu-aarch64-static"}


def qemu(arch: str) -> str:
    path = shutil.which(QEMU[arch])
    if not path:
        raise SystemExit(f"{QEMU[arch]} is missing: apt-get install qemu-user-static")
    return path


def run_python(root: Path, arch: str, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([qemu(arch), "-L", str(root), str(root / "usr/bin/python3.9"), "-c",
                           code], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"})


def pyc_proof(root: Path, arch: str) -> tuple[int, list[str]]:
    """(.pyc compared, those that differ) between the root and its copy compiled under qemu."""
    work = Path(tempfile.mkdtemp(prefix="runtime-pyc-proof-", dir="/dev/shm"))
    try:
        copy = work / "root"
        subprocess.run(["cp", "-a", "--", f"{root}/.", str(copy)], check=True)
        for d in extract_root.STDLIB_DIRS:
            for cache in sorted((copy / d.lstrip("/")).rglob("__pycache__")):
                shutil.rmtree(cache)
        shutil.copy(qemu(arch), copy / "qemu")
        env = " ".join(f"{k}={v}" for k, v in sorted(extract_root.COMPILE_ENV.items()))
        for d in extract_root.STDLIB_DIRS:
            if not (copy / d.lstrip("/")).is_dir():
                continue
            script = (f"mount -t proc proc {copy}/proc && mount -t tmpfs tmpfs {copy}/tmp && "
                      f"env -i {env} {CHROOT} {copy} /qemu -L / /usr/bin/python3.9 -m compileall "
                      f"-q -j 1 --invalidation-mode unchecked-hash {d}")
            subprocess.run(["unshare", "--mount", "--propagation", "private", "--fork", "sh",
                            "-c", script], check=True)
        compared, differ = 0, []
        for d in extract_root.STDLIB_DIRS:
            for pyc in sorted((root / d.lstrip("/")).rglob("*.pyc")):
                rel = pyc.relative_to(root)
                compared += 1
                if not filecmp.cmp(pyc, copy / rel, shallow=False):
                    differ.append("/" + rel.as_posix())
            for pyc in sorted((copy / d.lstrip("/")).rglob("*.pyc")):
                if not (root / pyc.relative_to(copy)).exists():
                    differ.append("/" + pyc.relative_to(copy).as_posix() + " (only qemu's)")
        return compared, differ
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--arch", default="arm64", choices=sorted(QEMU))
    parser.add_argument("--no-pyc", action="store_true", help="skip the .pyc proof")
    args = parser.parse_args(argv)
    root, ok = args.root.resolve(), True
    started = time.monotonic()
    proc = run_python(root, args.arch, "import platform, ssl, sqlite3; print(platform.machine(),"
                      " ssl.OPENSSL_VERSION, 'sqlite', sqlite3.sqlite_version)")
    print(f"1. python3.9 under qemu: {(proc.stdout + proc.stderr).strip()} "
          f"(exit {proc.returncode}, {time.monotonic() - started:.1f} s)")
    ok &= proc.returncode == 0
    wrong = extract_root.check_elf(root, args.arch)
    print(f"2. ELF files not {args.arch}: {len(wrong)}" + "".join(f"\n   {w}" for w in wrong))
    ok &= not wrong
    listed = subprocess.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f",
                             "${db:Status-Abbrev} ${Architecture}\n"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    counts = {}
    for line in listed:
        counts[line] = counts.get(line, 0) + 1
    print(f"3. dpkg-query -W: {len(listed)} packages: "
          + ", ".join(f"{n} {k.strip()}" for k, n in sorted(counts.items())))
    ok &= all(k.startswith("ii ") for k in counts)
    if not args.no_pyc:
        started = time.monotonic()
        compared, differ = pyc_proof(root, args.arch)
        print(f"4. .pyc written by the build against arm64 python3.9 under qemu: {compared} "
              f"compared, {len(differ)} differ ({time.monotonic() - started:.0f} s)"
              + "".join(f"\n   {d}" for d in differ[:20]))
        ok &= compared > 0 and not differ
    return 0 if ok else 1


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
