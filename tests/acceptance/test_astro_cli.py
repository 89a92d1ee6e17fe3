"""The Astro CLI's contract, reproduced with plain `docker run`: a user project built FROM the
line's ONBUILD image runs as `astro dev start` runs it (scheduler, webserver, triggerer where the
CLI starts one, on PostgreSQL, the project's folders mounted), `astro dev run` commands work in
its webserver container, admin/admin signs in, and `astro dev pytest` runs the project's tests/
inside the image.

The facts come from astronomer/astro-cli v1.45.0 (commit 1e725a3c, 2026-08-13):
- airflow/include/airflow2/composeyml.go.tmpl, the compose file of Airflow 2 images: services
  postgres, scheduler, webserver and (TriggererEnabled) triggerer, each `user: astro`,
  `restart: unless-stopped`, the environment of compose_env below, `dags/`, `plugins/`,
  `include/` (and, but for the triggerer, `tests/`) of the project mounted under
  /usr/local/airflow with the label `:z`, and the named volume `airflow_logs` on
  /usr/local/airflow/logs (config `duplicate_volumes`, true by default); the scheduler's command
  `bash -c "(airflow db upgrade || airflow upgradedb) && airflow scheduler"`, the triggerer's the
  same with `airflow triggerer`, the webserver's WEBSERVER_COMMAND (users create admin/admin,
  sync-perm, webserver), published on 127.0.0.1:8080;
- airflow/container.go: the template's values (user astro, mount label z, PostgreSQL user and
  password postgres on host postgres:5432);
- airflow/docker.go: CheckTriggererEnabled (the image's io.astronomer.docker.airflow.version
  label >= 2.2.0, compared as Docker's versions package does), and `astro dev run` (an exec in
  the webserver container);
- airflow/docker_image.go, Pytest: `docker create -i --name astro-pytest IMAGE pytest tests/`,
  `docker cp` of the project's dags, tests, plugins, include, .astro into /usr/local/airflow/,
  `docker start -a`, the container's exit code;
- the DAG-integrity test is the one `astro dev init` wrote in tests/dags/test_dag_integrity.py
  (airflow/include/dagintegritytest.go of v1.5.0), plus a check of the DAG's tasks.
The compose services are the same in v1.5.0 (2022-08-30), the CLI of these lines' time, but
for details: its environment had no AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, SECRET_KEY or
EXPOSE_CONFIG, the scheduler mounted dags/ read-only (`:ro`), the webserver had a healthcheck
(`curl --fail http://webserver:8080/health`), and `astro dev pytest` ran `pytest tests/` as a
compose service mounting the folders instead of copying them.

What this machine changes: containers run on the host network, so `postgres` is the test's
server on 127.0.0.1 (a database of its own, where the CLI's URL names none; trust auth, so the
password postgres is not checked), the webserver listens on a free port of 127.0.0.1 instead
of being published on 8080, the task log server takes a free port, and the pytest container has
--network none.
"""

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import requests
from packaging.version import Version

from tests import services
from tests.acceptance.containers import (LINE, RUNTIME, docker_run, inspect, logs, running,
    wait_until)
from tests.acceptance.test_onbuild import docker_build

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
HAS_TRIGGERER = Version(RUNTIME.airflow) >= Version("2.2")
DAG_ID = "astro_cli_contract"
TASKS = {"read_project"} | ({"wait_deferred"} if HAS_TRIGGERER else set())
HOME = "/usr/local/airflow"
FERNET_KEY = "d6Vefz3G9U_ynXB3cr7y_Ak35tAHkEGAVxuz_B-jzWw="  # the template's
SCHEDULER_COMMAND = '(airflow db upgrade || airflow upgradedb) && airflow scheduler'
TRIGGERER_COMMAND = '(airflow db upgrade || airflow upgradedb) && airflow triggerer'
# (compose turns `$$` into `$`; the folded YAML keeps the more-indented lines' newlines)
WEBSERVER_COMMAND = [
    'if [[ -z "$AIRFLOW__API__AUTH_BACKEND" ]] && [[ $(pip show -f apache-airflow | grep '
    'basic_auth.py) ]];\n'
    '  then export AIRFLOW__API__AUTH_BACKEND=airflow.api.auth.backend.basic_auth ;\n'
    '  else export AIRFLOW__API__AUTH_BACKEND=airflow.api.auth.backend.default ; fi &&\n'
    '  { airflow users create "$@" || airflow create_user "$@" ; } &&\n'
    '  { airflow sync-perm || airflow sync_perm ;} &&\n'
    '  airflow webserver',
    '--', '-r', 'Admin', '-u', 'admin', '-e', 'admin@example.com', '-f', 'admin', '-l', 'user',
    '-p', 'admin']

