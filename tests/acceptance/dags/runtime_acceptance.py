"""The DAG the executor checks run: one run (@once), unpaused at creation, four tasks in a
diamond; every task records where it ran in its XCom."""

import socket
from datetime import datetime

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.operators.python import PythonOperator


def transform(part):
    return {"part": part, "host": socket.gethostname()}


with DAG("runtime_acceptance", start_date=datetime(2022, 1, 1), schedule_interval="@once",
         is_paused_upon_creation=False, catchup=False, tags=["runtime-tests"]) as dag:
    extract = BashOperator(task_id="extract", bash_command="echo extract from $(hostname)")
    parts = [PythonOperator(task_id=f"transform_{part}", python_callable=transform,
                            op_args=[part]) for part in ("a", "b")]
    load = BashOperator(task_id="load", bash_command="echo loaded")
    extract >> parts >> load
