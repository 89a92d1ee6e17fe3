"""rules.graph.workers: calls run in other processes and their errors come back as what they are; a
pool can be stopped at once; workers die with the process that started them, even by kill -9,
and leave nothing in /dev/shm."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rules.graph import workers
from rules.common.errors import DigestMismatchError, UserError

REPO = Path(__file__).resolve().parents[3]


def fail_with_digest(name):
    raise DigestMismatchError(name, "a" * 64, "b" * 64)


def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def test_calls_run_in_worker_processes():
    with workers.Pool(2) as pool:
        pids = {pool.call(os.getpid) for _ in range(4)}
        assert os.getpid() not in pids and 1 <= len(pids) <= 2
        assert pool.call(sorted, [3, 1, 2]) == [1, 2, 3]
        assert pool.call(sleep_then, 0, {"a": (1, b"x")}) == {"a": (1, b"x")}


def test_errors_come_back_as_what_they_are():
    with workers.Pool(1) as pool:
        with pytest.raises(ValueError, match="invalid literal"):
            pool.call(int, "x")
        with pytest.raises(UserError, match="layer.tar") as caught:
            pool.call(fail_with_digest, "layer.tar")
        assert "a" * 64 in str(caught.value) and "b" * 64 in str(caught.value)
        assert pool.call(int, "7") == 7  # the worker goes on after an error


def test_a_killed_pool_stops_the_call_in_progress():
    with workers.Pool(1) as pool:
        outcome = {}

        def slow():
            try:
                pool.call(sleep_then, 60, "never")
            except workers.WorkerDied as e:
                outcome["error"] = e

        thread = threading.Thread(target=slow)
        started = time.monotonic()
        thread.start()
        time.sleep(0.5)
        pool.kill()
        thread.join(10)
        assert isinstance(outcome.get("error"), workers.WorkerDied)
        assert time.monotonic() - started < 10
        with pytest.raises(workers.WorkerDied):
            pool.call(os.getpid)


def test_ctrl_c_reaches_the_build_and_not_its_workers():
    """A terminal's Ctrl-C goes to the foreground process group: the build handles it (and
    stops its workers); a worker interrupted mid-import printed a traceback of its own."""
    script = ("import os, sys, time; from rules.graph import workers; "
              "pool = workers.Pool(2); print(*[pool.call(os.getpid) for _ in range(6)], "
              "flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        pids = {int(p) for p in parent.stdout.readline().split()}
        assert pids and all(os.getpgid(pid) != parent.pid for pid in pids)
        os.killpg(parent.pid, signal.SIGINT)
        _, err = parent.communicate(timeout=10)
    finally:
        parent.kill()
    assert err.count("Traceback") == 1 and "KeyboardInterrupt" in err  # the build's own
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def test_workers_die_with_their_parent_on_kill_9():
    shm_before = set(os.listdir("/dev/shm"))
    script = ("import os, sys, time; from rules.graph import workers; "
              "pool = workers.Pool(2); print(*[pool.call(os.getpid) for _ in range(6)], "
              "flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    pids = {int(p) for p in parent.stdout.readline().split()}
    assert pids and all(_alive(pid) for pid in pids)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)
    assert set(os.listdir("/dev/shm")) - shm_before == set()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
