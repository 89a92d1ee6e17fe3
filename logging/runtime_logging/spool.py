"""The durable spool: which bytes of which local log file have reached the store.

One entry per task try, in the spool folder (on the same volume as the logs):
``<id>.json`` holds the local file, its store path, the offset shipped so far and whether the
try has ended; ``<id>.lock`` is flock'ed by the process shipping it. The bytes themselves are
the local log file, which Airflow writes anyway. The state is replaced atomically after every
upload that succeeded, so after any crash the next shipper starts from the last range that
reached the store (and re-sending a range writes the same object key again: no duplicates).

A shipper whose process died leaves its entry unlocked: any process with the handler scans the
spool every few seconds and ships such leftovers, in full once their try has ended or nobody
holds them any more.

A full disk: a try that starts while the spool's volume is full gets its ``<id>.lock`` (an empty
file needs no data block on tmpfs, nor usually on ext4) but no ``<id>.json``. Its shipper then
works from memory (the log reaches the store when the try ends, if the store takes it), says so
on the process's real stderr (in a task's process Airflow points sys.stderr at the task log,
which may be the very log that cannot be written), and an unlocked ``.lock`` without its
``.json`` is found by the recovery scan, which looks up the log by its id among the local logs
and ships it whole. A save that fails removes its temp file; temp files older than
TEMP_MAX_AGE (a process killed mid-save) are removed by the scan.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time

log = logging.getLogger(__name__)
CHUNK_LIMIT = 8 << 20  # bytes per chunk object at most
OWNED = set()  # entry ids this process holds the lock of
TEMP_MAX_AGE = 600  # seconds: an older <id>.json.<pid>-<tid>.tmp is a killed save's leftover


def entry_id(rel: str) -> str:
    return hashlib.sha256(rel.encode()).hexdigest()[:32]


def report(message: str) -> None:
    """A problem an operator must see, on the process's real stderr (not through logging: in a
    task's process the root logger writes to the task log, and on a full disk each failed write
    reports itself to sys.stderr, which Airflow points at that same logger: RecursionError)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.__stderr__.write(f"runtime_logging: {message}\n")
        sys.__stderr__.flush()


def warn(*args) -> None:
    """log.warning, which must not fail the caller (see report: a full disk)."""
    with contextlib.suppress(Exception):
        log.warning(*args)


