"""Wait, with a bounded number of tries, for what an Airflow command needs before it starts:
the metadata database and, with a Celery executor, the broker.

Run by the entrypoint as `python -m astro_runtime.wait <airflow sub-command...>`. Exit status 0
when everything answers (or nothing is needed), 1 with one clear message when something did not
answer within RUNTIME_WAIT_TIMEOUT seconds (default 120; 0 turns the wait off).
"""

from __future__ import annotations

import os
import sys
import time

# sub-commands that open the metadata database as soon as they start
NEEDS_DATABASE = {"scheduler", "webserver", "triggerer", "dag-processor", "celery"}
# ... and those that also need the Celery broker
NEEDS_BROKER = {"scheduler", "celery"}
DEFAULT_TIMEOUT = 120
RETRY_SECONDS = 2


class WaitError(Exception):
    pass


def timeout_from_env(env=os.environ) -> float:
    raw = env.get("RUNTIME_WAIT_TIMEOUT", str(DEFAULT_TIMEOUT)).strip()
    try:
        value = float(raw)
    except ValueError:
        raise WaitError(f"RUNTIME_WAIT_TIMEOUT={raw!r} is not a number of seconds") from None
    if value < 0:
        raise WaitError(f"RUNTIME_WAIT_TIMEOUT={raw!r} is negative")
    return value


def _sub_command(argv: list[str]) -> str | None:
    args = argv[1:] if argv and argv[0] == "airflow" else argv
    return args[0] if args else None


def _conf_value(conf, *places: tuple[str, str]) -> str:
    for section, key in places:
        if conf.has_option(section, key):
            return conf.get(section, key)
    return ""


def _safe(url: str) -> str:
    from sqlalchemy.engine.url import make_url

    try:
        return repr(make_url(url))  # password shown as ***
    except Exception:
        return url.split("@")[-1]


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _until_ready(what: str, where: str, attempt, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last, announced = None, 0.0
    while True:
        try:
            attempt()
            if last is not None:
                print(f"runtime: {what} at {where} answers", file=sys.stderr, flush=True)
            return
        except Exception as error:  # any failure to connect means: not ready yet
            last = _first_line(error)
        now = time.monotonic()
        if now >= deadline:
            raise WaitError(f"{what} at {where} did not answer within {timeout:g} s "
                            f"(RUNTIME_WAIT_TIMEOUT); last error: {last}")
        if now - announced >= 10:
            print(f"runtime: waiting for {what} at {where}: {last}", file=sys.stderr,
                  flush=True)
            announced = now
        time.sleep(min(RETRY_SECONDS, max(0.0, deadline - now)))


def wait_for_database(url: str, timeout: float) -> None:
    if url.startswith("sqlite"):
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    args = {"connect_timeout": 5} if url.startswith(("postgres", "mysql")) else {}
    engine = create_engine(url, connect_args=args, poolclass=NullPool)

    def attempt():
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    try:
        _until_ready("the metadata database", _safe(url), attempt, timeout)
    finally:
        engine.dispose()


def wait_for_broker(url: str, timeout: float) -> None:
    from kombu import Connection

    def attempt():
        with Connection(url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)

    _until_ready("the Celery broker", _safe(url), attempt, timeout)


def main(argv: list[str]) -> int:
    try:
        timeout = timeout_from_env()
        command = _sub_command(argv)
        if timeout == 0 or command not in NEEDS_DATABASE or {"-h", "--help"} & set(argv):
            return 0
        try:
            from airflow.configuration import conf
        except Exception:  # a broken configuration: Airflow itself reports it, next
            return 0

        database = _conf_value(conf, ("database", "sql_alchemy_conn"),
                               ("core", "sql_alchemy_conn"))
        wait_for_database(database, timeout)
        executor = _conf_value(conf, ("core", "executor"))
        if command in NEEDS_BROKER and "Celery" in executor:
            wait_for_broker(_conf_value(conf, ("celery", "broker_url")), timeout)
        return 0
    except WaitError as error:
        print(f"runtime: {error}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
