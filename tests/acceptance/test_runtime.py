"""The runtime module in real containers: concurrency defaults from --cpus/--memory (cgroup
limits the engine sets), the user's value winning, nonsense refused at start, version metadata
through `runtime-info --json`, admin creation by env switch and a clean `docker stop`."""

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import services
from tests.acceptance.containers import (AIRFLOW, QUIET_AIRFLOW, RUNTIME, container, docker_run,
    http_json, logs, wait_until)

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
LOCAL = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
         "AIRFLOW__CORE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow@127.0.0.1:1/airflow"}


def info(img, **kw) -> dict:
    proc = docker_run(img, "runtime-info", "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def settings_of(data) -> dict:
    return {s["option"].split(".")[1]: (s["value"], s["source"]) for s in data["settings"]}


# (slots, Celery worker slots) per limits: Airflow 2.3 takes more memory a slot
EXPECTED_SLOTS = {False: {1: (16, 11), 2: (32, 27)}, True: {1: (6, 5), 2: (17, 13)}}


@pytest.mark.parametrize("cpus, memory, gib, web", [(1, "2g", 2, 2), (2, "4g", 4, 4)])
def test_defaults_follow_the_container_limits(images, cpus, memory, gib, web):
    img = images["base"]
    major, minor = (int(n) for n in RUNTIME.airflow.split(".")[:2])
    slots, celery = EXPECTED_SLOTS[(major, minor) >= (2, 3)][cpus]
    data = info(img, cpus=cpus, memory=memory, env=LOCAL)
    assert data["limits"]["cpus"] == cpus and data["limits"]["cpu_source"].startswith("cgroup")
    assert data["limits"]["memory_bytes"] == gib << 30
    chosen = settings_of(data)
    per_dag = "dag_concurrency" if RUNTIME.airflow.startswith("2.1") else \
        "max_active_tasks_per_dag"
    assert chosen["parallelism"] == (str(slots), "computed")
    assert chosen[per_dag] == (str(min(16, slots)), "computed")
    assert chosen["worker_concurrency"] == (str(celery), "computed")
    assert chosen["workers"] == (str(web), "computed")
    assert chosen["parsing_processes"] == (str(cpus), "computed")
    # ... and Airflow itself reads them
    proc = docker_run(img, "bash", "-c", "airflow config get-value core parallelism; "
                       "airflow config get-value webserver workers", cpus=cpus, memory=memory,
                       env=LOCAL)
    assert proc.stdout.split()[-2:] == [str(slots), str(web)], proc.stdout + proc.stderr


def test_the_users_value_wins(images):
    env = {**LOCAL, "AIRFLOW__CORE__PARALLELISM": "7"}
    chosen = settings_of(info(images["base"], cpus=1, memory="2g", env=env))
    assert chosen["parallelism"] == ("7", "user (env AIRFLOW__CORE__PARALLELISM)")
    proc = docker_run(images["base"], "airflow", "config", "get-value", "core", "parallelism",
                       cpus=1, memory="2g", env=env)
    assert proc.stdout.split()[-1] == "7"


def test_a_nonsense_override_stops_the_start(images):
    message = "runtime: AIRFLOW__CORE__PARALLELISM='abc' is not a whole number"
    proc = docker_run(images["base"], "version", env={"AIRFLOW__CORE__PARALLELISM": "abc"})
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    # a debugging shell still starts, after the same message
    shell = docker_run(images["base"], "bash", "-c", "echo shell",
                        env={"AIRFLOW__CORE__PARALLELISM": "abc"})
    assert shell.stdout == "shell\n" and message in shell.stderr


def test_a_nonsense_memory_limit_file_stops_the_start(images):
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:  # readable by the container's user
        fake = Path(tmp)
        fake.chmod(0o755)
        (fake / "memory").mkdir(mode=0o755)
        (fake / "memory" / "memory.limit_in_bytes").write_text("-1\n")
        proc = docker_run(images["base"], "version",
                           env={"RUNTIME_CGROUP_ROOT": "/fake-cgroup"},
                           volumes={str(fake): "/fake-cgroup:ro"})
    assert proc.returncode == 1
    assert "/fake-cgroup/memory/memory.limit_in_bytes holds '-1': not a positive limit" in \
        proc.stderr


def test_version_metadata(images):
    data = info(images["onbuild"])
    assert data["runtime_version"] == RUNTIME.version
    assert data["airflow_version"] == AIRFLOW
    assert data["line"] == RUNTIME.name and data["lts"] == RUNTIME.lts
    assert data["python"].startswith("3.9.") and data["image_digest"] is None
    deployed = info(images["onbuild"], env={"RUNTIME_IMAGE_TAG": "registry.local/acme:1",
                                             "RUNTIME_IMAGE_DIGEST": "sha256:abc"})
    assert (deployed["image_tag"], deployed["image_digest"]) == \
        ("registry.local/acme:1", "sha256:abc")
    text = docker_run(images["onbuild"], "runtime-info").stdout
    assert f"Runtime {RUNTIME.version}" in text and "parallelism" in text


def test_admin_by_env_switch_and_a_clean_docker_stop(images, postgres_server):
    pg, port = postgres_server, services.free_port()
    database = pg.create_database("admin_switch")
    env = {**QUIET_AIRFLOW, "AIRFLOW__CORE__SQL_ALCHEMY_CONN": pg.url(database),
           "RUNTIME_MIGRATE_DB": "true", "RUNTIME_CREATE_ADMIN": "true",
           "_AIRFLOW_WWW_USER_USERNAME": "platform", "_AIRFLOW_WWW_USER_PASSWORD": "s3cret",
           "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
           "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(port)}
    with container(images["base"], "webserver", name="runtime-acceptance-admin",
                   network="host", env=env) as name:
        wait_until(lambda: http_json(f"http://127.0.0.1:{port}/health"), 240,
                   "the webserver answering /health")
        users = pg.psql("SELECT u.username, r.name FROM ab_user u JOIN ab_user_role ur ON "
                        "ur.user_id = u.id JOIN ab_role r ON r.id = ur.role_id", database)
        assert users == [["platform", "Admin"]]
        # SIGTERM reaches Airflow through dumb-init; after 60 s the engine would SIGKILL (137)
        subprocess.run(["docker", "stop", "-t", "60", name], check=True, capture_output=True)
        code = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", name],
                              capture_output=True, text=True).stdout.strip()
        text = logs(name)
    assert code != "137", f"killed, not stopped: {text[-2000:]}"
    assert "s3cret" not in text
