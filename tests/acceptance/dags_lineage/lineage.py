"""The lineage acceptance test's DAGs: one per scenario (receiver up, down, hanging, no
OPENLINEAGE_URL), the same two tasks each. copy_rows reads lineage_source and writes
lineage_target on the test's PostgreSQL (connection lineage_pg, from AIRFLOW_CONN_LINEAGE_PG);
say_done is a BashOperator after it."""

from datetime import datetime

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.providers.postgres.operators.postgres import PostgresOperator

for scenario in ("up", "down", "hang", "off"):
    with DAG(f"lineage_{scenario}", start_date=datetime(2022, 1, 1), schedule_interval="@daily",
             catchup=False, description=f"lineage acceptance: receiver {scenario}") as dag:
        copy = PostgresOperator(
            task_id="copy_rows", postgres_conn_id="lineage_pg",
            sql="INSERT INTO lineage_target (id, name) SELECT id, name FROM lineage_source")
        copy >> BashOperator(task_id="say_done", bash_command="echo done")
    globals()[dag.dag_id] = dag
