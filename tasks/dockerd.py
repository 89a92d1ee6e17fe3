"""A Docker engine for the image tests: use the one DOCKER_HOST names if it answers, else
start a private dockerd (no bridge, no iptables; containers use --network host or none)."""

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from rules.common.errors import UserError

SOCKET = "/run/runtime-docker.sock"
FLAGS = ["--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false"]


def answers(host: str) -> bool:
    proc = subprocess.run(["docker", "-H", host, "version", "--format", "{{.Server.Version}}"],
                          capture_output=True, text=True)
    return proc.returncode == 0


def ensure(cache: Path) -> tuple[str, subprocess.Popen | None]:
    """(DOCKER_HOST to use, the dockerd process we started or None)."""
    if not shutil.which("docker") or not shutil.which("dockerd"):
        raise UserError("docker is missing: apt-get install docker.io")
    for host in filter(None, (os.environ.get("DOCKER_HOST"), f"unix://{SOCKET}",
                              "unix:///var/run/docker.sock")):
        if answers(host):
            return host, None
    data = Path(cache) / "docker"
    data.mkdir(parents=True, exist_ok=True)
    log = open(Path(cache) / "dockerd.log", "ab")
    proc = subprocess.Popen(["dockerd", *FLAGS, "--data-root", str(data), "--host",
                             f"unix://{SOCKET}", "--pidfile", "/run/runtime-dockerd.pid"],
                            stdout=log, stderr=log, start_new_session=True)
    for _ in range(60):
        if answers(f"unix://{SOCKET}"):
            return f"unix://{SOCKET}", proc
        if proc.poll() is not None:
            break
        time.sleep(1)
    proc.kill()
    raise UserError(f"dockerd did not start; see {Path(cache) / 'dockerd.log'}")


@contextlib.contextmanager
def engine(cache: Path):
    """DOCKER_HOST of an engine that answers, started for the duration if none does."""
    host, started = ensure(cache)
    try:
        yield host
    finally:
        if started:
            started.terminate()
            started.wait(timeout=60)
