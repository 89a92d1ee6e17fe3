"""The DAG of the triggerer checks: two deferrable sensors that need no outside service.
Airflow's own TimeDeltaSensorAsync (a DateTimeTrigger RUNTIME_TEST_WAIT seconds after the run's
logical date) and astronomer-providers' HttpSensorAsync (an HttpTrigger polling
`http_default`/ready, a server of the test's on 127.0.0.1, until it stops answering 404).
Triggered by hand (no schedule), so the wait starts when the test says. Each sensor appends a
line to RUNTIME_TEST_RESUMES/<task> when it resumes after its trigger fired: the test counts
them (a task that ran twice would show two)."""

import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.sensors.time_delta import TimeDeltaSensorAsync
from astronomer.providers.http.sensors.http import HttpSensorAsync


def _resumed(task_id):
    folder = os.environ.get("RUNTIME_TEST_RESUMES")
    if folder:
        with open(os.path.join(folder, task_id), "a") as f:
            f.write("resumed\n")


class CountedTimeDeltaSensorAsync(TimeDeltaSensorAsync):
    def execute_complete(self, context, event=None):
        _resumed(self.task_id)
        return super().execute_complete(context, event)


class CountedHttpSensorAsync(HttpSensorAsync):
    def execute_complete(self, context, event=None):
        _resumed(self.task_id)
        return super().execute_complete(context, event)


with DAG("runtime_deferrable", start_date=datetime(2022, 1, 1), schedule_interval=None,
         is_paused_upon_creation=False, catchup=False, tags=["runtime-tests"]) as dag:
    CountedTimeDeltaSensorAsync(
        task_id="wait_time",
        delta=timedelta(seconds=int(os.environ.get("RUNTIME_TEST_WAIT", "60"))))
    CountedHttpSensorAsync(task_id="wait_http", http_conn_id="http_default", endpoint="ready")
