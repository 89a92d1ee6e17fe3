"""Benchmark: what a push sends when one small dependency moves.

In a copy of the checkout (its own git repository; the shared download cache), line 4.2 is
built and pushed, both flavors, to docker-registry 2.8 on 127.0.0.1 (tests/registry.py, TLS
and htpasswd, access log on). Then one small pure-Python dependency (PACKAGE, default tabulate)
is allowed past the line's PyPI cut-off (`pypi_cutoff_overrides` of 4.1 and 4.2, which share
the Airflow 2.2.4 lock) and bumped with `invoke lock --runtime 4.2 --upgrade-package PACKAGE`,
fetched, built and pushed again. Printed side by side: the package's old and new wheel, the
blobs and bytes the second push uploaded (from the registry's access log), and the goal (at
most twice the package's compressed size plus 1 MB). Needs the network (PyPI) for the lock and
the fetch.

    python tools/bench_layers.py [PACKAGE [CUTOFF]]
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.registry import PASSWORD, USER, registry  # noqa: E402

PACKAGE = sys.argv[1] if len(sys.argv) > 1 else "tabulate"
CUTOFF = sys.argv[2] if len(sys.argv) > 2 else "2022-06-30"  # tabulate 0.8.10: 2022-06-21
LOCK = "constraints/constraints-2.2.4.txt"


def invoke(copy: Path, *args: str, stdin: str | None = None) -> str:
    env = dict(os.environ, PYTHONPATH=str(copy))
    env.pop("RUNTIME_CALLER_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(copy), *args],
                          cwd=copy, env=env, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"invoke {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def pinned(copy: Path) -> str:
    match = re.search(rf"^{re.escape(PACKAGE)}==(\S+)", (copy / LOCK).read_text(), re.M)
    if not match:
        sys.exit(f"{PACKAGE} is not in {LOCK}")
    return match.group(1)


def wheel_size(copy: Path) -> tuple[str, int]:
    """(file name, size) of the package's chosen file, from the file choice of the lock."""
    sys.path.insert(0, str(copy))
    from rules.common.cache import default_cache
    from rules.fetch import pypi_files

    text = (copy / LOCK).read_text()
    chosen = {c.name: c for c in pypi_files.load_choices(default_cache(), text, LOCK)}
    c = chosen[PACKAGE]
    return c.filename, c.size


def checkout_copy(path: Path) -> Path:
    shutil.copytree(REPO, path, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", "out", "__pycache__"))
    git = ["git", "-C", str(path), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "bench"], check=True)
    return path


def allow_past_cutoff(copy: Path) -> None:
    build = copy / "BUILD"
    text = build.read_text()
    for line in ("4.1", "4.2"):
        text, n = re.subn(rf'(runtime_line\(\n    name = "{line}",\n)',
                          rf'\1    pypi_cutoff_overrides = {{"{PACKAGE}": "{CUTOFF}"}},\n',
                          text, count=1)
        if not n:
            sys.exit(f"cannot find runtime_line {line} in BUILD")
    build.write_text(text)


def push(copy: Path, reg) -> tuple[float, int, int]:
    """(seconds, blobs uploaded, bytes uploaded) of `invoke push --runtime 4.2`."""
    before = len(reg.uploads())
    started = time.monotonic()
    invoke(copy, "push", "--runtime", "4.2", "--to", f"{reg.host}/runtime", "--ca-cert",
           str(reg.ca), "--username", USER, "--password-stdin", "--out", str(copy / "out"),
           stdin=PASSWORD + "\n")
    seconds = time.monotonic() - started
    sent = reg.uploads()[before:]
    sizes = {"sha256:" + p.name: p.stat().st_size
             for p in (copy / "out" / "blobs" / "sha256").iterdir()}
    return seconds, len(sent), sum(sizes.get(d, 0) for d in sent)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-layers-") as tmp, \
            registry(access_log=True) as reg:
        copy = checkout_copy(Path(tmp) / "checkout")
        old_version = pinned(copy)
        old_file = wheel_size(copy)
        first = push(copy, reg)
        allow_past_cutoff(copy)
        invoke(copy, "lock", "--runtime", "4.2", "--upgrade-package", PACKAGE)
        new_version = pinned(copy)
        if new_version == old_version:
            sys.exit(f"{PACKAGE} {old_version} did not move: pick a later CUTOFF")
        invoke(copy, "fetch", "--runtime", "4.2")
        new_file = wheel_size(copy)
        manifest = json.loads((copy / "out" / "index.json").read_text())
        second = push(copy, reg)
        goal = 2 * new_file[1] + 1_000_000
        print(f"line 4.2, both flavors, pushed to docker-registry 2.8 on 127.0.0.1 "
              f"({sum('artifactType' not in m for m in manifest['manifests'])} manifests)")
        print(f"{'':44}{'seconds':>10}{'blobs up':>10}{'bytes up':>14}")
        print(f"{'first push (cold registry)':44}{first[0]:>10.2f}{first[1]:>10}"
              f"{first[2]:>14,}")
        print(f"{f'{PACKAGE} {old_version} -> {new_version}, pushed again':44}"
              f"{second[0]:>10.2f}{second[1]:>10}{second[2]:>14,}")
        print(f"{PACKAGE}: {old_file[0]} {old_file[1]:,} B -> {new_file[0]} {new_file[1]:,} B;"
              f" goal: at most 2 x {new_file[1]:,} + 1,000,000 = {goal:,} B uploaded: "
              f"{'met' if second[2] <= goal else 'MISSED'}")


if __name__ == "__main__":
    main()
