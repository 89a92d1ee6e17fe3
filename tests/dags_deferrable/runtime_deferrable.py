"""The DAG of the triggerer checks: two deferrable sensors that need no outside service.
Airflow's own TimeDeltaSensorAsync (a DateTimeTrigger RUNTIME_TEST_WAIT seconds after the run's
logical date) and astronomer-providers' HttpSensorAsync (an HttpTrigger polling
`http_default`/ready, a server of the test's on 127.0.0.1, until it stops answering 404).
Triggered by hand (no schedule), so the wait starts when the test says."""

import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.sensors.time_delta import TimeDeltaSensorAsync
from astronomer.providers.http.sensors.http import HttpSensorAsync

with DAG("runtime_deferrable", start_date=datetime(2022, 1, 1), schedule_interval=None,
         is_paused_upon_creation=False, catchup=False, tags=["runtime-tests"]) as dag:
    TimeDeltaSensorAsync(task_id="wait_time",
                         delta=timedelta(seconds=int(os.environ.get("RUNTIME_TEST_WAIT", "60"))))
    HttpSensorAsync(task_id="wait_http", http_conn_id="http_default", endpoint="ready")
