"""OpenLineage lineage (issue 20, item 3), on every line: a Marquez-compatible receiver in this
process (POST /api/v1/lineage on 127.0.0.1) collects the events of real DAG runs, each an
`airflow dags backfill` through the LocalExecutor on the test's PostgreSQL (LocalTaskJob, task
processes forked as a scheduler's are, so Airflow 2.3's listeners fire as in production).
Four runs of the same two tasks (a PostgresOperator copying lineage_source into lineage_target,
then a BashOperator): receiver up, receiver down (a closed port), receiver hanging 30 s per
request, and no OPENLINEAGE_URL. The mechanism is the line's: the lineage backend on Airflow
2.1/2.2 (set by the entrypoint), openlineage's listener on 2.3. Each task's time is its
LocalTaskJob's (start to end, both hooks included); the delays are printed."""

import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests import services
from tests.acceptance.containers import AIRFLOW, QUIET_AIRFLOW, docker_run

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
DAGS = Path(__file__).with_name("dags_lineage")
NAMESPACE = "runtime-lineage-test"
TASKS = ("copy_rows", "say_done")
SCENARIOS = ("off", "up", "down", "hang")
# Airflow 2.1/2.2: Airflow's lineage backend (the entrypoint sets the Runtime's); 2.3:
# openlineage-airflow's own plugin and listener
USES_BACKEND = AIRFLOW.startswith(("2.1.", "2.2."))
BACKEND = "runtime_providers.lineage.OpenLineageBackend"
HANG = 30
# what a receiver that is down or hangs may add to one task (the Runtime's budget is 2 s on
# 2.1/2.2; openlineage 0.8's listener joins its threads for 2 s, twice per task, on 2.3)
MAX_DELAY = 6.0


class Receiver:
    """A Marquez-compatible lineage endpoint: stores the JSON bodies POSTed to
    /api/v1/lineage; with `hang`, answers each request only after that many seconds."""

    def __init__(self, hang: float = 0):
        self.events: list[dict] = []
        self.hang, self.released = hang, threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                found = self.path.rstrip("/") == "/api/v1/lineage"
                if found:
                    receiver.events.append(json.loads(body))
                if receiver.hang:
                    receiver.released.wait(receiver.hang)
                self.send_response(201 if found else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, dag_id: str) -> list[dict]:
        return [e for e in self.events if e["job"]["name"].startswith(f"{dag_id}.")]

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Run:
    output: str
    seconds: float  # the whole backfill command
    states: dict = field(default_factory=dict)  # task -> state
    job_seconds: dict = field(default_factory=dict)  # task -> its LocalTaskJob's run time
    logs: str = ""  # the task logs


