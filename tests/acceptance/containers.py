"""The Runtime images under test and small helpers to run containers of them in the Docker
engine DOCKER_HOST names. Containers use --network none, or --network host with every server
on 127.0.0.1."""

import contextlib
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from rules.image import policy
from rules.load import project
from tests.fixtures import REPO

LINE = os.environ.get("RUNTIME_TEST_LINE", "4.2")
PROJECT = project.load(REPO)
RUNTIME = PROJECT.line(LINE)
AIRFLOW = PROJECT.airflow_version(RUNTIME.airflow)  # what the image's Airflow reports
IMAGE = PROJECT.image(RUNTIME)  # the line's image policy (runtime/BUILD)
FLAVOR_TAGS = {f: policy.tag(IMAGE, RUNTIME.version, f) for f in policy.flavors(IMAGE)}
FLOATING_TAGS = [t for f in FLAVOR_TAGS for t in policy.floating_tags(IMAGE, RUNTIME.version, f)]
DAGS = Path(__file__).with_name("dags")
# what every Airflow container of the tests gets: no example DAGs, quick DAG discovery
QUIET_AIRFLOW = {"AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                 "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                 "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
                 "AIRFLOW__WEBSERVER__WORKERS": "1"}


def _args(user=None, network="none", env=None, volumes=None, name=None, cpus=None,
          memory=None, workdir=None):
    args = ["--network", network]
    if workdir:
        args += ["--workdir", workdir]
    if user:
        args += ["--user", user]
    if cpus:
        args += ["--cpus", str(cpus)]
    if memory:
        args += ["--memory", memory]
    if name:
        args += ["--name", name]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    for host_path, path in (volumes or {}).items():
        args += ["-v", f"{host_path}:{path}"]
    return args


def docker_run(img, *cmd, timeout=300, **kw):
    return subprocess.run(["docker", "run", "--rm", *_args(**kw), img, *cmd],
                          capture_output=True, text=True, timeout=timeout)


def sh(img, script, **kw):
    proc = docker_run(img, "bash", "-c", script, **kw)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def inspect(img) -> dict:
    return json.loads(subprocess.run(["docker", "image", "inspect", img], capture_output=True,
                                     text=True, check=True).stdout)[0]


@contextlib.contextmanager
def container(img, *cmd, name, **kw):
    """A detached container, removed at the end; on failure its log is in the assertion."""
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    proc = subprocess.run(["docker", "run", "-d", *_args(name=name, **kw), img, *cmd],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"docker run {name}: {proc.stderr}"
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def logs(name) -> str:
    proc = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
    return proc.stdout + proc.stderr


def running(name) -> bool:
    proc = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name],
                          capture_output=True, text=True)
    return proc.stdout.strip() == "true"


def wait_until(predicate, timeout: float, what: str, every: float = 3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def http_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except (OSError, ValueError):
        return None
