"""The workload DAG of `invoke bench --workload` (tools/bench_workload.py): independent tasks,
mostly short (sleep 1 s), some CPU-bound (pure Python, about 2 s of one core), a few
memory-heavy (about 300 MB written, held 2 s). Sizes come from the environment so every
container parsing the DAG (scheduler, Celery worker) sees the same one."""

import datetime
import os
import time

from airflow import DAG
from airflow.operators.python import PythonOperator

TASKS = int(os.environ.get("WORKLOAD_TASKS", "100"))
CPU_TASKS = int(os.environ.get("WORKLOAD_CPU_TASKS", str(TASKS * 15 // 100)))
MEMORY_TASKS = int(os.environ.get("WORKLOAD_MEMORY_TASKS", str(TASKS * 5 // 100)))
CPU_LOOPS = int(os.environ.get("WORKLOAD_CPU_LOOPS", "20000000"))
MEMORY_MB = int(os.environ.get("WORKLOAD_MEMORY_MB", "300"))


def short():
    time.sleep(1)


def cpu():
    total = 0
    for i in range(CPU_LOOPS):
        total += i * i
    return total % 7


def memory():
    block = b"\x01" * (MEMORY_MB << 20)  # written: resident, not a lazy zero mapping
    time.sleep(2)
    return len(block)


with DAG("runtime_workload", start_date=datetime.datetime(2022, 1, 1),
         schedule_interval="@once", catchup=True, max_active_runs=1,
         default_args={"retries": 0}) as dag:
    kinds = ["memory"] * MEMORY_TASKS + ["cpu"] * CPU_TASKS
    kinds += ["short"] * (TASKS - len(kinds))
    # spread the heavy tasks over the run instead of starting them all at once
    order = sorted(range(TASKS), key=lambda i: (i * 37) % TASKS)
    for n, i in enumerate(order):
        kind = kinds[i]
        PythonOperator(task_id=f"{kind}_{n:03d}", python_callable={"short": short, "cpu": cpu,
                                                                    "memory": memory}[kind])
