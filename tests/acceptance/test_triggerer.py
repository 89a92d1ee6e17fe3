"""Deferrable operators through the triggerer, on PostgreSQL with the LocalExecutor: scheduler
and triggerer in containers of their own, two deferrable sensors (Airflow's
TimeDeltaSensorAsync, astronomer-providers' HttpSensorAsync against a server of the test's on
127.0.0.1). Each task is seen `deferred` in the metadata database, the triggerer is killed
with SIGKILL while they are, a new one takes their triggers over, and each task succeeds once.
Lines on Airflow 2.1 have no triggerer: `airflow triggerer` says which Runtime has one."""

import contextlib
import http.server
import subprocess
import threading
import time
from pathlib import Path

import pytest
from packaging.version import Version

from tests import services
from tests.acceptance.containers import LINE, QUIET_AIRFLOW, RUNTIME, container, docker_run, logs, \
    running, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
HAS_TRIGGERER = Version(RUNTIME.airflow) >= Version("2.2")
DAG_ID = "runtime_deferrable"
TASKS = {"wait_time", "wait_http"}
DAG_MOUNT = {str(Path(__file__).with_name("dags_deferrable")): "/usr/local/airflow/dags:ro"}
WAIT_SECONDS = 60  # TimeDeltaSensorAsync's delta: long enough to kill and replace the triggerer


class ReadyServer:
    """GET /ready answers 404 until `ready` is set, then 200; counts the 200s it gave (printed:
    astronomer-providers 1.3.0's HttpTrigger polls on after it fired, until it is cancelled)."""

    def __init__(self):
        self.ready, self.served = False, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                status = 200 if outer.ready and self.path.rstrip("/").endswith("ready") else 404
                if status == 200:
                    outer.served += 1
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]

    @contextlib.contextmanager
    def serving(self):
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()


def states(pg, database) -> dict:
    rows = pg.psql("SELECT task_id, state, try_number FROM task_instance "
                   f"WHERE dag_id = '{DAG_ID}'", database)
    return {task: (state, int(tries)) for task, state, tries in rows}


def dag_run_state(pg, database):
    rows = pg.psql(f"SELECT state FROM dag_run WHERE dag_id = '{DAG_ID}'", database)
    return rows[0][0] if rows and rows[0][0] in ("success", "failed") else None


if HAS_TRIGGERER:
    def test_deferred_tasks_survive_a_killed_triggerer_and_succeed_once(images,
                                                                        postgres_server,
                                                                        tmp_path):
        pg, img = postgres_server, images["base"]
        database = pg.create_database("triggerer")
        server = ReadyServer()
        resumes = tmp_path / "resumes"  # a line per resumption of a task (the DAG writes it)
        resumes.mkdir()
        resumes.chmod(0o777)
        env = {**QUIET_AIRFLOW, "AIRFLOW__CORE__SQL_ALCHEMY_CONN": pg.url(database),
               "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
               "AIRFLOW_CONN_HTTP_DEFAULT": f"http://127.0.0.1:{server.port}",
               "RUNTIME_TEST_WAIT": str(WAIT_SECONDS), "RUNTIME_TEST_RESUMES": "/resumes"}
        proc = docker_run(img, "airflow", "db", "init", network="host", env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        common = dict(network="host", env=env, volumes={**DAG_MOUNT, str(resumes): "/resumes"})
        seen = {task: set() for task in TASKS}

        def watch():
            for task, (state, _) in states(pg, database).items():
                seen[task].add(state)
            return seen

        with server.serving(), \
                container(img, "scheduler", name=f"runtime-acceptance-deferrable-scheduler-{LINE}",
                          **common) as scheduler, \
                container(img, "triggerer", name=f"runtime-acceptance-triggerer-1-{LINE}",
                          **common) as first:
            wait_until(lambda: pg.psql(f"SELECT 1 FROM dag WHERE dag_id = '{DAG_ID}'",
                                       database), 240, "the scheduler registering the DAG")
            trigger = subprocess.run(["docker", "exec", scheduler, "airflow", "dags", "trigger",
                                      DAG_ID], capture_output=True, text=True, timeout=120)
            assert trigger.returncode == 0, trigger.stdout + trigger.stderr
            wait_until(lambda: all("deferred" in watch()[t] for t in TASKS), 240,
                       "both tasks deferred", every=1)
            # the triggerer dies while both triggers are its own; the tasks stay deferred
            subprocess.run(["docker", "kill", "--signal", "KILL", first], check=True,
                           capture_output=True)
            killed_at = time.monotonic()
            assert {s for s, _ in states(pg, database).values()} == {"deferred"}
            with container(img, "triggerer", name=f"runtime-acceptance-triggerer-2-{LINE}",
                           **common) as second:
                # the new triggerer takes the HTTP trigger over: it polls and gets 404s
                wait_until(lambda: "HttpTrigger" in logs(second) or
                           (not running(second) and "the new triggerer exited"), 180,
                           "the new triggerer running the HTTP trigger")
                server.ready = True
                state = wait_until(lambda: dag_run_state(pg, database) or
                                   (not running(scheduler) and "the scheduler exited"), 300,
                                   "the DAG run finishing", every=1)
                taken_over = time.monotonic() - killed_at
                second_log = logs(second)
            assert state == "success", logs(scheduler)[-4000:] + second_log[-4000:]
        # each task succeeded in its first try, resumed exactly once after its trigger fired
        assert states(pg, database) == {task: ("success", 1) for task in TASKS}, \
            states(pg, database)
        assert {p.name: p.read_text() for p in resumes.iterdir()} == \
            {task: "resumed\n" for task in TASKS}
        assert all("deferred" in seen[t] for t in TASKS), seen
        for trigger_class in ("astronomer.providers.http.triggers.http.HttpTrigger",
                              "airflow.triggers.temporal.DateTimeTrigger"):
            assert trigger_class in second_log, second_log[-4000:]
        print(f"\nkilled triggerer to DAG run success: {taken_over:.0f} s; "
              f"HTTP 200 answers to the trigger: {server.served}")

    def test_the_triggerer_waits_for_its_database(images):
        """`airflow triggerer` is an Airflow server: the entrypoint waits for the metadata
        database as it does for the scheduler, then gives up with one clear line."""
        port = services.free_port()  # nothing listens there
        proc = docker_run(images["base"], "triggerer", network="host", timeout=120, env={
            "AIRFLOW__CORE__SQL_ALCHEMY_CONN": f"postgresql://airflow@127.0.0.1:{port}/x",
            "RUNTIME_WAIT_TIMEOUT": "3"})
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr and "database" in proc.stderr, proc.stderr

else:
    def test_triggerer_says_which_runtime_has_one(img):
        proc = docker_run(img, "triggerer")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        assert "deferrable operators need Runtime 4.0 or later" in proc.stderr, proc.stderr
        again = docker_run(img, "airflow", "triggerer")
        assert again.returncode == 2 and again.stderr == proc.stderr, again.stderr