@pytest.fixture(scope="module")
def runs(images, postgres_server):
    pg = postgres_server
    # a tag of this module's own: a concurrent session that removes the line's tags at its end
    # leaves this run's image in place
    img = f"runtime-lineage-test:{os.getpid()}"
    subprocess.run(["docker", "tag", images["base"], img], check=True)
    meta, data = pg.create_database("lineage_meta"), pg.create_database("lineage_data")
    pg.psql("CREATE TABLE lineage_source (id int, name text); "
            "INSERT INTO lineage_source VALUES (1, 'a'), (2, 'b'); "
            "CREATE TABLE lineage_target (id int, name text)", data)
    up, hang = Receiver(), Receiver(hang=HANG)
    down = f"http://127.0.0.1:{services.free_port()}"  # nothing listens there
    urls = {"off": None, "up": up.url, "down": down, "hang": hang.url}
    with tempfile.TemporaryDirectory(prefix="runtime-lineage-") as tmp:
        logs = Path(tmp) / "logs"
        logs.mkdir()
        logs.chmod(0o777)  # the astro user (uid 50000) writes there
        env = {**QUIET_AIRFLOW, "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
               # the backfill's loop checks its tasks every heartbeat (default 5 s)
               "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
               "AIRFLOW__CORE__SQL_ALCHEMY_CONN": pg.url(meta),
               "AIRFLOW__LOGGING__BASE_LOG_FOLDER": "/logs",
               "AIRFLOW_CONN_LINEAGE_PG": pg.url(data, driver="postgres"),
               "OPENLINEAGE_NAMESPACE": NAMESPACE}
        volumes = {str(DAGS): "/usr/local/airflow/dags:ro", str(logs): "/logs"}
        proc = docker_run(img, "airflow", "db", "init", network="host", env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        try:
            done = {}
            for scenario in SCENARIOS:
                dag_id = f"lineage_{scenario}"
                run_env = {**env, "OPENLINEAGE_URL": urls[scenario]} if urls[scenario] else env
                started = time.monotonic()
                proc = docker_run(img, "airflow", "dags", "backfill", "-s", "2022-01-01",
                                  "-e", "2022-01-01", dag_id, network="host", env=run_env,
                                  volumes=volumes, timeout=300)
                run = Run(proc.stdout + proc.stderr, time.monotonic() - started)
                for task, state, seconds in pg.psql(
                        "SELECT ti.task_id, ti.state, EXTRACT(EPOCH FROM j.end_date - "
                        "j.start_date) FROM task_instance ti LEFT JOIN job j ON "
                        f"j.id = ti.job_id WHERE ti.dag_id = '{dag_id}'", meta):
                    run.states[task] = state
                    run.job_seconds[task] = float(seconds) if seconds else None
                run.logs = "\n".join(
                    p.read_text(errors="replace") for p in sorted(logs.rglob("*.log"))
                    if p.relative_to(logs).parts[0] in (dag_id, f"dag_id={dag_id}"))
                done[scenario] = run
            print("\nlineage: per task, seconds of its LocalTaskJob (whole backfill): " +
                  "; ".join(f"{s}: " + ", ".join(f"{t} {done[s].job_seconds.get(t) or 0:.2f}"
                                                 for t in TASKS) + f" ({done[s].seconds:.1f})"
                            for s in SCENARIOS))
            yield {"runs": done, "up": up, "hang": hang, "img": img}
        finally:
            up.close()
            hang.close()
            subprocess.run(["docker", "rmi", img], capture_output=True)


def test_every_task_sends_start_and_complete_with_one_run_id(runs):
    run, events = runs["runs"]["up"], runs["up"].of("lineage_up")
    assert run.states == dict.fromkeys(TASKS, "success"), run.output[-3000:]
    for task in TASKS:
        mine = [e for e in events if e["job"]["name"] == f"lineage_up.{task}"]
        kinds = sorted(e["eventType"] for e in mine)
        assert kinds == ["COMPLETE", "START"], (task, kinds, run.logs[-3000:])
        assert {e["job"]["namespace"] for e in mine} == {NAMESPACE}
        run_ids = {e["run"]["runId"] for e in mine}
        assert len(run_ids) == 1 and all(run_ids), run_ids


def test_the_postgres_task_names_the_table_it_reads_and_the_one_it_writes(runs):
    events = [e for e in runs["up"].of("lineage_up")
              if e["job"]["name"] == "lineage_up.copy_rows"]
    complete = [e for e in events if e["eventType"] == "COMPLETE"]
    assert complete, events
    inputs = [d["name"] for d in complete[0]["inputs"]]
    outputs = [d["name"] for d in complete[0]["outputs"]]
    said = [line for line in runs["runs"]["up"].logs.splitlines() if "ineage" in line]
    assert [n.rsplit(".", 1)[-1] for n in inputs] == ["lineage_source"], (inputs, said)
    assert [n.rsplit(".", 1)[-1] for n in outputs] == ["lineage_target"], (outputs, said)
    namespaces = {d["namespace"] for d in complete[0]["inputs"] + complete[0]["outputs"]}
    assert all(ns.startswith("postgres://127.0.0.1:") for ns in namespaces), namespaces


def test_without_openlineage_url_nothing_is_sent_and_no_error_is_logged(runs):
    run = runs["runs"]["off"]
    assert run.states == dict.fromkeys(TASKS, "success"), run.output[-3000:]
    assert run.logs, "the task logs of lineage_off"
    assert not runs["up"].of("lineage_off") and not runs["hang"].of("lineage_off")
    text = run.output + run.logs
    for needle in ("ERROR", "OPENLINEAGE_URL is not set", '"eventType"', "openlineage"):
        found = [line for line in text.splitlines() if needle in line]
        assert not found, (needle, found[:5])


@pytest.mark.parametrize("scenario", ["down", "hang"])
def test_a_receiver_down_or_hanging_fails_no_task_and_adds_seconds_at_most(runs, scenario):
    run, baseline = runs["runs"][scenario], runs["runs"]["off"]
    assert run.states == dict.fromkeys(TASKS, "success"), run.output[-3000:] + run.logs[-3000:]
    if scenario == "hang":
        assert runs["hang"].of("lineage_hang"), "the hanging receiver was asked"
    added = {t: run.job_seconds[t] - baseline.job_seconds[t] for t in TASKS}
    print(f"\nlineage, receiver {scenario}: added per task (s) " +
          ", ".join(f"{t} {a:+.2f}" for t, a in added.items()))
    assert all(a <= MAX_DELAY for a in added.values()), added


def test_the_image_configures_lineage_only_with_openlineage_url(runs):
    """The entrypoint's default, on each line: the Runtime's lineage backend when
    OPENLINEAGE_URL is set on Airflow 2.1/2.2 (2.3: none, the listener sends); never without
    it; a backend the user chose (variable, even empty, or airflow.cfg) is kept."""
    show = 'echo "${AIRFLOW__LINEAGE__BACKEND-unset}"'
    script = "; ".join([
        f"OPENLINEAGE_URL=http://x runtime-entrypoint bash -c '{show}'",
        f"runtime-entrypoint bash -c '{show}'",
        f"OPENLINEAGE_URL=http://x AIRFLOW__LINEAGE__BACKEND=my.Backend "
        f"runtime-entrypoint bash -c '{show}'",
        f"OPENLINEAGE_URL=http://x AIRFLOW__LINEAGE__BACKEND= runtime-entrypoint bash -c '{show}'",
        "printf '[lineage]\\nbackend = my.CfgBackend\\n' > /tmp/airflow.cfg",
        f"OPENLINEAGE_URL=http://x AIRFLOW_CONFIG=/tmp/airflow.cfg runtime-entrypoint "
        f"bash -c '{show}'"])
    proc = docker_run(runs["img"], "bash", "-c", script, network="none")
    assert proc.returncode == 0, proc.stderr
    default = BACKEND if USES_BACKEND else "unset"
    assert proc.stdout.split("\n")[:5] == [default, "unset", "my.Backend", "", "unset"], \
        proc.stdout
