"""Real servers for the acceptance tests, from the host's Debian packages: PostgreSQL and Redis,
each a private process on 127.0.0.1 with its data in a temp folder that is removed afterwards.
Also a static HTTP server (a user's private package index) and free-port lookup."""

import contextlib
import functools
import http.server
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def _postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                      key=lambda p: int(p.parts[-3]))
    if not versions:
        raise RuntimeError("PostgreSQL is missing: apt-get install postgresql")
    return versions[-1].parent


@dataclass
class Postgres:
    port: int

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> list[list[str]]:
        proc = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               "-d", database, "-v", "ON_ERROR_STOP=1", "-AtF", "\t", "-c", sql],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {proc.stderr.strip()}")
        return [line.split("\t") for line in proc.stdout.splitlines()]

    def create_database(self, name: str) -> str:
        self.psql(f'DROP DATABASE IF EXISTS "{name}"')
        self.psql(f'CREATE DATABASE "{name}"')
        return name


@contextlib.contextmanager
def postgres(port: int | None = None):
    """A PostgreSQL server (trust auth for user postgres) on 127.0.0.1, run as user postgres."""
    binaries = _postgres_bin()
    port = port or free_port()
    # not under TMPDIR: CI's is mode 0700 and the server runs as postgres
    data = Path(tempfile.mkdtemp(prefix="runtime-pg-", dir="/tmp"))
    try:
        shutil.chown(data, "postgres", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", str(binaries / "initdb"), "-D",
                        str(data / "db"), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
                       check=True, capture_output=True)
        proc = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", str(binaries / "postgres"), "-D",
             str(data / "db"), "-p", str(port), "-k", str(data), "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "max_connections=200"],
            stdout=open(data / "server.log", "wb"), stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, proc, "postgres")
            server = Postgres(port)
            for _ in range(50):  # listening precedes accepting connections by a moment
                with contextlib.suppress(RuntimeError):
                    server.psql("SELECT 1")
                    break
                time.sleep(0.2)
            yield server
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    finally:
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class Redis:
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@contextlib.contextmanager
def redis():
    if not shutil.which("redis-server"):
        raise RuntimeError("Redis is missing: apt-get install redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="runtime-redis-") as tmp:
        proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                 "--save", "", "--appendonly", "no", "--dir", tmp],
                                stdout=open(Path(tmp) / "server.log", "wb"),
                                stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, proc, "redis-server")
            yield Redis(port)
        finally:
            proc.terminate()
            proc.wait(timeout=60)


@contextlib.contextmanager
def static_http(folder: Path):
    """Serve a folder on 127.0.0.1 (e.g. a PEP 503 simple index); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


BUCKET = "runtime-logs"


class S3Server:
    """moto's S3 server on 127.0.0.1:port, in memory: stopping it loses what it held."""

    def __init__(self, port):
        self.port, self.proc = port, None
        self.url = f"http://127.0.0.1:{port}"

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                      "-p", str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self._answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"the S3 server on {self.url} did not start")
            time.sleep(0.3)
        self.client().create_bucket(Bucket=BUCKET)

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
            self.proc = None

    def _answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id="runtime-logs",
                            aws_secret_access_key="runtime-logs-secret", region_name="us-east-1")

    def keys(self) -> list[str]:
        return [o["Key"] for o in self.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])]

    def read(self, key) -> str | None:
        if key not in self.keys():
            return None
        return self.client().get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()

    def runtime_env(self, prefix="task-logs") -> dict:
        """The Runtime's task log settings for this store (quick shipping, for tests)."""
        return {"RUNTIME_LOG_S3_BUCKET": BUCKET, "RUNTIME_LOG_S3_PREFIX": prefix,
                "RUNTIME_LOG_S3_ENDPOINT_URL": self.url,
                "RUNTIME_LOG_S3_ACCESS_KEY_ID": "runtime-logs",
                "RUNTIME_LOG_S3_SECRET_ACCESS_KEY": "runtime-logs-secret",
                "RUNTIME_LOG_SHIP_INTERVAL": "1", "RUNTIME_LOG_RECOVERY_INTERVAL": "2",
                "RUNTIME_LOG_FINISH_TIMEOUT": "3"}