DAG = '''\
from datetime import datetime, timedelta
from pathlib import Path

from airflow import DAG
from airflow.operators.python import PythonOperator
{deferrable_import}
import astro_cli_contract_helper  # plugins/ is on sys.path

INCLUDE = Path(__file__).resolve().parents[1] / "include"


def read_project():
    return astro_cli_contract_helper.stamp((INCLUDE / "message.txt").read_text().strip())


with DAG("{dag_id}", start_date=datetime(2022, 1, 1), schedule_interval=None, catchup=False,
         tags=["astro-cli"], default_args={{"retries": 2, "retry_delay": timedelta(seconds=5)}}
         ) as dag:
    PythonOperator(task_id="read_project", python_callable=read_project)
{deferrable_task}'''

DEFERRABLE = ("from airflow.sensors.time_delta import TimeDeltaSensorAsync",
              '    TimeDeltaSensorAsync(task_id="wait_deferred", delta=timedelta(seconds=5))\n')

PLUGIN = '''\
from airflow.plugins_manager import AirflowPlugin

SOURCE = "{source}"


def stamp(text):
    return f"{{SOURCE}}: {{text}}"


class AstroCliContractPlugin(AirflowPlugin):
    name = "astro_cli_contract_plugin"
'''

# what `astro dev init` writes in tests/dags/test_dag_integrity.py, and a check of the DAG
INTEGRITY_TEST = '''\
"""Test the validity of all DAGs. This test ensures that all Dags have tags, retries set to two,
and no import errors. Feel free to add and remove tests."""

import logging
import os
from contextlib import contextmanager

import pytest
from airflow.models import DagBag


@contextmanager
def suppress_logging(namespace):
    logger = logging.getLogger(namespace)
    old_value = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = old_value


def get_import_errors():
    """Generate a tuple for import errors in the dag bag"""
    with suppress_logging("airflow"):
        dag_bag = DagBag(include_examples=False)

        def strip_path_prefix(path):
            return os.path.relpath(path, os.environ.get("AIRFLOW_HOME"))

        # we prepend "(None,None)" to ensure that a test object is always created even if its
        # a no op.
        return [(None, None)] + [
            (strip_path_prefix(k), v.strip()) for k, v in dag_bag.import_errors.items()
        ]


def get_dags():
    """Generate a tuple of dag_id, <DAG objects> in the DagBag"""
    with suppress_logging("airflow"):
        dag_bag = DagBag(include_examples=False)

    def strip_path_prefix(path):
        return os.path.relpath(path, os.environ.get("AIRFLOW_HOME"))

    return [(k, v, strip_path_prefix(v.fileloc)) for k, v in dag_bag.dags.items()]


@pytest.mark.parametrize(
    "rel_path,rv", get_import_errors(), ids=[x[0] for x in get_import_errors()]
)
def test_file_imports(rel_path, rv):
    """Test for import errors on a file"""
    if rel_path and rv:
        raise Exception(f"{{rel_path}} failed to import with message \\n {{rv}}")


APPROVED_TAGS = {{}}


@pytest.mark.parametrize(
    "dag_id,dag,fileloc", get_dags(), ids=[x[2] for x in get_dags()]
)
def test_dag_tags(dag_id, dag, fileloc):
    """test if a DAG is tagged and if those TAGs are in the approved list"""
    assert dag.tags, f"{{dag_id}} in {{fileloc}} has no tags"
    if APPROVED_TAGS:
        assert not set(dag.tags) - APPROVED_TAGS


@pytest.mark.parametrize(
    "dag_id,dag, fileloc", get_dags(), ids=[x[2] for x in get_dags()]
)
def test_dag_retries(dag_id, dag, fileloc):
    """test if a DAG has retries set"""
    assert (
        dag.default_args.get("retries", None) >= 2
    ), f"{{dag_id}} in {{fileloc}} does not have retries not set to 2."


def test_the_project_dag_has_its_tasks():
    with suppress_logging("airflow"):
        dags = DagBag(include_examples=False).dags  # (get_dag would ask the database)
    dag = dags.get("{dag_id}")
    assert dag is not None, sorted(dags)
    assert sorted(dag.task_ids) == {tasks!r}
'''
INTEGRITY_TESTS_RUN = 4  # file imports (no error), tags, retries, tasks