class Entry:
    def __init__(self, folder: str, rel: str, local: str):
        self.id = entry_id(rel)
        self.folder, self.rel, self.local = folder, rel, local
        self.state_path = os.path.join(folder, f"{self.id}.json")
        self.lock_path = os.path.join(folder, f"{self.id}.lock")
        self.shipped, self.ended = 0, False
        # chunks of one shipping session (a run of the try on one worker) share a key prefix:
        # a rescheduled sensor's next run, elsewhere, does not overwrite this one's ranges
        self.session = f"{int(time.time() * 1000):013d}-{socket.gethostname()}-{os.getpid()}"
        self._lock_fd = None
        self._save_failed = False

    @classmethod
    def load(cls, state_path: str):
        with open(state_path, encoding="utf-8") as f:
            data = json.load(f)
        entry = cls(os.path.dirname(state_path), data["rel"], data["local"])
        entry.shipped, entry.ended = data["shipped"], data["ended"]
        entry.session = data.get("session", entry.session)
        return entry

    @classmethod
    def load_or_none(cls, state_path: str):
        try:
            return cls.load(state_path)
        except (OSError, ValueError):
            return None

    def try_lock(self) -> bool:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o664)
        try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._lock_fd = fd
        OWNED.add(self.id)
        return True

    def unlock(self):
        if self._lock_fd is not None:
            OWNED.discard(self.id)
            os.close(self._lock_fd)
            self._lock_fd = None

    def save(self):
        tmp = f"{self.state_path}.{os.getpid()}-{threading.get_ident()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"rel": self.rel, "local": self.local, "shipped": self.shipped,
                           "ended": self.ended, "session": self.session}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # (a full disk: the open succeeded, the write did not)
            raise

    def try_save(self) -> bool:
        """save, or (a full disk) report it once and carry on from memory."""
        try:
            self.save()
        except OSError as e:
            if not self._save_failed:
                report(f"task log {self.rel}: its spool entry could not be saved ({e}); it is "
                       f"shipped from memory, and by the recovery scan if this process ends "
                       f"before the store has it")
            self._save_failed = True
            return False
        self._save_failed = False
        return True

    def remove(self):
        for path in (self.state_path, self.lock_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def ship(self, store, whole: bool) -> bool:
        """Send what is new in the local file (complete lines only unless ``whole``); with
        ``whole``, then the whole file as the try's log. True when all of it is in the store."""
        try:
            size = os.path.getsize(self.local)
        except FileNotFoundError:
            size = self.shipped
        with open(self.local, "rb") if size > self.shipped else _Empty() as f:
            while self.shipped < size:
                f.seek(self.shipped)
                data = f.read(min(size - self.shipped, CHUNK_LIMIT))
                if not whole and len(data) < CHUNK_LIMIT:
                    data = data[:data.rfind(b"\n") + 1]  # complete lines while it runs
                if not data:
                    break
                store.put_chunk(self.rel, self.session, self.shipped, data)
                self.shipped += len(data)
                self.try_save()
        if whole:
            with open(self.local, "rb") as f:
                store.put_whole(self.rel, f.read())
            return True
        return False

    def local_gone(self) -> bool:
        return not os.path.exists(self.local)


class _Empty:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


class Shipper:
    """Ships one try's log from the supervising task process: chunks every ``interval`` while
    it runs, retried with exponential backoff; everything at ``finish``, which waits at most
    ``finish_timeout`` seconds in all (the try's exit waits for it): a store that does not take
    the log by then leaves it in the spool, for the recovery scan."""

    def __init__(self, entry: Entry, store, interval: float, finish_timeout: float):
        self.entry, self.store = entry, store
        self.interval, self.finish_timeout = interval, finish_timeout
        self.pid = os.getpid()  # a forked child (the raw task) inherits this object: not its job
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._started = False
        self._thread = threading.Thread(target=self._run, name="runtime-log-shipper",
                                        daemon=True)

    def start(self, wait: float = 20.0):
        try:
            os.makedirs(self.entry.folder, exist_ok=True)
            deadline = time.monotonic() + wait
            while not self.entry.try_lock():  # a recovery scan may hold it for a moment
                if time.monotonic() > deadline:
                    return self  # another live process of this try ships it
                time.sleep(0.2)
            if os.path.exists(self.entry.state_path):  # a leftover of this try: continue it
                old = Entry.load(self.entry.state_path)
                self.entry.shipped, self.entry.session = old.shipped, old.session
        except OSError as e:  # not even an empty file fits: nothing in the spool marks it
            report(f"task log {self.entry.rel}: no spool lock ({e}); it is shipped from memory "
                   f"only, and stays in the local file if the store does not take it when "
                   f"the try ends")
        self.entry.try_save()
        self._started = True
        self._thread.start()
        return self

    def _run(self):
        delay = self.interval
        while not self._stop.wait(delay):
            try:
                with self._mutex:
                    if self._stop.is_set():
                        return  # finish has it
                    self.entry.ship(self.store, whole=False)
                delay = self.interval
            except Exception as e:  # noqa: BLE001 - the store is down: back off, keep the spool
                delay = min(max(delay * 2, 1.0), 30.0)
                log.debug("log store unreachable (%s); retrying in %.0f s", e, delay)

    def finish(self):
        if not self._started or os.getpid() != self.pid:
            return
        self._started = False
        self._stop.set()
        self.entry.ended = True
        self.entry.try_save()  # (beside a running upload's save: either is a valid state)
        deadline = time.monotonic() + self.finish_timeout
        done = threading.Event()
        # in a thread of its own: the periodic upload may be stuck on a hung store, and so may
        # the final one; the try's exit waits for neither beyond the deadline (this process
        # ending releases the lock: the recovery scan of another process finishes the job)
        threading.Thread(target=self._final, args=(deadline, done), name="runtime-log-finish",
                         daemon=True).start()
        if not done.wait(max(deadline - time.monotonic(), 0)):
            warn("log store did not take the log within %g s: it stays in the spool and "
                        "is shipped when the store answers", self.finish_timeout)

    def _final(self, deadline: float, done: threading.Event):
        try:
            with self._mutex:  # after the periodic upload under way, if any
                delay = 0.5
                while True:
                    try:
                        self.entry.ship(self.store, whole=True)
                        self.entry.remove()
                        break
                    except Exception as e:  # noqa: BLE001 - left for the recovery scan
                        if time.monotonic() + delay > deadline:
                            if self.entry._lock_fd is None and self.entry._save_failed:
                                report(f"task log {self.entry.rel}: not shipped ({e}) and not "
                                       f"in the spool: it is only in the local file")
                            warn("log store unreachable (%s): the log stays in the spool "
                                        "and is shipped when it comes back", e)
                            break
                        time.sleep(delay)
                        delay = min(delay * 2, 5.0)
                self.entry.unlock()
        finally:
            done.set()


class Recovery:
    """Ships leftovers of dead shippers, every ``interval`` seconds, in a daemon thread (one
    per process and folder; ``stop_here`` ends it, as a raw task process does). ``logs``, the
    folder the logs' paths are relative to, is where the log of a lock without its entry (a
    full disk) is looked up."""

    _running = {}

    def __init__(self, folder: str, store, interval: float, logs: str | None = None):
        self.folder, self.store, self.interval = folder, store, interval
        self.logs = logs if logs is not None else os.path.dirname(self.folder.rstrip("/"))
        self._stop = threading.Event()

    def start(self):
        key = (os.getpid(), self.folder)
        if key not in Recovery._running:
            Recovery._running[key] = self
            threading.Thread(target=self._run, name="runtime-log-recovery", daemon=True).start()

    @staticmethod
    def stop_here():
        for (pid, _), recovery in list(Recovery._running.items()):
            if pid == os.getpid():
                recovery._stop.set()

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.scan()
            except Exception as e:  # noqa: BLE001
                log.debug("log recovery scan: %s", e)

    def scan(self) -> int:
        shipped = 0
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return 0
        self._remove_old_temp_files(names)
        entries = [Entry.load_or_none(os.path.join(self.folder, name)) for name in names
                   if name.endswith(".json")]
        for entry in [e for e in entries if e is not None] + self._without_entry(names):
            if not entry.try_lock():
                continue  # its shipper is alive
            try:
                if os.path.exists(entry.state_path):
                    fresh = Entry.load(entry.state_path)  # the state as of the lock
                    entry.shipped, entry.ended = fresh.shipped, fresh.ended
                else:  # no entry (a full disk): the log, whole, without chunks
                    entry.shipped = os.path.getsize(entry.local)
                entry.ship(self.store, whole=True)
                entry.remove()
                shipped += 1
            except FileNotFoundError:
                if entry.local_gone():  # nothing left to ship, ever
                    warn("log %s is gone from the volume: dropped from the spool",
                                entry.local)
                    entry.remove()
            except Exception as e:  # noqa: BLE001 - the store is still down: next scan
                log.debug("leftover log %s not shipped yet: %s", entry.rel, e)
            finally:
                entry.unlock()
        return shipped

    def _without_entry(self, names) -> list[Entry]:
        """Entries for the unlocked locks that have no state (their try started on a full
        disk), found by id among the local logs (walked only when there are such locks)."""
        entries = {n[:-len(".json")] for n in names if n.endswith(".json")}
        orphans = [n[:-len(".lock")] for n in names
                   if n.endswith(".lock") and n[:-len(".lock")] not in entries]
        orphans = [i for i in orphans if i not in OWNED and not _held(self.folder, i)]
        if not orphans:
            return []
        found, spool = {}, os.path.realpath(self.folder)
        for top, dirs, files in os.walk(self.logs):
            dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(top, d)) != spool]
            for name in files:
                local = os.path.join(top, name)
                rel = os.path.relpath(local, self.logs)
                if entry_id(rel) in orphans:
                    found[entry_id(rel)] = Entry(self.folder, rel, local)
        for missing in set(orphans) - set(found):  # its log is gone from the volume
            warn("spool lock %s has no log on the volume: dropped", missing)
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.folder, f"{missing}.lock"))
        return [found[i] for i in orphans if i in found]

    def _remove_old_temp_files(self, names):
        for name in names:
            if name.endswith(".tmp"):
                path = os.path.join(self.folder, name)
                with contextlib.suppress(OSError):
                    if time.time() - os.stat(path).st_mtime > TEMP_MAX_AGE:
                        os.unlink(path)


def _held(folder: str, id_: str) -> bool:
    """Whether a live process holds the lock <id>.lock (checked without keeping it)."""
    try:
        fd = os.open(os.path.join(folder, f"{id_}.lock"), os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return True  # gone, or not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
