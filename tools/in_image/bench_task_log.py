"""Run inside a Runtime image by python3.9 (tools/bench_logging.py does): one task try writing
N log lines through Airflow's FileTaskHandler, then through the Runtime's handler shipping to
the store (RUNTIME_LOG_S3_* in the environment); alternating, R rounds. As in Airflow, the
supervising process sets up its handler (raw=False: the Runtime's ships from there) and forks
the task process (raw=True), which writes. Prints JSON: (seconds until the task process has
written and exited, seconds until the supervisor's handler is closed) per try."""

import json
import logging
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from types import SimpleNamespace

from airflow.utils.log.file_task_handler import FileTaskHandler

from runtime_logging.handler import RuntimeTaskHandler

TEMPLATE = "{dag_id}/{task_id}/{execution_date}/{try_number}.log"
FORMAT = "[%(asctime)s] {%(filename)s:%(lineno)d} %(levelname)s - %(message)s"


def task_instance(name, raw):
    when = datetime(2022, 1, 1, tzinfo=timezone.utc)
    run = SimpleNamespace(logical_date=when, execution_date=when, data_interval_start=None,
                          data_interval_end=None)
    return SimpleNamespace(dag_id="bench", task_id=name, try_number=1, raw=raw, map_index=-1,
                           execution_date=when, run_id="bench", get_dagrun=lambda: run)


def handler_for(cls, base, name, raw):
    handler = cls(base, TEMPLATE)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.set_context(task_instance(name, raw))
    return handler


def one_try(cls, base, lines, n):
    name = f"{cls.__name__}_{n}"
    supervisor = handler_for(cls, base, name, raw=False)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the task process
        logger = logging.getLogger(f"bench.{name}")
        logger.propagate, logger.level = False, logging.INFO
        handler = handler_for(cls, base, name, raw=True)
        logger.addHandler(handler)
        for i in range(lines):
            logger.info("runtime-log-line %06d of %06d: the quick brown fox jumps", i, lines)
        handler.close()
        os._exit(0)
    os.waitpid(pid, 0)
    written = time.perf_counter() - start
    supervisor.close()
    return written, time.perf_counter() - start


def main():
    lines, rounds = int(sys.argv[1]), int(sys.argv[2])
    base = tempfile.mkdtemp(prefix="bench-logs-")
    out = {"FileTaskHandler": [], "RuntimeTaskHandler": []}
    for n in range(rounds):
        for cls in (FileTaskHandler, RuntimeTaskHandler):
            out[cls.__name__].append(one_try(cls, base, lines, n))
    spool = os.path.join(base, ".runtime-spool")
    out["spool_left"] = len([f for f in os.listdir(spool) if f.endswith(".json")]) \
        if os.path.isdir(spool) else 0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
