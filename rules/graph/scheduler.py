"""The one scheduler: runs an action graph against the action cache.

From the actions a build wants, it walks down the graph: an action whose record is in the cache
is a hit and its inputs are not needed (a rebuild with every layer cached never makes the Debian
root); the others run, each once its deps are done, the largest first. Two lanes of threads run
them, as a cold build measured fastest on two cores: one lane for the ``urgent`` chain (the
Debian root and the base layer: mmdebstrap alone is about 16 s), at the normal priority, and
``LANE`` threads for everything else, lowered to ``YIELDING_NICE`` while that chain runs. Actions
marked ``in_worker`` (unpacking, stripping, tar and gzip: Python code that in threads of one
process contends for the GIL) call ``ctx.worker`` to run in the pool of rules.graph.workers.

The first failure stops the build: queued actions are dropped, the workers killed, the error
raised (an action already running in a thread ends by itself).

With a remote cache (rules.graph.remote), an action missing from the local cache is looked up
there by key while planning: a remote hit is a hit like a local one (its deps are not
needed), whose blobs are downloaded only if an action that runs reads them (``Record.blob``).
If such a blob turns out unusable (its bytes do not match its digest), the action that made it
runs locally then and there, and the action that needed it goes on. After an action runs, its
record is stored in the remote cache; local hits it lacks are uploaded too. ``prepare(action)``
is called before an action runs (the image build checks, and fetches if missing, the locked
files that action reads).
"""

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rules.graph import action_cache, workers
from rules.graph.action import Action
from rules.graph.action_cache import Record, RemoteBlobError

if TYPE_CHECKING:  # (the registry client's import costs 0.2 s: only builds with a remote pay it)
    from rules.graph.remote import RemoteCache

LANE = 2  # threads (and worker processes) for the non-urgent actions
YIELDING_NICE = 10


@dataclass
class Context:
    """What a running action gets: its deps' records, the cache, and the worker pool."""

    records: dict[str, Record]  # by action key
    cache: Path
    worker: Callable  # worker(fn, *args): fn(*args) in a worker process

    def dep(self, action: Action) -> Record:
        return self.records[action.key]


@dataclass
class Outcome:
    action: Action
    record: Record
    hit: bool
    seconds: float

    @property
    def remote(self) -> bool:
        """A hit of the remote cache (its blobs may not be here)."""
        return self.record.remote is not None


def plan(wanted: list[Action], cache: Path, remote: "RemoteCache | None" = None
         ) -> tuple[dict[Action, Record], list[Action]]:
    """(hits, to run): the actions that must run to get ``wanted``, deps before dependents,
    each key once (two Action objects of one key are one action). A hit is a local record,
    else a remote one."""
    hits: dict[Action, Record] = {}
    order: list[Action] = []
    seen: set[str] = set()

    def visit(action: Action) -> None:
        if action.key in seen:
            return
        seen.add(action.key)
        record = action_cache.get(cache, action.key)
        if record is None and remote is not None:
            record = remote.lookup(action)
        if record is not None:
            hits[action] = record
            return
        for dep in action.deps:
            visit(dep)
        order.append(action)

    for action in wanted:
        visit(action)
    return hits, order


def run(wanted: list[Action], cache: Path, advance: Callable[[int], None] = lambda n: None,
        remote: "RemoteCache | None" = None, prepare: Callable[[Action], None] | None = None
        ) -> dict[Action, Outcome]:
    """Outcomes of the actions the build touched (hits and runs), for every Action object
    reachable from ``wanted`` whose key was needed."""
    hits, to_run = plan(wanted, cache, remote)
    if remote is not None:
        remote.backfill(list(hits.values()), cache)
    by_key: dict[str, Outcome] = {a.key: Outcome(a, r, True, 0.0) for a, r in hits.items()}
    wanted_keys = {a.key for a in wanted}
    advance(len(wanted_keys & by_key.keys()))
    if to_run:
        _run_all(to_run, cache, by_key, wanted_keys, advance, remote, prepare)
    outcomes: dict[Action, Outcome] = {}

    def collect(action: Action) -> None:
        if action in outcomes or action.key not in by_key:
            return
        outcomes[action] = by_key[action.key]
        for dep in action.deps:
            collect(dep)
    for action in wanted:
        collect(action)
    return outcomes


def _run_all(to_run: list[Action], cache: Path, by_key: dict[str, Outcome],
             wanted_keys: set[str], advance, remote: "RemoteCache | None" = None,
             prepare: Callable[[Action], None] | None = None) -> None:
    yielding = any(a.urgent for a in to_run)
    records: dict[str, Record] = {k: o.record for k, o in by_key.items()}
    lock = threading.Lock()
    pools: list[workers.Pool] = []  # started on the first call: most runs need none

    def in_worker(fn, *args):
        with lock:
            if not pools:
                pools.append(workers.Pool(LANE, YIELDING_NICE if yielding else 0))
        return pools[0].call(fn, *args)

    def execute(action: Action) -> Outcome:
        started = time.monotonic()
        record = action_cache.get(cache, action.key)  # another build may have made it
        hit = record is not None
        if record is None:
            with lock:
                deps = {d.key: records[d.key] for d in action.deps}
            if prepare is not None:
                prepare(action)
            ctx = Context(deps, cache, in_worker)
            while True:
                try:
                    made = action.run(ctx)
                    break
                except RemoteBlobError as e:  # a dep's remote output is unusable: make it here
                    dep = next((d for d in action.deps if d.key == e.key), None)
                    if dep is None:
                        raise
                    redone = run([dep], cache, remote=remote, prepare=prepare)[dep].record
                    ctx.records[dep.key] = redone
                    with lock:
                        records[dep.key] = redone
            record = action_cache.put(cache, action, made)
            if remote is not None:
                remote.store(record, cache)
        with lock:
            records[action.key] = record
        if action.key in wanted_keys:
            advance(1)
        return Outcome(action, record, hit, time.monotonic() - started)

    def lower_priority() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), YIELDING_NICE)

    pending = list(to_run)
    running: dict[Future, Action] = {}
    with ThreadPoolExecutor(1) as urgent_lane, \
            ThreadPoolExecutor(LANE, initializer=lower_priority if yielding else None) as lane:
        try:
            while pending or running:
                with lock:
                    done = set(records)
                ready = [a for a in pending if all(d.key in done for d in a.deps)]
                ready.sort(key=lambda a: (not a.urgent, -a.weight))
                for action in ready:
                    pending.remove(action)
                    executor = urgent_lane if action.urgent else lane
                    running[executor.submit(execute, action)] = action
                if not running:
                    raise RuntimeError("action graph has a cycle or a missing dep")
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    running.pop(future)
                    outcome = future.result()  # the first failure is raised here
                    by_key[outcome.action.key] = outcome
        except BaseException:
            for future in running:
                future.cancel()
            lane.shutdown(wait=False, cancel_futures=True)
            urgent_lane.shutdown(wait=False, cancel_futures=True)
            for pool in pools:
                pool.kill()
            raise
        finally:
            for pool in pools:
                pool.close()
