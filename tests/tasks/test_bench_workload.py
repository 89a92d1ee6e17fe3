"""The pure parts of the workload benchmark (tools/bench_workload.py, `./dev bench --workload`):
the p95, the cgroup OOM counters, the scheduler's loop lines and the markdown table. The bench
itself needs a Docker engine and is not part of the test run."""

import datetime
import importlib.util
import sys

from tests.fixtures import REPO

spec = importlib.util.spec_from_file_location("bench_workload",
                                              REPO / "tools" / "bench_workload.py")
bench = sys.modules["bench_workload"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_p95_is_the_nearest_rank():
    assert bench.p95([]) is None
    assert bench.p95([0.5]) == 0.5
    assert bench.p95([float(i) for i in range(1, 101)]) == 95.0
    assert bench.p95([3.0, 1.0, 2.0]) == 3.0


def test_oom_kills_from_cgroup_v2_then_v1():
    events = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n"
    assert bench.oom_kills(events) == 2
    v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n"
    assert bench.oom_kills(None, v1) == 5
    assert bench.oom_kills(None, "oom_kill_disable 0\nunder_oom 0\n") is None
    assert bench.oom_kills(None, None) is None


def test_loop_durations_within_the_run():
    log = ("[2026-12-03 10:18:25,176] {scheduler_job.py:747} DEBUG - Ran scheduling loop in "
           "0.05 seconds\n"
           "[\x1b[34m2026-12-03 10:18:30,001\x1b[0m] {\x1b[34mscheduler_job.py:\x1b[0m747} DEBUG"
           "\x1b[0m - Ran scheduling loop in 1.25 seconds\x1b[0m\n"
           "[2026-12-03 10:18:31,500] {scheduler_job.py:760} INFO - something else\n"
           "[2026-12-03 10:19:40,000] {scheduler_job.py:747} DEBUG - Ran scheduling loop in "
           "0.50 seconds\n")
    assert bench.loop_durations(log) == [0.05, 1.25, 0.5]
    start = datetime.datetime(2026, 12, 3, 10, 18, 29, 900000)
    end = datetime.datetime(2026, 12, 3, 10, 19, 0)
    assert bench.loop_durations(log, start, end) == [1.25]


def test_slots_of_the_parallelism_column():
    assert bench.slots("32 (16 per DAG)") == 16
    assert bench.slots("4") == 4
    assert bench.slots(None) is None


def test_table_rows():
    ok = bench.Cell("LocalExecutor", 1, "2g", "Runtime", "4", makespan=61.04, succeeded=100,
                    oom_kills=0, peak_mib=812.4, loop_p95=0.123, load="1.52")
    bad = bench.Cell("CeleryExecutor", 0.5, "1g", "Airflow", "16", makespan=300, succeeded=80,
                     failed=5, unfinished=15, oom_killed=True, oom_kills=7, peak_mib=1024)
    lines = bench.table([ok, bad]).splitlines()
    assert lines[0].startswith("| executor | limits | defaults | parallelism | makespan |")
    assert lines[2] == ("| Local | 1 CPU / 2 GiB | Runtime | 4 | 61.0 s | 0 / 0 | 0 | 812 MiB | "
                        "0.12 s | 1.52 |")
    assert lines[3] == ("| Celery | 0.5 CPU / 1 GiB | Airflow | 16 | > 300 s (timeout) | 5 / 15 | "
                        "7 (container OOMKilled) | 1024 MiB | – |  |")
