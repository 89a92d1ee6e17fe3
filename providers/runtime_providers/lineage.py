"""OpenLineage in the Runtime images, whatever openlineage-airflow a line locks.

Airflow 2.1/2.2 (openlineage-airflow 0.2.x, 0.5.x): Airflow's lineage backend hook, which the
entrypoint points at `OpenLineageBackend` below when OPENLINEAGE_URL is set (and the user chose
no backend). It runs in the task process when the task succeeds and sends START and COMPLETE.
- 0.5.x has a backend (`openlineage.lineage_backend`): used as it is, with its client bounded.
- 0.2.x has none (only a DAG subclass made for Airflow 1.10, which Airflow 2's scheduler never
  calls): the same two events are built here from 0.2.x's own adapter and extractors.
Upstream's client raises on any HTTP error and waits 10 s per request, which Airflow does not
catch: a receiver that is down fails every task, a hanging one fails it after 10 s (measured on
4.1). Here sending never
raises, and all the events of one task get RUNTIME_LINEAGE_TIMEOUT seconds together (default 2):
each request runs in a daemon thread joined with what is left of that budget; when it is spent,
the task's remaining events are dropped with a warning.

Airflow 2.3 (openlineage-airflow 0.8.x): openlineage's own plugin registers a listener, which
emits from threads it joins for at most 2 s each; see plugin.py for when it is off."""

import logging
import os
import threading
import time
import uuid

from airflow.lineage.backend import LineageBackend

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT = 2.0


def configured() -> bool:
    """An OpenLineage endpoint given by environment (what openlineage-airflow reads)."""
    return bool(os.environ.get("OPENLINEAGE_URL") or os.environ.get("MARQUEZ_URL"))


def budget() -> float:
    value = os.environ.get("RUNTIME_LINEAGE_TIMEOUT", "")
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 3600:
        log.warning("RUNTIME_LINEAGE_TIMEOUT=%r is not a number of seconds: %g used",
                    value, DEFAULT_TIMEOUT)
        return DEFAULT_TIMEOUT
    return seconds


class BoundedClient:
    """Stands for the adapter's OpenLineageClient during one task: emit() never raises and
    all emits together take at most `seconds`."""

    def __init__(self, client, seconds: float, what: str):
        self.client, self.seconds, self.what = client, seconds, what
        self.deadline = time.monotonic() + seconds
        self.gave_up = False

    def emit(self, event):
        kind = getattr(event.eventType, "value", event.eventType)
        remaining = self.deadline - time.monotonic()
        if self.gave_up or remaining <= 0:
            self._give_up(kind)
            return None
        options = getattr(self.client, "options", None)
        if options is not None and hasattr(options, "timeout"):
            options.timeout = remaining  # the request's own timeout, too
        failed = []

        def send():
            try:
                self.client.emit(event)
            except Exception as error:  # any: a lineage receiver never fails a task
                failed.append(error)

        thread = threading.Thread(target=send, name="runtime-openlineage", daemon=True)
        thread.start()
        thread.join(remaining)
        if thread.is_alive():
            self._give_up(kind)
        elif failed:
            log.warning("OpenLineage: %s event of %s not sent to %s: %s", kind, self.what,
                        _url(self.client), failed[0])
        return None

    def _give_up(self, kind):
        if not self.gave_up:
            log.warning("OpenLineage: %s did not answer within %g s (RUNTIME_LINEAGE_TIMEOUT): "
                        "%s event of %s and any later one dropped", _url(self.client),
                        self.seconds, kind, self.what)
        self.gave_up = True


def _url(client) -> str:
    return str(getattr(client, "url", None) or getattr(getattr(client, "transport", None),
                                                        "url", "the OpenLineage endpoint"))


