"""The task log handler: Airflow's local file, shipped to the remote store through the spool.

Writing is Airflow's own FileTaskHandler (same file, same format). In the supervising task
process (not the raw one) a shipper sends new complete lines every RUNTIME_LOG_SHIP_INTERVAL
seconds (default 5) and the whole log when the try ends, waiting for the store at most
RUNTIME_LOG_FINISH_TIMEOUT seconds (default 4: a store call is one request, and a hung store
delays the try's exit by about this much; what the store has not taken by then waits in the
spool); every other process with this handler (scheduler, workers, webserver) also ships
leftovers of dead shippers found in the spool, and logs whose try started on a full disk.
Reading (the webserver): the store's whole log, else the local file, else what the store has of
a running try, else Airflow's own way (the worker's log server). RuntimeJsonTaskHandler (picked
when RUNTIME_LOG_STDOUT_JSON=true) also prints each record to stdout as one JSON line
(Elasticsearch-style: message, level, dag_id, task_id, execution_date, try_number, offset).
"""

import json
import logging
import os
import sys

from airflow.utils.log.file_task_handler import FileTaskHandler

from runtime_logging.spool import Entry, Recovery, Shipper, report, warn
from runtime_logging.store import S3Store, StoreConfig

log = logging.getLogger(__name__)


class RuntimeTaskHandler(FileTaskHandler):
    def __init__(self, base_log_folder, filename_template, spool_folder=None):
        super().__init__(base_log_folder, filename_template)
        self.spool_folder = spool_folder or os.path.join(base_log_folder, ".runtime-spool")
        self.interval = float(os.environ.get("RUNTIME_LOG_SHIP_INTERVAL", "5"))
        self.finish_timeout = float(os.environ.get("RUNTIME_LOG_FINISH_TIMEOUT", "4"))
        config = StoreConfig.from_env()
        self.store = S3Store(config) if config else None
        self._shipper = None
        self._labels = None
        if self.store is not None:
            Recovery(self.spool_folder, self.store,
                     float(os.environ.get("RUNTIME_LOG_RECOVERY_INTERVAL", "10")),
                     logs=self.local_base).start()

    def set_context(self, ti):
        super().set_context(ti)
        rel = self._render_filename(ti, ti.try_number)
        self._labels = {"dag_id": ti.dag_id, "task_id": ti.task_id,
                        "execution_date": str(ti.execution_date), "try_number": ti.try_number}
        if getattr(ti, "raw", False):
            Recovery.stop_here()  # the task's own process: its supervisor does the shipping
        elif self.store is not None:
            entry = Entry(self.spool_folder, rel, os.path.join(self.local_base, rel))
            try:
                self._shipper = Shipper(entry, self.store, self.interval,
                                        self.finish_timeout).start()
            except Exception as e:  # noqa: BLE001 - never stop a task for its log shipping
                report(f"task log shipping is off for {rel}: {e}")

    def close(self):
        super().close()
        if self._shipper is not None:
            shipper, self._shipper = self._shipper, None
            try:
                shipper.finish()
            except Exception as e:  # noqa: BLE001 - the spool keeps it for the next scan
                warn("task log not shipped at the end: %s", e)

    def _read(self, ti, try_number, metadata=None):
        rel = self._render_filename(ti, try_number)
        remote, complete = None, False
        if self.store is not None:
            try:
                remote, complete = self.store.read(rel)
            except Exception as e:  # noqa: BLE001 - the store is down: read locally
                log.debug("log store unreachable: %s", e)
        if complete:
            return f"*** Reading remote log {self.store.key(rel)}\n" + \
                remote.decode("utf-8", "replace"), {"end_of_log": True}
        local = os.path.join(self.local_base, rel)
        if os.path.exists(local) or remote is None:
            return super()._read(ti, try_number, metadata)
        # (all of it so far, once: the page is reloaded for more, as for local files)
        return (f"*** Reading the running try's log from {self.store.key(rel)} (so far)\n"
                + remote.decode("utf-8", "replace"), {"end_of_log": True})


class RuntimeJsonTaskHandler(RuntimeTaskHandler):
    """The same, and each record also as one JSON line on the real stdout (the configuration
    picks this class when RUNTIME_LOG_STDOUT_JSON=true; the plain class keeps Airflow's emit,
    with no extra call per record)."""

    def emit(self, record):
        super().emit(record)
        if self._labels is not None:
            doc = dict(self._labels, message=record.getMessage(), level=record.levelname,
                       offset=int(record.created * 1e9))
            # the real stdout: Airflow points sys.stdout at the task logger, which would loop
            sys.__stdout__.write(json.dumps(doc) + "\n")
