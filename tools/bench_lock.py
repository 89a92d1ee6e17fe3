"""Lock benchmark: prints figures, asserts nothing. Run with `./dev bench`.

1. resolve every Airflow lock from scratch (uv's HTTP cache as it is: warm after a first run);
2. `invoke lock` again with unchanged inputs (no-op);
3. `invoke lock --check` with the network cut off (`unshare -n`, needs root);
4. optionally, plain pip-compile of the 2.2.4 inputs under python3.9, with a time limit.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd, cwd, timeout=None, env=None):
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=env)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        if proc.returncode:
            print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
    except subprocess.TimeoutExpired:
        status = f"not finished in {timeout}s"
    return time.monotonic() - start, status


def invoke(*args):
    return [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pip-compile-timeout", type=int, default=0)
    opts = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-lock-") as tmp:
        work = Path(tmp) / "repo"
        shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__"))
        for lock in work.glob("constraints/constraints-*.txt"):
            lock.unlink()
        env = dict(os.environ, PYTHONPATH=str(REPO))
        seconds, status = timed(invoke("lock", "--no-debian"), work, env=env)
        rows.append(("uv: resolve all 4 Airflow locks from scratch", seconds, status))
        same = all((work / p.relative_to(REPO)).read_bytes() == p.read_bytes()
                   for p in REPO.glob("constraints/constraints-*.txt"))
        rows.append(("  ...byte-identical to the committed locks", None, "yes" if same else "NO"))
        seconds, status = timed(invoke("lock"), work, env=env)
        rows.append(("invoke lock, unchanged inputs (no-op)", seconds, status))
        check = invoke("lock", "--check")
        if os.geteuid() == 0 and shutil.which("unshare"):
            check = ["unshare", "-n", *check]
        seconds, status = timed(check, work, env=env)
        offline = " (unshare -n: offline)" if check[0] == "unshare" else ""
        rows.append((f"invoke lock --check{offline}", seconds, status))
        if opts.pip_compile_timeout:
            rows.append(pip_compile(work, Path(tmp), opts.pip_compile_timeout))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'seconds':>8}  result")
    for name, seconds, status in rows:
        shown = f"{seconds:8.1f}" if seconds is not None else " " * 8
        print(f"{name.ljust(width)}  {shown}  {status}")


def pip_compile(work: Path, tmp: Path, timeout: int):
    python = shutil.which("python3.9")
    if not python:
        return ("pip-compile 2.2.4 (python3.9)", None, "skipped: no python3.9")
    venv = tmp / "pt"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run([venv / "bin/pip", "install", "-q", "pip-tools==7.6.2"], check=True)
    req = work / "constraints/requirements-2.2.4.in"
    env = dict(os.environ, TMPDIR=str(tmp))
    seconds, status = timed([venv / "bin/pip-compile", "-q", "--generate-hashes",
                             "--allow-unsafe", "--pip-args", "--uploaded-prior-to=2022-03-02",
                             "-o", str(tmp / "pc.txt"), str(req)], work, timeout, env)
    return ("pip-compile 7.6.2: 2.2.4 lock, same inputs", seconds, status)


if __name__ == "__main__":
    main()
