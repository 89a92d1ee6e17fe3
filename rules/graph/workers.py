"""Worker processes for the Python-heavy steps of a build (unpacking wheels, writing tar and
gzip): in threads of one process they contend for the GIL (a cold build of 4.2 measured 83 s of
CPU with threads, 66 s with worker processes).

A small pool of our own rather than multiprocessing's. Each worker is ``python -m
rules.graph.workers``: it reads pickled calls on its stdin and writes the pickled outcome on a pipe
of its own. So there are no named semaphores (a spawn pool of multiprocessing leaves
``/dev/shm/sem.mp-*`` files behind when its whole process group is killed with kill -9), and a
failing build can stop every worker at once. A worker dies with the process that started it
(PR_SET_PDEATHSIG), even on kill -9. Workers run in a process group of their own: a Ctrl-C at
the terminal reaches the build only, which stops them; in the build's group, a worker still
importing printed its own KeyboardInterrupt traceback beside the build's "interrupted".
"""

import ctypes
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import traceback
from pathlib import Path

from rules.common.errors import UserError

PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
FRAME = struct.Struct("<Q")  # length of the pickle that follows
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding `rules`


class WorkerDied(RuntimeError):
    pass


class Pool:
    """``size`` worker processes; ``call`` runs a module-level function in a free one."""

    def __init__(self, size: int, nice: int = 0):
        self._idle: queue.Queue = queue.Queue()
        self._workers = [_Worker(nice) for _ in range(size)]
        self._stopped = threading.Event()
        for worker in self._workers:
            self._idle.put(worker)

    def call(self, fn, *args):
        """``fn(*args)`` in a worker (waits for a free one); its exception is raised here."""
        worker = self._idle.get()
        try:
            if self._stopped.is_set():
                raise WorkerDied("the build stopped its workers")
            return worker.call(fn, args)
        finally:
            self._idle.put(worker)

    def kill(self) -> None:
        """Stop every worker now (a call in progress raises WorkerDied)."""
        self._stopped.set()
        for worker in self._workers:
            worker.kill()

    def close(self) -> None:
        for worker in self._workers:
            worker.close()

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, kind, *exc) -> None:
        if kind is not None:
            self.kill()
        self.close()


class _Worker:
    def __init__(self, nice: int):
        read_end, self._write_end = os.pipe()
        results_read, results_write = os.pipe()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(PACKAGE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rules.graph.workers", str(results_write), str(os.getpid()),
                 str(nice)], stdin=read_end, stdout=subprocess.DEVNULL, env=env,
                pass_fds=(results_write,), cwd="/", process_group=0)
        finally:
            os.close(read_end)
            os.close(results_write)
        self._results = os.fdopen(results_read, "rb")
        self._jobs = os.fdopen(self._write_end, "wb")

    def call(self, fn, args):
        data = pickle.dumps((fn, args))
        try:
            self._jobs.write(FRAME.pack(len(data)) + data)
            self._jobs.flush()
            outcome, value = pickle.loads(_read_frame(self._results))
        except (OSError, EOFError, pickle.UnpicklingError):
            raise WorkerDied(f"a worker process stopped (exit code {self.proc.poll()})") from None
        if outcome == "error":
            raise value
        return value

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def close(self) -> None:
        try:
            self._jobs.close()  # end of input: the worker returns
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._results.close()


def _read_frame(stream) -> bytes:
    head = stream.read(FRAME.size)
    if len(head) != FRAME.size:
        raise EOFError
    size = FRAME.unpack(head)[0]
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def _portable(error: BaseException) -> BaseException:
    """An exception that unpickles in the build process as what it is, or says what it was."""
    if isinstance(error, UserError):  # (its subclasses take other arguments)
        return UserError(str(error), error.exit_code)
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError("".join(traceback.format_exception(error)))


def _serve(results_fd: int, parent: int, nice: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the build died before the line above
        os._exit(1)
    if nice:
        os.nice(nice)
    jobs, results = sys.stdin.buffer, os.fdopen(results_fd, "wb")
    while True:
        try:
            fn, args = pickle.loads(_read_frame(jobs))
        except EOFError:
            return
        try:
            outcome = ("ok", fn(*args))
        except BaseException as e:  # noqa: BLE001 (reported to the build, which raises it)
            outcome = ("error", _portable(e))
        try:
            data = pickle.dumps(outcome)
        except Exception as e:  # noqa: BLE001 (an unpicklable result or error)
            data = pickle.dumps(("error", RuntimeError(f"cannot send the outcome back: {e}")))
        results.write(FRAME.pack(len(data)) + data)
        results.flush()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
