"""Check for apache/airflow#19418 (issue #19416), fixed in Airflow 2.2.2.

A DAG whose schedule_interval is a dateutil relativedelta is silently dropped
from the DagBag: DeltaDataIntervalTimetable.validate() calls
relativedelta.total_seconds(), which does not exist (AttributeError).
No metadata DB is touched. Exit 1 = bug present, 0 = fixed.
"""
import os
import sys
import tempfile
import textwrap

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow_home_"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from dateutil.relativedelta import relativedelta  # noqa: E402

from airflow.models.dagbag import DagBag  # noqa: E402
from airflow.timetables.interval import DeltaDataIntervalTimetable  # noqa: E402

failed = False

# 1. The timetable itself.
try:
    DeltaDataIntervalTimetable(relativedelta(months=1)).validate()
    print("OK: DeltaDataIntervalTimetable(relativedelta(months=1)).validate() passed")
except AttributeError as e:
    print("BUG: DeltaDataIntervalTimetable(relativedelta(months=1)).validate() raised "
          f"AttributeError: {e}")
    failed = True

# 2. What a user sees: the DAG file is parsed but the DAG never shows up.
dag_folder = tempfile.mkdtemp(prefix="dags_")
with open(os.path.join(dag_folder, "monthly_relativedelta.py"), "w") as f:
    f.write(
        textwrap.dedent(
            """
            from datetime import datetime
            from dateutil.relativedelta import relativedelta
            from airflow import DAG
            from airflow.operators.dummy import DummyOperator

            with DAG("monthly_relativedelta", start_date=datetime(2021, 1, 1),
                     schedule_interval=relativedelta(months=1)) as dag:
                DummyOperator(task_id="noop")
            """
        )
    )
dagbag = DagBag(dag_folder=dag_folder, include_examples=False)
if "monthly_relativedelta" in dagbag.dags:
    print("OK: DAG with relativedelta schedule_interval was loaded into the DagBag")
else:
    print("BUG: DAG with relativedelta schedule_interval missing from DagBag "
          f"(dags={list(dagbag.dags)}, import_errors={dagbag.import_errors})")
    failed = True

sys.exit(1 if failed else 0)
