"""Prove a Python lock installs and runs on the image's own Python.

A throwaway Debian root is made by mmdebstrap from the Debian lock's exact package versions
(bullseye's python3.9, glibc 2.31); inside it the lock is installed with
``pip install --require-hashes`` into a venv, then ``pip check``, ``airflow version`` and
``airflow db init`` (sqlite) must pass. Needs root, mmdebstrap and network (Debian, PyPI).
"""

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rules.lock import debian_lock, requirements_file
from rules.common.errors import UserError
from rules.load.model import Project
from rules.common.cache import default_cache

_SCRIPT = r"""
set -eu
export HOME=/root LC_ALL=C.UTF-8 AIRFLOW_HOME=/tmp/airflow PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_CERT=/tmp/host-ca.crt  # the host's trust store: its network may need its own CAs
step() { echo "@@step $1 $(date +%s.%N)"; }
step venv;    python3.9 -m venv /opt/venv
step pip;     /opt/venv/bin/pip install --no-input -q --require-hashes -r /tmp/pip.txt
step install; /opt/venv/bin/pip install --no-input -q --require-hashes -r /tmp/lock.txt
step check;   /opt/venv/bin/pip check
step version; echo "@@airflow $(/opt/venv/bin/airflow version 2>/dev/null | tail -n 1)"
step dbinit;  /opt/venv/bin/airflow db init >/tmp/dbinit.log 2>&1 \
  || { tail -n 40 /tmp/dbinit.log; exit 1; }
step done
"""


@dataclass
class VerifyResult:
    airflow: str
    reported_version: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def rows(self):
        return [
            ("pip install --require-hashes", f"ok, {self.timings.get('install', 0):.0f}s"),
            ("pip check", "clean"),
            ("airflow version", self.reported_version),
            ("airflow db init (sqlite)", f"ok, {self.timings.get('dbinit', 0):.0f}s"),
        ]


def _entry(lock_path: Path, name: str) -> str:
    """One package's pinned, hashed lines from a lock, as a requirements file."""
    _, entries = requirements_file.parse(lock_path.read_text(encoding="utf-8"))
    for entry in entries:
        if entry.name == name:
            return "\n".join(line for line in entry.lines if not line.strip().startswith("#"))
    raise UserError(f"{lock_path.name} does not lock {name}; run `invoke lock`")


def host_ca() -> str:
    """The CA bundle the host trusts (what its pip uses), to reach PyPI from the root."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                      os.environ.get("REQUESTS_CA_BUNDLE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return candidate
    raise UserError("no CA bundle found on the host: apt-get install ca-certificates")


def verify(project: Project, airflow: str, cache: Path | None = None) -> VerifyResult:
    if os.geteuid() != 0:
        raise UserError("verify-lock builds a Debian root with mmdebstrap and needs root")
    if not shutil.which("mmdebstrap"):
        raise UserError("mmdebstrap is missing: apt-get install mmdebstrap")
    lock_path = Path(project.root) / project.locks[airflow].lock
    if not lock_path.exists():
        raise UserError(f"{project.locks[airflow].lock} is missing; run `invoke lock`")
    pip_cache = (cache or default_cache()) / "verify-pip"
    pip_cache.mkdir(parents=True, exist_ok=True)
    debs = debian_lock.load(project)["packages"]
    wanted = [f"{p['name']}={p['version']}" for p in debs if not p["essential"]]
    components = ",".join(project.debian.components)
    archives = [f"deb {m} {s} {' '.join(project.debian.components)}"
                for m, s in project.debian.archives]
    with tempfile.TemporaryDirectory(prefix="runtime-verify-") as tmp:
        script = Path(tmp) / "verify.sh"
        script.write_text(_SCRIPT)
        (Path(tmp) / "pip.txt").write_text(_entry(lock_path, "pip"))
        hook = (f'mkdir -p "$1/root/.cache/pip" && mount --bind {pip_cache} "$1/root/.cache/pip"'
                f' && cp {lock_path} "$1/tmp/lock.txt" && cp {script} "$1/tmp/verify.sh"'
                f' && cp {Path(tmp) / "pip.txt"} "$1/tmp/pip.txt"'
                f' && cp {host_ca()} "$1/tmp/host-ca.crt"'
                f' && {{ chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin'
                f' sh /tmp/verify.sh; rc=$?; umount "$1/root/.cache/pip";'
                f' exit $rc; }}')
        cmd = ["mmdebstrap", "--quiet", "--mode=root", "--variant=minbase",
               f"--architectures={project.debian.arch}", f"--components={components}",
               f"--include={','.join(wanted)}", f"--customize-hook={hook}",
               project.debian.archives[0][1], "/dev/null", *archives]
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env=dict(os.environ, TMPDIR=tmp))
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(out.strip().splitlines()[-40:])
        raise UserError(f"lock for Airflow {airflow} does not install and run:\n{tail}", 1)
    result = VerifyResult(airflow)
    marks = []
    for line in out.splitlines():
        if line.startswith("@@step "):
            _, name, stamp = line.split()
            marks.append((name, float(stamp)))
        elif line.startswith("@@airflow "):
            result.reported_version = line.removeprefix("@@airflow ").strip()
    for (name, start), (_, end) in zip(marks, marks[1:]):
        result.timings[name] = end - start
    if result.reported_version != airflow:
        raise UserError(f"airflow version printed {result.reported_version!r}, expected "
                        f"{airflow}", 1)
    return result