def write_project(root: Path, base_image: str) -> Path:
    """An `astro dev init`-shaped project: Dockerfile FROM the ONBUILD image, packages.txt,
    requirements.txt, dags/, plugins/, include/, tests/dags/test_dag_integrity.py."""
    for folder in ("dags", "plugins", "include", "tests/dags"):
        (root / folder).mkdir(parents=True)
    (root / "Dockerfile").write_text(f"FROM {base_image}\n")
    (root / "packages.txt").write_text("")
    (root / "requirements.txt").write_text("# Astro Runtime includes the following pre-installed "
                                           "providers packages\n")
    deferrable = DEFERRABLE if HAS_TRIGGERER else ("", "")
    (root / "dags" / f"{DAG_ID}.py").write_text(DAG.format(
        dag_id=DAG_ID, deferrable_import=deferrable[0], deferrable_task=deferrable[1]))
    (root / "plugins" / "astro_cli_contract_helper.py").write_text(PLUGIN.format(source="image"))
    (root / "include" / "message.txt").write_text("include/ of the image\n")
    (root / "tests" / "dags" / "test_dag_integrity.py").write_text(
        INTEGRITY_TEST.format(dag_id=DAG_ID, tasks=sorted(TASKS)))
    for path in [root, *root.rglob("*")]:  # (the containers' user reads the mounts)
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def cli_enables_triggerer(labels: dict) -> bool:
    """CheckTriggererEnabled: the Airflow label, compared as Docker's versions.compare does
    (dot-separated fields as integers, a field that is not one counts 0), else the Runtime
    label >= 4.0.0."""
    def compare(v1: str, v2: str) -> int:
        def field(part):
            return int(part) if re.fullmatch(r"[+-]?\d+", part) else 0
        a, b = v1.split("."), v2.split(".")
        for i in range(max(len(a), len(b))):
            x = field(a[i]) if i < len(a) else 0
            y = field(b[i]) if i < len(b) else 0
            if x != y:
                return 1 if x > y else -1
        return 0
    airflow = labels.get("io.astronomer.docker.airflow.version")
    if airflow is not None:
        return compare(airflow, "2.2.0") >= 0
    runtime = labels.get("io.astronomer.docker.runtime.version")
    return runtime is not None and Version(runtime) >= Version("4.0.0")


@pytest.fixture(scope="module")
def project(images, tmp_path_factory):
    """The user's project on the host and its image, as `astro dev start` builds it."""
    root = write_project(tmp_path_factory.mktemp("astro-project") / "project", images["onbuild"])
    tag = f"runtime-astro-project:{uuid.uuid4().hex[:12]}"
    try:
        proc = docker_build(root, tag)
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
        # edited on the host after the build: what the services read must be the mounts
        (root / "plugins" / "astro_cli_contract_helper.py").write_text(
            PLUGIN.format(source="mounted plugins/"))
        (root / "include" / "message.txt").write_text("include/ of the host\n")
        yield root, tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
        subprocess.run(["docker", "image", "prune", "-f"], capture_output=True)


def compose_env(database_url: str, project_name: str, web_port: int, log_port: int) -> dict:
    return {
        # x-common-env-vars of the template
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__SQL_ALCHEMY_CONN": database_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
        "AIRFLOW__WEBSERVER__SECRET_KEY": project_name,
        "AIRFLOW__WEBSERVER__RBAC": "True",
        "AIRFLOW__WEBSERVER__EXPOSE_CONFIG": "True",
        "ASTRONOMER_ENVIRONMENT": "local",
        # this machine: the host network, servers on 127.0.0.1
        "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(web_port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
        "AIRFLOW__CELERY__WORKER_LOG_SERVER_PORT": str(log_port),  # (its section on 2.1)
    }


