"""The DAGs the logging checks run, paused until a check unpauses one: a task printing
numbered lines (how many, how fast), which also reports what boto3 sees by default and then
changes its own AWS settings, which must not move the task's logs."""

import os
import time
from datetime import datetime

from airflow import DAG
from airflow.operators.python import PythonOperator

# dag_id -> (lines, seconds between lines)
SCENARIOS = {"runtime_logs_outage": (3000, 0.001), "runtime_logs_running": (600, 0.05),
             "runtime_logs_kill": (1500, 0.05), "runtime_logs_full_disk": (400, 0.05),
             "runtime_logs_hung_store": (70, 0.1)}


def write_lines(lines, pause):
    import boto3.session

    creds = boto3.session.Session().get_credentials()
    print(f"task-default-credentials: {None if creds is None else creds.access_key}")
    os.environ.update(AWS_ACCESS_KEY_ID="task-own-key", AWS_SECRET_ACCESS_KEY="task-own-secret",
                      AWS_DEFAULT_REGION="eu-west-3", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    for i in range(1, lines + 1):
        print(f"runtime-log-line {i:06d} of {lines:06d}", flush=True)
        if pause:
            time.sleep(pause)


# (each its own date, so run ids differ: Airflow 2.2.0's log API finds a task instance by task
# and run id alone, and fails when two DAGs share both)
for day, (dag_id, (lines, pause)) in enumerate(SCENARIOS.items(), start=1):
    with DAG(dag_id, start_date=datetime(2022, 1, day), schedule_interval="@once",
             is_paused_upon_creation=True, catchup=False, tags=["runtime-tests"]) as dag:
        PythonOperator(task_id="write_lines", python_callable=write_lines,
                       op_args=[lines, pause])
    globals()[dag_id] = dag
