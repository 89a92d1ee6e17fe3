"""The DAG of the high-availability check: ten daily runs (catch-up), two tasks each; every
task appends one line `<run id> <task id> <try>` to a file on a shared volume, so a task that
ran twice shows up as a repeated line."""

from datetime import datetime

from airflow import DAG
from airflow.operators.bash import BashOperator

LEDGER = "/ledger/runs.txt"

with DAG("runtime_ha", start_date=datetime(2022, 1, 1), end_date=datetime(2022, 1, 10),
         schedule_interval="@daily", catchup=True, is_paused_upon_creation=False,
         max_active_runs=4, tags=["runtime-tests"]) as dag:
    first, second = (BashOperator(
        task_id=task_id,
        bash_command=f"sleep 2; echo \"{{{{ run_id }}}} {task_id} {{{{ ti.try_number }}}}\" "
                     f">> {LEDGER}") for task_id in ("first", "second"))
    first >> second
