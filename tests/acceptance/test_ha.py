"""High availability: two scheduler containers on one real PostgreSQL (CeleryExecutor, a Redis
broker, one worker); one scheduler is killed with SIGKILL in the middle of ten DAG runs. Every
run must complete, and no task may run twice (each task writes one ledger line per run)."""

import collections
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import services
from tests.acceptance.containers import QUIET_AIRFLOW, container, docker_run, logs, running, \
    wait_until

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
DAG_ID, RUNS, TASKS = "runtime_ha", 10, ("first", "second")


def runs_by_state(pg, database) -> dict:
    rows = pg.psql(f"SELECT state, count(*) FROM dag_run WHERE dag_id = '{DAG_ID}' "
                   "GROUP BY state", database)
    return {state: int(count) for state, count in rows}


def test_two_schedulers_survive_a_kill_9_without_running_a_task_twice(
        images, postgres_server, redis_server):
    pg, img = postgres_server, images["base"]
    database = pg.create_database("high_availability")
    ledger = Path(tempfile.mkdtemp(prefix="runtime-ledger-", dir="/tmp"))
    ledger.chmod(0o777)  # written by the worker's uid 50000
    try:
        env = {**QUIET_AIRFLOW, "AIRFLOW__CORE__SQL_ALCHEMY_CONN": pg.url(database),
               "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
               "AIRFLOW__CELERY__BROKER_URL": redis_server.url(1),
               "AIRFLOW__CELERY__RESULT_BACKEND": pg.url(database, "db+postgresql"),
               "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
               "AIRFLOW__CELERY__WORKER_LOG_SERVER_PORT": str(services.free_port())}
        init = docker_run(img, "airflow", "db", "init", network="host", env=env)
        assert init.returncode == 0, init.stderr[-3000:]
        volumes = {str(Path(__file__).with_name("dags_ha")): "/usr/local/airflow/dags:ro",
                   str(ledger): "/ledger"}
        common = dict(network="host", env=env, volumes=volumes)
        with container(img, "celery", "worker", name="runtime-ha-worker", **common), \
                container(img, "scheduler", name="runtime-ha-scheduler-a", **common) as a, \
                container(img, "scheduler", name="runtime-ha-scheduler-b", **common) as b:
            wait_until(lambda: runs_by_state(pg, database).get("success", 0) >= 2, 480,
                       "two DAG runs finishing")
            schedulers = pg.psql("SELECT count(*) FROM job WHERE job_type = 'SchedulerJob' "
                                 "AND state = 'running'", database)
            assert schedulers == [["2"]], "both schedulers should be running"
            before_kill = runs_by_state(pg, database)
            subprocess.run(["docker", "kill", "--signal", "KILL", a], check=True,
                           capture_output=True)
            assert before_kill.get("success", 0) < RUNS, "killed too late to prove anything"
            wait_until(lambda: runs_by_state(pg, database) == {"success": RUNS}, 600,
                       f"all {RUNS} DAG runs succeeding after the kill")
            assert running(b), logs(b)[-3000:]
        instances = pg.psql("SELECT task_id, state, try_number FROM task_instance "
                            f"WHERE dag_id = '{DAG_ID}'", database)
        assert len(instances) == RUNS * len(TASKS)
        assert {(state, tries) for _, state, tries in instances} == {("success", "1")}, instances
        lines = (ledger / "runs.txt").read_text().splitlines()
        counts = collections.Counter(" ".join(line.split()[:2]) for line in lines)
        assert len(counts) == RUNS * len(TASKS), sorted(counts)
        assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]
    finally:
        shutil.rmtree(ledger, ignore_errors=True)
