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
"""

import errno
import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
import time

log = logging.getLogger(__name__)
CHUNK_LIMIT = 8 << 20  # bytes per chunk object at most
OWNED = set()  # entry ids this process holds the lock of


class Entry:
    def __init__(self, folder: str, rel: str, local: str):
        self.id = hashlib.sha256(rel.encode()).hexdigest()[:32]
        self.folder, self.rel, self.local = folder, rel, local
        self.state_path = os.path.join(folder, f"{self.id}.json")
        self.lock_path = os.path.join(folder, f"{self.id}.lock")
        self.shipped, self.ended = 0, False
        # chunks of one shipping session (a run of the try on one worker) share a key prefix:
        # a rescheduled sensor's next run, elsewhere, does not overwrite this one's ranges
        self.session = f"{int(time.time() * 1000):013d}-{socket.gethostname()}-{os.getpid()}"
        self._lock_fd = None

    @classmethod
    def load(cls, state_path: str):
        with open(state_path, encoding="utf-8") as f:
            data = json.load(f)
        entry = cls(os.path.dirname(state_path), data["rel"], data["local"])
        entry.shipped, entry.ended = data["shipped"], data["ended"]
        entry.session = data.get("session", entry.session)
        return entry

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
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"rel": self.rel, "local": self.local, "shipped": self.shipped,
                       "ended": self.ended, "session": self.session}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

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
                self.save()
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
    it runs, retried with exponential backoff; everything at ``finish``."""

    def __init__(self, entry: Entry, store, interval: float, finish_timeout: float):
        self.entry, self.store = entry, store
        self.interval, self.finish_timeout = interval, finish_timeout
        self.pid = os.getpid()  # a forked child (the raw task) inherits this object: not its job
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="runtime-log-shipper",
                                        daemon=True)

    def start(self, wait: float = 20.0):
        os.makedirs(self.entry.folder, exist_ok=True)
        deadline = time.monotonic() + wait
        while not self.entry.try_lock():  # a recovery scan may hold it for a moment
            if time.monotonic() > deadline:
                return self  # another live process of this try ships it
            time.sleep(0.2)
        if os.path.exists(self.entry.state_path):  # a leftover of this try: continue it
            old = Entry.load(self.entry.state_path)
            self.entry.shipped, self.entry.session = old.shipped, old.session
        self.entry.save()
        self._thread.start()
        return self

    def _run(self):
        delay = self.interval
        while not self._stop.wait(delay):
            try:
                with self._mutex:
                    self.entry.ship(self.store, whole=False)
                delay = self.interval
            except Exception as e:  # noqa: BLE001 - the store is down: back off, keep the spool
                delay = min(max(delay * 2, 1.0), 30.0)
                log.debug("log store unreachable (%s); retrying in %.0f s", e, delay)

    def finish(self):
        if self.entry._lock_fd is None or os.getpid() != self.pid:
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 10)
        self.entry.ended = True
        deadline = time.monotonic() + self.finish_timeout
        delay = 0.5
        if not self._mutex.acquire(timeout=self.finish_timeout):
            return  # the thread is stuck on a slow store: a recovery scan finishes the job
        try:
            self.entry.save()
            while True:
                try:
                    self.entry.ship(self.store, whole=True)
                    self.entry.remove()
                    break
                except Exception as e:  # noqa: BLE001 - left for the recovery scan
                    if time.monotonic() + delay > deadline:
                        log.warning("log store unreachable (%s): the log stays in the spool "
                                    "and is shipped when it comes back", e)
                        break
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
            self.entry.unlock()
        finally:
            self._mutex.release()


class Recovery:
    """Ships leftovers of dead shippers, every ``interval`` seconds, in a daemon thread (one
    per process and folder; ``stop_here`` ends it, as a raw task process does)."""

    _running = {}

    def __init__(self, folder: str, store, interval: float):
        self.folder, self.store, self.interval = folder, store, interval
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
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                entry = Entry.load(os.path.join(self.folder, name))
            except (OSError, ValueError):
                continue
            if not entry.try_lock():
                continue  # its shipper is alive
            try:
                fresh = Entry.load(entry.state_path)  # the state as of the lock
                entry.shipped, entry.ended = fresh.shipped, fresh.ended
                entry.ship(self.store, whole=True)
                entry.remove()
                shipped += 1
            except FileNotFoundError:
                if entry.local_gone():  # nothing left to ship, ever
                    log.warning("log %s is gone from the volume: dropped from the spool",
                                entry.local)
                    entry.remove()
            except Exception as e:  # noqa: BLE001 - the store is still down: next scan
                log.debug("leftover log %s not shipped yet: %s", entry.rel, e)
            finally:
                entry.unlock()
        return shipped
