"""The spool and the store client of the logging module, on the host against a real
S3-compatible server (moto's, on 127.0.0.1): partial shipping of complete lines, retries while
the store is down, idempotent re-sends, recovery of a dead shipper's leftovers, and the read
path stitching chunks. (The handler inside Airflow: tests/test_acceptance_logging.py.)"""

import os
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from tests.fixtures import REPO
from tests.services import S3Server, free_port

sys.path.insert(0, str(REPO / "logging"))
from runtime_logging.spool import Entry, Recovery, Shipper  # noqa: E402
from runtime_logging.store import S3Store, StoreConfig  # noqa: E402

REL = "dag/task/2022-01-01T00:00:00+00:00/1.log"


@pytest.fixture
def s3():
    server = S3Server(free_port())
    server.start()
    yield server
    server.stop()


def store_for(server, port=None):
    env = server.runtime_env()
    if port:
        env["RUNTIME_LOG_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    return S3Store(StoreConfig.from_env(env), timeout=1)


def lines(text):
    return Counter(line for line in text.splitlines() if line)


def test_only_complete_lines_while_running_then_everything(s3, tmp_path):
    local = tmp_path / "1.log"
    local.write_text("one\ntwo\nthr")
    entry, store = Entry(str(tmp_path / "spool"), REL, str(local)), store_for(s3)
    os.makedirs(entry.folder)
    assert entry.ship(store, whole=False) is False
    assert entry.shipped == len("one\ntwo\n")
    assert store.read(REL) == (b"one\ntwo\n", False)
    local.write_text("one\ntwo\nthree\nfour")
    assert entry.ship(store, whole=True) is True
    assert store.read(REL) == (b"one\ntwo\nthree\nfour", True)


def test_resending_a_range_duplicates_nothing(s3, tmp_path):
    local = tmp_path / "1.log"
    local.write_text("".join(f"line {i}\n" for i in range(100)))
    store = store_for(s3)
    first = Entry(str(tmp_path / "spool"), REL, str(local))
    os.makedirs(first.folder)
    first.ship(store, whole=False)
    again = Entry.load(first.state_path)  # a shipper that crashed before saving its state
    again.shipped = 0
    again.ship(store, whole=False)
    text, complete = store.read(REL)
    assert not complete and lines(text.decode()) == Counter(f"line {i}" for i in range(100))
    assert len([k for k in s3.keys() if ".chunks/" in k]) == 1


def test_store_down_backs_off_and_keeps_the_spool(s3, tmp_path):
    local = tmp_path / "1.log"
    local.write_text("a\nb\n")
    down = store_for(s3, port=free_port())  # nothing listens there
    entry = Entry(str(tmp_path / "spool"), REL, str(local))
    shipper = Shipper(entry, down, interval=0.2, finish_timeout=1).start()
    shipper.finish()
    assert os.path.exists(entry.state_path) and Entry.load(entry.state_path).ended
    assert s3.keys() == []
    # any process with the handler ships it once the store answers
    assert Recovery(entry.folder, store_for(s3), 10).scan() == 1
    assert store_for(s3).read(REL) == (b"a\nb\n", True)
    assert not os.path.exists(entry.state_path)


def test_a_later_run_elsewhere_keeps_the_earlier_ones_lines(s3, tmp_path):
    """A rescheduled sensor's next poke on another worker: a new local file for the same try."""
    store = store_for(s3)
    for worker, text in (("a", "poke 1\n"), ("b", "poke 2\n")):
        local = tmp_path / worker / "1.log"
        local.parent.mkdir()
        local.write_text(text)
        entry = Entry(str(tmp_path / worker / "spool"), REL, str(local))
        os.makedirs(entry.folder)
        entry.ship(store, whole=True)
    assert store.read(REL) == (b"poke 1\npoke 2\n", True)


def test_a_held_entry_is_not_recovered_a_dead_one_is(s3, tmp_path):
    local = tmp_path / "1.log"
    local.write_text("x\n")
    folder = tmp_path / "spool"
    folder.mkdir()
    held = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO / 'logging')!r})
        from runtime_logging.spool import Entry
        e = Entry({str(folder)!r}, {REL!r}, {str(local)!r})
        assert e.try_lock(); e.save(); print("held", flush=True); time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", held], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert Recovery(str(folder), store_for(s3), 10).scan() == 0  # its shipper is alive
        proc.kill()  # kill -9: the lock goes with the process
        proc.wait()
        assert Recovery(str(folder), store_for(s3), 10).scan() == 1
        assert store_for(s3).read(REL) == (b"x\n", True)
    finally:
        proc.kill()
