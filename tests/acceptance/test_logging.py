"""Reliable task logs against a real S3-compatible server (moto's, a separate process on
127.0.0.1 that the checks stop and start), PostgreSQL, a LocalExecutor scheduler as the worker
and a webserver sharing the log volume read-only. Three scenarios, in order:
the store is down for a whole task run and comes back; the webserver shows a running task's
log while the store is down; the worker is killed with SIGKILL mid-task and the next process on
the volume ships what it left. Then, each with a worker of its own: a try that starts while the
log volume is full (a small tmpfs) and a try whose store hangs (a TCP server that never
answers; the delay it adds to the try's exit is printed)."""

import json
import os
import re
import subprocess
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import requests

from tests import services
from tests.acceptance.containers import QUIET_AIRFLOW, container, docker_run, logs, wait_until
from tests.acceptance.platform_tokens import AUTH_ENV, mint

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
DAGS = Path(__file__).with_name("dags_logging")
PREFIX = "task-logs"
LINE = re.compile(r"runtime-log-line (\d{6}) of (\d{6})")


def numbers(text: str) -> Counter:
    return Counter(int(m.group(1)) for m in LINE.finditer(text))


@pytest.fixture(scope="module")
def deployment(images, postgres_server):
    img, pg = images["base"], postgres_server
    s3 = services.S3Server(services.free_port())
    s3.start()
    with tempfile.TemporaryDirectory(prefix="runtime-logging-") as tmp:
        tmp = Path(tmp)
        (tmp / "logs").mkdir()
        (tmp / "logs").chmod(0o777)  # the astro user (uid 50000) writes there
        (tmp / "auth").mkdir(mode=0o755)
        tokens = mint(img, tmp / "auth")
        database = pg.create_database("logging")
        env = {**QUIET_AIRFLOW, **s3.runtime_env(PREFIX),
               "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
               "AIRFLOW__CORE__SQL_ALCHEMY_CONN": pg.url(database),
               "AIRFLOW__LOGGING__BASE_LOG_FOLDER": "/logs"}
        proc = docker_run(img, "airflow", "db", "init", network="host", env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        port = services.free_port()
        dags = {str(DAGS): "/usr/local/airflow/dags:ro"}
        web = f"runtime-logging-web-{port}"
        with container(img, "webserver", "--hostname", "127.0.0.1", "--port", str(port),
                       name=web, network="host",
                       env={**env, **AUTH_ENV},
                       volumes={**dags, str(tmp / "logs"): "/logs:ro",
                                str(tmp / "auth"): "/auth:ro"}):
            deploy = Deployment(img, env, tmp / "logs", s3, f"http://127.0.0.1:{port}",
                                tokens["good"]["Admin"], dags, pg, database, web)
            try:
                with deploy.worker("first"):
                    wait_until(lambda: deploy.status("/api/v1/dags/runtime_logs_kill") == 200,
                               300, "the webserver serving the DAGs")
                    yield deploy
            finally:
                s3.stop()


class Deployment:
    def __init__(self, img, env, logs, s3, base, token, dags, pg, database, web):
        self.img, self.env, self.logs, self.s3, self.base = img, env, logs, s3, base
        self.token, self.dags, self.pg, self.database, self.web = token, dags, pg, database, web
        self.worker_name = None

    def worker(self, tag):
        self.worker_name = f"runtime-logging-worker-{tag}-{os.getpid()}"
        return container(self.img, "scheduler", name=self.worker_name, network="host",
                         env=self.env, volumes={**self.dags, str(self.logs): "/logs"})

    def api(self, method, path, **kw):
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return requests.request(method, f"{self.base}{path}", headers=headers, timeout=60, **kw)

    def status(self, path):
        try:
            return self.api("GET", path).status_code
        except requests.RequestException:
            return None

    def unpause(self, dag_id):
        r = self.api("PATCH", f"/api/v1/dags/{dag_id}", json={"is_paused": False})
        assert r.status_code == 200, r.text

    def run_state(self, dag_id):
        rows = self.pg.psql(f"SELECT state FROM dag_run WHERE dag_id = '{dag_id}'",
                            self.database)
        return rows[0][0] if rows else None

    def local_log(self, dag_id) -> Path:
        """The first try's local log (its layout is the Airflow version's filename template:
        <dag>/<task>/<date>/1.log up to 2.2, dag_id=<dag>/run_id=.../attempt=1.log in 2.3)."""
        found = [p for p in self.logs.rglob("*.log") if p.name in ("1.log", "attempt=1.log")
                 and p.relative_to(self.logs).parts[0] in (dag_id, f"dag_id={dag_id}")]
        return found[0] if found else self.logs / "not-yet" / dag_id

    def whole_key(self, dag_id) -> str:
        return f"{PREFIX}/{self.local_log(dag_id).relative_to(self.logs).as_posix()}"

    def webserver_log(self, dag_id) -> str:
        runs = self.api("GET", f"/api/v1/dags/{dag_id}/dagRuns").json()["dag_runs"]
        run_id = runs[0]["dag_run_id"]
        r = self.api("GET", f"/api/v1/dags/{dag_id}/dagRuns/{run_id}/taskInstances/write_lines"
                            "/logs/1", params={"full_content": "true"},
                     headers={"Accept": "text/plain"})
        assert r.status_code == 200, logs(self.web)[-4000:]
        return r.text

    def spool(self) -> list[str]:
        folder = self.logs / ".runtime-spool"
        return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


def test_store_down_for_a_whole_run_then_back(deployment):
    d, dag_id = deployment, "runtime_logs_outage"
    d.s3.stop()
    try:
        d.unpause(dag_id)
        assert wait_until(lambda: d.run_state(dag_id) in ("success", "failed") and
                          d.run_state(dag_id), 300, "the run ending") == "success"
        assert d.spool(), "the log should wait in the spool"
        local = numbers(d.local_log(dag_id).read_text())
        assert local == Counter(range(1, 3001))
    finally:
        d.s3.start()
    key = d.whole_key(dag_id)
    text = wait_until(lambda: d.s3.read(key), 60, "the spool shipped once the store is back")
    assert numbers(text) == Counter(range(1, 3001)), "every line, none twice"
    assert "task-default-credentials: None" in text  # the task saw none of ours
    wait_until(lambda: not d.spool(), 30, "the spool emptied")
    # the webserver reads it from the store (the worker's copy gone)
    d.local_log(dag_id).rename(d.local_log(dag_id).with_suffix(".gone"))
    shown = d.webserver_log(dag_id)
    assert "Reading remote log" in shown and numbers(shown) == Counter(range(1, 3001))


def test_running_task_log_shows_while_store_is_down(deployment):
    d, dag_id = deployment, "runtime_logs_running"
    d.s3.stop()
    try:
        d.unpause(dag_id)
        wait_until(lambda: d.local_log(dag_id).exists() and
                   len(numbers(d.local_log(dag_id).read_text())) >= 50, 300,
                   "the task writing its log")
        assert d.run_state(dag_id) == "running"
        shown = numbers(d.webserver_log(dag_id))
        assert len(shown) >= 50 and set(shown.values()) == {1}
        assert set(shown) == set(range(1, len(shown) + 1))
        assert wait_until(lambda: d.run_state(dag_id) in ("success", "failed") and
                          d.run_state(dag_id), 300, "the run ending") == "success"
    finally:
        d.s3.start()
    key = d.whole_key(dag_id)
    text = wait_until(lambda: d.s3.read(key), 60, "the spool shipped once the store is back")
    assert numbers(text) == Counter(range(1, 601))


def test_worker_killed_mid_task_every_line_is_readable(deployment):
    d, dag_id = deployment, "runtime_logs_kill"
    d.unpause(dag_id)
    wait_until(lambda: d.local_log(dag_id).exists() and
               len(numbers(d.local_log(dag_id).read_text())) >= 200 and
               any(k.startswith(f"{d.whole_key(dag_id)}.chunks/") for k in d.s3.keys()), 300,
               "the task writing and shipping chunks")
    subprocess.run(["docker", "kill", "--signal", "KILL", d.worker_name], check=True,
                   capture_output=True)
    time.sleep(1)
    written = numbers(d.local_log(dag_id).read_text())
    assert len(written) >= 200 and max(written) < 1500, "killed mid-task"
    assert set(written.values()) == {1}
    # right away, from the volume
    assert set(written) <= set(numbers(d.webserver_log(dag_id)))
    # the next process on that volume ships what the dead one left
    with d.worker("second"):
        key = d.whole_key(dag_id)
        text = wait_until(lambda: d.s3.read(key), 90, "the leftover shipped")
    shipped = numbers(text)
    assert set(written) <= set(shipped) and set(shipped.values()) == {1}
    d.local_log(dag_id).rename(d.local_log(dag_id).with_suffix(".gone"))
    shown = numbers(d.webserver_log(dag_id))
    assert set(written) <= set(shown) and set(shown.values()) == {1}


def test_handler_alone_without_a_store(images):
    """No RUNTIME_LOG_S3_BUCKET: the handler is Airflow's file handler (nothing else started)."""
    proc = docker_run(images["base"], "python3.9", "-c",
                      "import logging.config; from airflow.configuration import conf; "
                      "from runtime_logging.config import LOGGING_CONFIG; "
                      "logging.config.dictConfig(LOGGING_CONFIG); "
                      "h = logging.getLogger('airflow.task').handlers[0]; "
                      "print(type(h).__name__, h.store, conf.get('logging', "
                      "'logging_config_class'))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-3:] == ["RuntimeTaskHandler", "None",
                                        "runtime_logging.config.LOGGING_CONFIG"]


JSON_LINES = """
import logging, logging.config, sys, tempfile
from datetime import datetime, timezone
from types import SimpleNamespace
import airflow  # (first: Airflow loads the logging configuration as it starts)
from runtime_logging.config import LOGGING_CONFIG
logging.config.dictConfig(LOGGING_CONFIG)
handler = logging.getLogger("airflow.task").handlers[0]
when = datetime(2022, 1, 1, tzinfo=timezone.utc)
run = SimpleNamespace(logical_date=when, execution_date=when, data_interval_start=None,
                      data_interval_end=None)
ti = SimpleNamespace(dag_id="d", task_id="t", try_number=1, raw=True, map_index=-1,
                     execution_date=when, run_id="r", get_dagrun=lambda: run)  # (2.3: map_index)
handler.set_context(ti)
logging.getLogger("airflow.task").info("hello %s", "json")
print(type(handler).__name__)
"""


def test_json_lines_on_stdout(images):
    """RUNTIME_LOG_STDOUT_JSON=true: each record also as one JSON line on the real stdout."""
    proc = docker_run(images["base"], "python3.9", "-c", JSON_LINES,
                      env={"RUNTIME_LOG_STDOUT_JSON": "true"})
    assert proc.returncode == 0, proc.stderr
    docs = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.stdout.splitlines()[-1] == "RuntimeJsonTaskHandler"
    assert [(d["message"], d["level"], d["dag_id"], d["task_id"], d["try_number"])
            for d in docs] == [("hello json", "INFO", "d", "t", 1)]


def stop_workers(d):
    """(the checks below run their own worker, or none: the deployment's must not take the run)"""
    for tag in ("first", "second"):
        subprocess.run(["docker", "rm", "-f", f"runtime-logging-worker-{tag}-{os.getpid()}"],
                       capture_output=True)


def execute(name, script) -> str:
    proc = subprocess.run(["docker", "exec", name, "bash", "-c", script], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_a_try_started_on_a_full_disk_reaches_the_store(deployment, tmp_path):
    """The spool's disk (a 64 KiB tmpfs mounted on the worker's spool folder) is full when the
    try starts, and the store is down when it ends: the try leaves a spool lock, no entry and
    no temp file; once the store is back the worker's recovery scan finds the log by its lock
    and ships all of it; the failure is on the worker's stderr. (With the logs themselves on
    the full volume, the default, Airflow 2.2 fails the try at once: every failed write of its
    log is reported to sys.stderr, which it points at that log; that try's log, empty, is
    shipped the same way.)"""
    d, dag_id = deployment, "runtime_logs_full_disk"
    stop_workers(d)
    name = f"runtime-logging-worker-full-{os.getpid()}"
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs").chmod(0o777)
    args = ["docker", "run", "-d", "--name", name, "--network", "host",
            "-v", f"{DAGS}:/usr/local/airflow/dags:ro", "-v", f"{tmp_path / 'logs'}:/logs",
            "--mount", "type=tmpfs,destination=/logs/.runtime-spool,tmpfs-size=64k,"
                       "tmpfs-mode=1777"]
    for key, value in d.env.items():
        args += ["-e", f"{key}={value}"]
    proc = subprocess.run([*args, d.img, "scheduler"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    spool = "/logs/.runtime-spool"
    try:
        execute(name, f"dd if=/dev/zero of={spool}/filler bs=4k 2>/dev/null; "
                      f"test $(df --output=avail {spool} | tail -1) -eq 0")
        d.s3.stop()
        try:
            d.unpause(dag_id)
            assert wait_until(lambda: d.run_state(dag_id) in ("success", "failed") and
                              d.run_state(dag_id), 300, "the run ending") == "success"
            time.sleep(5)  # (the try's process gives the store RUNTIME_LOG_FINISH_TIMEOUT)
            left = execute(name, f"ls -A {spool}").split()
            assert sorted(n.split(".", 1)[-1] for n in left) == ["filler", "lock"], left
            execute(name, f"rm {spool}/filler")  # space returns
        finally:
            d.s3.start()  # and the store
        local, = [p for p in (tmp_path / "logs").rglob("*.log") if dag_id in p.as_posix()]
        rel = local.relative_to(tmp_path / "logs").as_posix()
        written = numbers(local.read_text())
        assert written == Counter(range(1, 401))
        text = wait_until(lambda: d.s3.read(f"{PREFIX}/{rel}"), 60,
                          "the log shipped by the recovery scan")
        assert numbers(text) == written, "every line, none twice"
        wait_until(lambda: execute(name, f"ls -A {spool}").split() == [], 30,
                   "the spool emptied")
        reported = [line for line in logs(name).splitlines()
                    if line.startswith("runtime_logging: ") and rel in line]
        assert reported and "No space left on device" in reported[0], logs(name)[-3000:]
        print(f"full spool disk at the try's start: {len(numbers(text))} lines shipped by "
              f"the recovery scan; reported: {reported[0]}")
    except BaseException:
        print(logs(name)[-8000:])  # (the worker's log: what it did with the full disk)
        raise
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


HUNG_CALL = """
import time
from runtime_logging.store import S3Store, StoreConfig
store = S3Store(StoreConfig.from_env())
started = time.monotonic()
try:
    store.read("a/1.log")
except Exception as e:
    print(type(e).__name__, round(time.monotonic() - started, 2))
"""
TIMED_TRY = """
import subprocess, sys, time
proc = subprocess.run(["airflow", "tasks", "run", "--local", "--ignore-all-dependencies",
                       "runtime_logs_hung_store", "write_lines", sys.argv[1]])
print("try-ended-at", time.time(), proc.returncode)
"""
# the supervising process's record of the task's end, in the try's log (UTC)
TASK_EXITED = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]"
                         r".*Task exited with return code", re.M)
STORE_TIMEOUT = 5.0  # the store client's connect and read timeouts (store.py)


def test_a_hung_store_delays_a_try_exit_by_one_bounded_wait(deployment, tmp_path):
    """A store that accepts connections and never answers: one request per store call, and a
    try (`airflow tasks run --local`, the supervising process with the Runtime's defaults)
    exits at most RUNTIME_LOG_FINISH_TIMEOUT (4 s) after its task has: the exit delay is the
    time from the supervising process's "Task exited" record to the process's end, measured
    for a working store and a hung one, and printed. The bound asserted (2 x the store's
    timeout) is not a speed check: two requests per call, or the final upload waiting for a
    periodic one, take at least that."""
    from tests.hung_store import HungServer

    d = deployment
    stop_workers(d)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs").chmod(0o777)
    defaults = {k: v for k, v in d.env.items() if k not in (
        "RUNTIME_LOG_SHIP_INTERVAL", "RUNTIME_LOG_RECOVERY_INTERVAL", "RUNTIME_LOG_FINISH_TIMEOUT")}
    volumes = {**d.dags, str(tmp_path / "logs"): "/logs"}
    delays = {}
    with HungServer() as hung:
        hung_env = {**defaults, "RUNTIME_LOG_S3_ENDPOINT_URL": hung.url}
        proc = docker_run(d.img, "python3.9", "-c", HUNG_CALL, network="host", env=hung_env)
        assert proc.returncode == 0, proc.stderr
        print(f"one store call against a hung store: {hung.count()} request(s), "
              f"{proc.stdout.split()[-1]} s")
        assert proc.stdout.split()[0] == "ReadTimeoutError" and hung.count() == 1
        for store, env in (("working", defaults), ("hung", hung_env)):
            day = {"working": 5, "hung": 6}[store]
            r = d.api("POST", "/api/v1/dags/runtime_logs_hung_store/dagRuns",
                      json={"dag_run_id": f"timed-{store}",
                            "execution_date": f"2022-02-0{day}T00:00:00+00:00"})
            assert r.status_code == 200, r.text
            # (by execution date: Airflow 2.1 takes no run id here)
            proc = docker_run(d.img, "python3.9", "-c", TIMED_TRY,
                              f"2022-02-0{day}T00:00:00+00:00",
                              network="host", env=env, volumes=volumes)
            figures = [line.split() for line in proc.stdout.splitlines()
                       if line.startswith("try-ended-at")]
            assert figures and figures[0][2] == "0", proc.stdout[-2000:] + proc.stderr[-3000:]
            log, = [p for p in (tmp_path / "logs").rglob("*.log")
                    if f"2022-02-0{day}" in p.as_posix()  # (2.3: the run id names it)
                    or f"run_id=timed-{store}/" in p.as_posix()]
            exited = TASK_EXITED.findall(log.read_text())
            assert exited, log.read_text()[-3000:]
            task_end = datetime.strptime(exited[-1] + "+0000", "%Y-%m-%d %H:%M:%S,%f%z")
            delays[store] = float(figures[0][1]) - task_end.timestamp()
    print(f"a try's exit after its task's: {delays['working']:.2f} s with a working store, "
          f"{delays['hung']:.2f} s with a hung one")
    assert delays["hung"] < 2 * STORE_TIMEOUT