def start_service(name: str, image: str, env: dict, volumes: list, command: list) -> None:
    args = ["docker", "run", "-d", "--name", name, "--network", "host", "--user", "astro",
            "--restart", "unless-stopped"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    for volume in volumes:
        args += ["-v", volume]
    proc = subprocess.run([*args, image, *command], capture_output=True, text=True)
    assert proc.returncode == 0, f"docker run {name}: {proc.stderr}"


def restarts(name: str) -> int:
    proc = subprocess.run(["docker", "inspect", "-f", "{{.RestartCount}}", name],
                          capture_output=True, text=True)
    return int(proc.stdout.strip() or 0)


@pytest.fixture(scope="module")
def local_airflow(project, postgres_server):
    """`astro dev start`: the services of the compose file, the DAG registered, /health up."""
    root, image = project
    pg, suffix = postgres_server, f"{LINE}-{uuid.uuid4().hex[:8]}"
    database = pg.create_database(f"astro_cli_{suffix}".replace(".", "_").replace("-", "_"))
    url = f"postgresql://postgres:postgres@127.0.0.1:{pg.port}/{database}"
    web_port = services.free_port()
    env = compose_env(url, root.name, web_port, services.free_port())
    logs_volume = f"astro-cli-airflow-logs-{suffix}"
    subprocess.run(["docker", "volume", "create", logs_volume], check=True, capture_output=True)
    mounts = [f"{root / folder}:{HOME}/{folder}:z"
              for folder in ("dags", "plugins", "include", "tests")]
    shared = [f"{logs_volume}:{HOME}/logs"]
    names = {"scheduler": f"astro-cli-scheduler-{suffix}",
             "webserver": f"astro-cli-webserver-{suffix}"}
    if HAS_TRIGGERER:
        names["triggerer"] = f"astro-cli-triggerer-{suffix}"
    try:
        # (compose's order: postgres; scheduler and triggerer; the webserver after the scheduler)
        start_service(names["scheduler"], image, env, mounts + shared,
                      ["bash", "-c", SCHEDULER_COMMAND])
        if HAS_TRIGGERER:
            start_service(names["triggerer"], image, env, mounts[:3] + shared,
                          ["bash", "-c", TRIGGERER_COMMAND])
        start_service(names["webserver"], image, env, mounts + shared,
                      ["bash", "-c", *WEBSERVER_COMMAND])
        base = f"http://127.0.0.1:{web_port}"

        wait_explained(lambda: pg.psql(f"SELECT 1 FROM dag WHERE dag_id = '{DAG_ID}'",
                                       database) if _has_table(pg, database, "dag") else None,
                       300, "the scheduler registering the DAG", names)
        health = wait_explained(lambda: _health(base), 300, "the webserver's /health", names)
        yield {"base": base, "names": names, "pg": pg, "database": database, "env": env,
               "health": health, "root": root}
    finally:
        for container in names.values():
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", logs_volume], capture_output=True)


def wait_explained(predicate, timeout, what, names):
    """wait_until; on timeout, each service's state, restarts and log tail."""
    try:
        return wait_until(predicate, timeout, what)
    except AssertionError as e:
        report = "\n".join(f"--- {service}: running={running(name)} restarts={restarts(name)}\n"
                           f"{logs(name)[-3000:]}" for service, name in names.items())
        raise AssertionError(f"{e}\n{report}") from None


def _has_table(pg, database, table) -> bool:
    return pg.psql(f"SELECT to_regclass('public.{table}') IS NOT NULL", database) == [["t"]]


def _health(base):
    try:
        response = requests.get(f"{base}/health", timeout=10)
        body = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None
    if body and body["metadatabase"]["status"] == "healthy" and \
            body["scheduler"]["status"] == "healthy":
        return body
    return None


def astro_dev_run(local, *args) -> subprocess.CompletedProcess:
    """`astro dev run ARGS`: an exec of `airflow ARGS` in the webserver container."""
    return subprocess.run(["docker", "exec", local["names"]["webserver"], "airflow", *args],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def dag_run(local_airflow):
    """The DAG unpaused and triggered with `astro dev run`, run to its end by the scheduler."""
    local, pg, database = local_airflow, local_airflow["pg"], local_airflow["database"]
    for command in (("dags", "unpause", DAG_ID), ("dags", "trigger", DAG_ID)):
        proc = astro_dev_run(local, *command)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    def finished():
        rows = pg.psql(f"SELECT state FROM dag_run WHERE dag_id = '{DAG_ID}'", database)
        return rows[0][0] if rows and rows[0][0] in ("success", "failed") else None

    scheduler = local["names"]["scheduler"]
    state = wait_explained(finished, 300, "the DAG run finishing", local["names"])
    tasks = {task: (state, int(tries)) for task, state, tries in pg.psql(
        f"SELECT task_id, state, try_number FROM task_instance WHERE dag_id = '{DAG_ID}'",
        database)}
    # (a service that started before the scheduler's migration restarts, as compose restarts it)
    print(f"\nastro-cli services on {LINE}, restarts: "
          f"{ {service: restarts(name) for service, name in local['names'].items()} }")
    return {"state": state, "tasks": tasks, "scheduler_log": logs(scheduler)}


def test_the_scheduler_runs_the_projects_dag_from_the_mounted_folders(local_airflow, dag_run):
    """The scheduler (the compose command: db upgrade, then scheduler, LocalExecutor on
    PostgreSQL) runs the DAG of the mounted dags/; its task reads the mounted plugins/ and
    include/ (edited on the host after the build) and the logs volume the CLI mounts."""
    assert dag_run["state"] == "success", (dag_run["tasks"], dag_run["scheduler_log"][-5000:])
    assert {task: state for task, (state, _) in dag_run["tasks"].items()} == \
        {task: "success" for task in TASKS}
    pg, database = local_airflow["pg"], local_airflow["database"]
    (value,) = pg.psql(f"SELECT value FROM xcom WHERE dag_id = '{DAG_ID}' AND task_id = "
                       "'read_project' AND key = 'return_value'", database)[0]
    assert json.loads(bytes.fromhex(value.removeprefix("\\x"))) == \
        "mounted plugins/: include/ of the host"
    # the task's log in the named volume, which the webserver also mounts
    found = subprocess.run(
        ["docker", "exec", local_airflow["names"]["webserver"], "bash", "-c",
         f"find {HOME}/logs -path '*{DAG_ID}*read_project*' -name '*.log' -size +0 2>&1"],
        capture_output=True, text=True).stdout.split()
    assert found and all(path.startswith(f"{HOME}/logs/") for path in found), found


def test_the_webserver_creates_admin_and_admin_admin_signs_in(local_airflow):
    """The webserver container's command (users create admin/admin, sync-perm, webserver) gives a
    healthy webserver, and the CLI's user signs in with admin/admin through the password form
    (the image turns it on for ASTRONOMER_ENVIRONMENT=local): the home page lists the DAG."""
    base, pg, database = local_airflow["base"], local_airflow["pg"], local_airflow["database"]
    assert local_airflow["health"]["metadatabase"]["status"] == "healthy"
    roles = pg.psql("SELECT u.username, u.email, r.name FROM ab_user u JOIN ab_user_role ur "
                    "ON ur.user_id = u.id JOIN ab_role r ON r.id = ur.role_id", database)
    assert roles == [["admin", "admin@example.com", "Admin"]], roles
    session = requests.Session()
    form = session.get(f"{base}/login/", timeout=30)
    assert form.status_code == 200, (form.status_code, form.text[:300])
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form.text)
    assert csrf, form.text[:2000]
    home = session.post(f"{base}/login/", data={"username": "admin", "password": "admin",
                                                "csrf_token": csrf.group(1)}, timeout=60)
    assert home.status_code == 200 and home.url.rstrip("/").endswith("/home"), \
        (home.status_code, home.url, home.text[:500])
    assert DAG_ID in home.text
    # the REST API: the signed-in session reads it; nobody else, whatever backend the CLI's
    # command chose (it exports airflow.api.auth.backend.default when the image sets one)
    api = session.get(f"{base}/api/v1/dags", timeout=30)
    assert api.status_code == 200 and DAG_ID in api.text, (api.status_code, api.text[:300])
    anonymous = requests.get(f"{base}/api/v1/dags", timeout=30)
    assert anonymous.status_code in (401, 403), (anonymous.status_code, anonymous.text[:300])
    # a wrong password does not sign in
    other = requests.Session()
    form = other.get(f"{base}/login/", timeout=30)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form.text).group(1)
    refused = other.post(f"{base}/login/", data={"username": "admin", "password": "wrong",
                                                  "csrf_token": csrf}, timeout=60)
    assert "/login" in refused.url and DAG_ID not in refused.text


