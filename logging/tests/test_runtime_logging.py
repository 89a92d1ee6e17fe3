"""The spool and the store client of the logging module, on the host against a real
S3-compatible server (moto's, on 127.0.0.1): partial shipping of complete lines, retries while
the store is down, idempotent re-sends, recovery of a dead shipper's leftovers, and the read
path stitching chunks. (The handler inside Airflow: tests/acceptance/test_logging.py.)"""

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

from tests.fixtures import REPO
from tests.hung_store import HungServer
from tests.services import BUCKET, S3Server, free_port

from runtime_logging.spool import Entry, Recovery, Shipper
from runtime_logging.store import S3Store, StoreConfig

# the scripts these tests start in child processes import the module the same way
CHILD_ENV = dict(os.environ, PYTHONPATH=str(REPO / "logging"))

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
        from runtime_logging.spool import Entry
        e = Entry({str(folder)!r}, {REL!r}, {str(local)!r})
        assert e.try_lock(); e.save(); print("held", flush=True); time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", held], stdout=subprocess.PIPE, text=True,
                            env=CHILD_ENV)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert Recovery(str(folder), store_for(s3), 10).scan() == 0  # its shipper is alive
        proc.kill()  # kill -9: the lock goes with the process
        proc.wait()
        assert Recovery(str(folder), store_for(s3), 10).scan() == 1
        assert store_for(s3).read(REL) == (b"x\n", True)
    finally:
        proc.kill()


def hung_store(hung, timeout=1):
    return S3Store(StoreConfig.from_env({
        "RUNTIME_LOG_S3_BUCKET": BUCKET, "RUNTIME_LOG_S3_ENDPOINT_URL": hung.url,
        "RUNTIME_LOG_S3_ACCESS_KEY_ID": "k", "RUNTIME_LOG_S3_SECRET_ACCESS_KEY": "s"}),
        timeout=timeout)


def test_one_request_per_store_call():
    """botocore's legacy retry mode read {"max_attempts": 1} as one retry: two requests, and
    twice the timeout, per call against a hung store. The spool retries by itself."""
    from botocore.exceptions import ReadTimeoutError

    with HungServer() as hung:
        store = hung_store(hung)
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            store.put_chunk(REL, "s", 0, b"x\n")
        took = time.monotonic() - started
        print(f"one store call against a hung store: {hung.count()} request(s), {took:.2f} s")
        assert hung.count() == 1


def test_finishing_against_a_hung_store_waits_at_most_the_finish_timeout(tmp_path):
    """The try's exit waits for the final upload at most finish_timeout (here 1 s; the store's
    own timeout is also 1 s). The bound asserted, 2 s, is not a speed check: it is what two
    requests of 1 s (the old retry), or waiting for the running upload before starting the
    final one, take at least."""
    local = tmp_path / "1.log"
    local.write_text("a\n")
    with HungServer() as hung:
        entry = Entry(str(tmp_path / "spool"), REL, str(local))
        shipper = Shipper(entry, hung_store(hung), interval=0.2, finish_timeout=1).start()
        wait_for(lambda: hung.count() >= 1)  # the running upload hangs
        started = time.monotonic()
        shipper.finish()
        took = time.monotonic() - started
        print(f"finish against a hung store: {took:.2f} s")
        assert took < 2
    assert Entry.load(entry.state_path).ended  # left for the recovery scan


SAVE_FAILS = """
import os, resource, signal, sys
from runtime_logging.spool import Entry
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))  # a write past byte 1 fails: a full disk
e = Entry({folder!r}, {rel!r}, {local!r})
try:
    e.save()
except OSError as err:
    print("failed", err.errno)
print(sorted(os.listdir({folder!r})))
"""


def test_a_failed_save_leaves_no_temp_file(tmp_path):
    folder = tmp_path / "spool"
    folder.mkdir()
    script = SAVE_FAILS.format(logging=str(REPO / "logging"), folder=str(folder), rel=REL,
                               local=str(tmp_path / "1.log"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=CHILD_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["failed 27", "[]"]  # EFBIG, and nothing left


FULL_DISK_TRY = """
import os, resource, signal, sys, time
from runtime_logging.spool import Entry, Shipper
from runtime_logging.store import S3Store, StoreConfig
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))  # the disk is full as the try starts
store = S3Store(StoreConfig.from_env({env!r}), timeout=1)
shipper = Shipper(Entry({folder!r}, {rel!r}, {local!r}), store, 0.2, 2).start()
print(sorted(n.split(".", 1)[1] for n in os.listdir({folder!r})), flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space returns
with open({local!r}, "a") as f:
    f.write("after\\n")
if {die}:
    os._exit(0)  # dies before the try ends (or its store is down then): the recovery scan's job
shipper.finish()
"""


def full_disk_try(tmp_path, env, die):
    logs = tmp_path / "logs"
    local = logs / REL
    local.parent.mkdir(parents=True)
    local.write_text("before\n")
    folder = logs / ".runtime-spool"
    script = FULL_DISK_TRY.format(logging=str(REPO / "logging"), env=env, folder=str(folder),
                                  rel=REL, local=str(local), die=die)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env=CHILD_ENV)
    assert proc.returncode == 0, proc.stderr
    return proc, logs, folder


def test_a_try_started_on_a_full_disk_is_shipped_and_reported(s3, tmp_path):
    proc, _, folder = full_disk_try(tmp_path, s3.runtime_env(), die=False)
    assert proc.stdout.splitlines() == ["['lock']"]  # no room for the entry's state
    report = [line for line in proc.stderr.splitlines() if line.startswith("runtime_logging:")]
    assert len(report) == 1 and REL in report[0] and "could not be saved" in report[0], \
        proc.stderr
    assert store_for(s3).read(REL) == (b"before\nafter\n", True)
    assert os.listdir(folder) == []


def test_the_recovery_scan_ships_a_log_that_has_no_entry(s3, tmp_path):
    _, logs, folder = full_disk_try(tmp_path, s3.runtime_env(), die=True)
    assert sorted(n.split(".", 1)[1] for n in os.listdir(folder)) == ["lock"]
    assert Recovery(str(folder), store_for(s3), 10, logs=str(logs)).scan() == 1
    assert store_for(s3).read(REL) == (b"before\nafter\n", True)
    assert os.listdir(folder) == []
    # a lock whose log is gone from the volume is dropped
    (folder / ("0" * 32 + ".lock")).touch()
    assert Recovery(str(folder), store_for(s3), 10, logs=str(logs)).scan() == 0
    assert os.listdir(folder) == []


def wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def test_the_scan_removes_old_temp_files_of_killed_saves(s3, tmp_path):
    folder = tmp_path / "spool"
    folder.mkdir()
    old, fresh = folder / f"{'a' * 32}.json.1-2.tmp", folder / f"{'b' * 32}.json.3-4.tmp"
    old.touch()
    fresh.touch()
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert Recovery(str(folder), store_for(s3), 10).scan() == 0
    assert os.listdir(folder) == [fresh.name]  # (a save may be under way in another process)
