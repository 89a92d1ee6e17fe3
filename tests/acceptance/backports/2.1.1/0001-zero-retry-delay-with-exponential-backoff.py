"""Check for apache/airflow#17003 (issue #17005), fixed in Airflow 2.2.0.

With retry_exponential_backoff=True and retry_delay=timedelta(0),
TaskInstance.next_retry_datetime() divides by zero (min_backoff == 0), which
crashes the scheduler when the task fails and is up for retry.
No metadata DB is touched. Exit 1 = bug present, 0 = fixed.
"""
import os
import sys
import tempfile
from datetime import datetime, timedelta

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow_home_"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow.models import DAG, TaskInstance  # noqa: E402
from airflow.operators.dummy import DummyOperator  # noqa: E402
from airflow.utils import timezone  # noqa: E402
from airflow.utils.state import State  # noqa: E402

dag = DAG("check_17003", start_date=datetime(2021, 1, 1), schedule_interval=None)
task = DummyOperator(
    task_id="zero_delay_backoff",
    dag=dag,
    retries=3,
    retry_delay=timedelta(seconds=0),
    retry_exponential_backoff=True,
)
ti = TaskInstance(task, execution_date=timezone.datetime(2021, 1, 1))
ti.state = State.UP_FOR_RETRY
ti.try_number = 1  # the first try has run and failed
ti.end_date = timezone.utcnow()

try:
    next_retry = ti.next_retry_datetime()
except ZeroDivisionError as e:
    print(f"BUG: next_retry_datetime() raised ZeroDivisionError: {e} (apache/airflow#17005)")
    sys.exit(1)

if next_retry < ti.end_date:
    print(f"BUG: next retry {next_retry} is before end_date {ti.end_date}")
    sys.exit(1)
print(f"OK: next_retry_datetime() = {next_retry} (end_date {ti.end_date})")
sys.exit(0)