if HAS_TRIGGERER:
    def test_the_triggerer_runs_the_deferred_task(local_airflow, dag_run):
        """The triggerer service (db upgrade, then triggerer) fires the deferrable sensor's
        trigger: without it the task would stay deferred."""
        assert dag_run["tasks"].get("wait_deferred", ("missing",))[0] == "success", dag_run
        text = logs(local_airflow["names"]["triggerer"])
        assert "DateTimeTrigger" in text, text[-3000:]


def test_the_cli_logs_volume_is_writable_by_astro(project):
    """A new named volume on /usr/local/airflow/logs (the CLI's airflow_logs) takes the owner
    and mode of the image's folder: astro must be able to write there, or every Airflow
    command of the services fails configuring its log handlers."""
    volume = f"astro-cli-logs-probe-{uuid.uuid4().hex[:12]}"
    subprocess.run(["docker", "volume", "create", volume], check=True, capture_output=True)
    try:
        proc = subprocess.run(["docker", "run", "--rm", "--network", "none", "--user", "astro",
                               "-v", f"{volume}:{HOME}/logs", project[1], "bash", "-c",
                               f"stat -c '%u:%g %a' {HOME}/logs && touch {HOME}/logs/written"],
                              capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["50000:0", "775"], proc.stdout


def test_the_cli_starts_a_triggerer_exactly_where_the_line_has_one(project):
    """The CLI decides from the project image's labels whether it adds the triggerer service."""
    labels = inspect(project[1])["Config"]["Labels"]
    assert cli_enables_triggerer(labels) is HAS_TRIGGERER, labels


def astro_dev_pytest(image: str, root: Path) -> tuple[int, str]:
    """`astro dev pytest`: a container of the project image running `pytest tests/`, with the
    host's project folders copied in before it starts."""
    name = f"astro-pytest-{uuid.uuid4().hex[:12]}"
    try:
        proc = subprocess.run(["docker", "create", "-i", "--name", name, "--network", "none",
                               image, "pytest", "tests/"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        for folder in ("dags", "tests", "plugins", "include", ".astro"):
            if (root / folder).exists():
                subprocess.run(["docker", "cp", str(root / folder), f"{name}:{HOME}/"],
                               check=True, capture_output=True)
        run = subprocess.run(["docker", "start", "-a", name], capture_output=True, text=True,
                             timeout=300)
        code = subprocess.run(["docker", "inspect", name, "--format={{.State.ExitCode}}"],
                              capture_output=True, text=True, check=True).stdout.strip()
        return int(code), run.stdout + run.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_astro_dev_pytest_runs_the_dag_integrity_test(project):
    root, image = project
    code, out = astro_dev_pytest(image, root)
    assert code == 0, out[-5000:]
    assert "tests/dags/test_dag_integrity.py" in out, out[-3000:]
    summary = out.strip().splitlines()[-1]
    assert re.search(rf"\b{INTEGRITY_TESTS_RUN} passed\b", summary), out[-3000:]
    assert "failed" not in summary and "error" not in summary, out[-3000:]


def test_astro_dev_pytest_fails_on_a_dag_import_error(project, tmp_path):
    """The same project with a DAG that cannot be imported: the integrity test fails on it."""
    root, image = project
    broken = tmp_path / "project"
    shutil.copytree(root, broken)
    (broken / "dags" / "broken_dag.py").write_text(
        "from airflow import DAG\nimport a_module_this_project_does_not_have\n")
    (broken / "dags" / "broken_dag.py").chmod(0o644)
    code, out = astro_dev_pytest(image, broken)
    assert code == 1, out[-5000:]  # (1: tests failed; not a usage or collection error)
    summary = out.strip().splitlines()[-1]
    assert re.search(r"\b1 failed\b", summary), out[-3000:]
    assert "test_file_imports[dags/broken_dag.py]" in out, out[-3000:]
    assert "a_module_this_project_does_not_have" in out, out[-3000:]


def test_password_form_only_for_the_local_environment_or_when_asked(images):
    """The image's choice of the password form: RUNTIME_AUTH_PASSWORD_LOGIN wins when set;
    unset, only the Astro CLI's local environment gets it."""
    cases = [({}, False), ({"ASTRONOMER_ENVIRONMENT": "local"}, True),
             ({"ASTRONOMER_ENVIRONMENT": "cloud"}, False),
             ({"ASTRONOMER_ENVIRONMENT": "local", "RUNTIME_AUTH_PASSWORD_LOGIN": "false"}, False),
             ({"ASTRONOMER_ENVIRONMENT": "local", "RUNTIME_AUTH_PASSWORD_LOGIN": ""}, True),
             ({"RUNTIME_AUTH_PASSWORD_LOGIN": "true"}, True)]
    script = ("import json, sys\nfrom runtime_security.manager import password_login_enabled\n"
              "print(json.dumps([password_login_enabled(env) for env in "
              "json.loads(sys.argv[1])]))")
    proc = docker_run(images["base"], "python", "-c", script,
                      json.dumps([env for env, _ in cases]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == [want for _, want in cases]
