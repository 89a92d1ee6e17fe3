"""Check for apache/airflow#23339 (issue #23315), fixed in Airflow 2.3.1.

`airflow dags show` (airflow.utils.dot_renderer.render_dag) crashes with
"The node ... should be TaskGroup and is not" for any DAG containing a mapped
task (.expand()), because MappedOperator is not a BaseOperator subclass.
No metadata DB is touched. Exit 1 = bug present, 0 = fixed.
"""
import os
import sys
import tempfile
from datetime import datetime

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow_home_"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow import DAG  # noqa: E402
from airflow.exceptions import AirflowException  # noqa: E402
from airflow.operators.bash import BashOperator  # noqa: E402
from airflow.utils.dot_renderer import render_dag  # noqa: E402

with DAG(dag_id="simple_mapped", start_date=datetime(1970, 1, 1), schedule_interval=None) as dag:
    BashOperator.partial(task_id="hello_world").expand(bash_command=["echo hello", "echo world"])

try:
    dot = render_dag(dag)
except AirflowException as e:
    print(f"BUG: render_dag() (airflow dags show) failed for a mapped task: {e}")
    sys.exit(1)

if "hello_world" not in dot.source:
    print(f"BUG: mapped task missing from rendered graph:\n{dot.source}")
    sys.exit(1)
print("OK: render_dag() rendered the mapped task:")
print(dot.source)
sys.exit(0)