class OpenLineageBackend(LineageBackend):
    """Airflow's lineage backend ([lineage] backend), for Airflow 2.1 and 2.2."""

    _upstream = None  # openlineage's Backend (0.5.x), made on first use
    _adapter = None   # 0.2.x: openlineage's adapter

    def send_lineage(self, operator=None, inlets=None, outlets=None, context=None):
        if not configured():
            return
        what = f"{context['dag'].dag_id}.{operator.task_id}" if context and operator else "?"
        try:
            try:
                from openlineage.lineage_backend import Backend
            except ImportError:  # openlineage-airflow 0.2.x
                Backend = None
            cls = type(self)
            if Backend is not None:
                if cls._upstream is None:
                    cls._upstream = Backend()
                self._bound(cls._upstream.adapter, what)
                cls._upstream.send_lineage(operator=operator, inlets=inlets, outlets=outlets,
                                           context=context)
            else:
                if cls._adapter is None:
                    from openlineage.airflow.adapter import OpenLineageAdapter
                    _connections_v02()
                    cls._adapter = OpenLineageAdapter()
                self._bound(cls._adapter, what)
                _send_v02(cls._adapter, operator, context)
        except Exception as error:
            log.warning("OpenLineage: lineage of %s not sent: %s", what, error)

    @staticmethod
    def _bound(adapter, what):
        """The adapter's client (made once, as openlineage makes it) behind a fresh budget."""
        real = type(adapter).get_or_create_openlineage_client(adapter)
        bounded = BoundedClient(real, budget(), what)
        adapter.get_or_create_openlineage_client = lambda: bounded


def _send_v02(adapter, operator, context):
    """START and COMPLETE of a task that succeeded, as openlineage 0.5's backend sends them,
    with openlineage-airflow 0.2.x's adapter and extractors."""
    from airflow.utils import timezone
    from openlineage.airflow.utils import DagUtils, get_custom_facets, get_location

    dag, dagrun, ti = context["dag"], context["dag_run"], context["task_instance"]
    job_name = f"{dag.dag_id}.{operator.task_id}"
    step = _extract_v02(operator, ti, job_name)
    run_id = str(uuid.uuid4())
    try:
        location = get_location(getattr(operator, "file_path", None) or dag.fileloc)
    except Exception:
        location = None
    adapter.start_task(
        run_id, job_name, dag.description, DagUtils.to_iso_8601(ti.start_date), dagrun.run_id,
        location, DagUtils.get_start_time(dagrun.execution_date),
        DagUtils.to_iso_8601(ti.end_date), step,
        {**step.run_facets, **get_custom_facets(operator, dagrun.external_trigger)})
    adapter.complete_task(run_id, job_name, DagUtils.to_iso_8601(timezone.utcnow()), step)


def _connections_v02():
    """openlineage-airflow 0.2.x's extractors read an AIRFLOW_CONN_* connection with
    Connection().parse_from_uri(uri), which Airflow 2 refuses (its uri argument is keyword
    only), and know no secrets backend: they get Airflow's own lookup instead, which reads
    variables, secrets backends and the metadata database as every hook does."""
    import sys

    from airflow.hooks.base import BaseHook
    from openlineage.airflow import utils
    import openlineage.airflow.extractors.extractors  # noqa: F401 (imports every extractor)

    upstream = utils.get_connection

    def get_connection(conn_id, session=None):
        return BaseHook.get_connection(conn_id)

    for name, module in list(sys.modules.items()):
        if name.startswith("openlineage.airflow.") and \
                getattr(module, "get_connection", None) is upstream:
            module.get_connection = get_connection


def _extract_v02(operator, ti, job_name):
    from openlineage.airflow.extractors.base import StepMetadata
    from openlineage.airflow.extractors.extractors import Extractors

    extractor_class = Extractors().get_extractor_class(type(operator))
    if extractor_class is not None:
        try:
            extractor = extractor_class(operator)
            step = extractor.extract_on_complete(ti) or extractor.extract()
            if isinstance(step, list):
                step = step[0] if step else None
            if isinstance(step, StepMetadata):
                return step
        except Exception as error:
            log.warning("OpenLineage: no input/output datasets for %s: %s", job_name, error)
    return StepMetadata(name=job_name)
