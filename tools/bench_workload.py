"""Workload benchmark of the concurrency defaults: prints figures, asserts nothing. Run with
`./dev bench --workload` (not part of CI).

A DAG of independent tasks (tools/in_image/workload_dags/runtime_workload.py: mostly sleep 1 s,
some about 2 s of pure-Python CPU work, a few writing about 300 MB and holding it 2 s) runs once
per cell, in a real Docker engine (DOCKER_HOST) against the test suite's PostgreSQL (and Redis
for Celery), in the line's image. The container that runs the tasks gets the cell's limits:
the scheduler with the LocalExecutor, the one worker with Celery (its scheduler unconstrained).
Per limit, the Runtime's defaults against Airflow's own (the same image with
RUNTIME_CONCURRENCY_DEFAULTS=off); for 1 CPU / 2 GiB also a sweep of parallelism (Celery: worker
concurrency). Per cell: makespan of the DAG run, failed and unfinished tasks, OOM kills
(`docker inspect` OOMKilled, the cgroup's oom_kill count), peak memory of the container's cgroup,
the scheduler loop duration p95 (Airflow's own debug line "Ran scheduling loop in X seconds").
Then container start: `docker run` to the scheduler's first heartbeat and to the webserver's
/health, and the entrypoint's own overhead against calling `airflow` directly.

Every cell gets its own database, cloned from one `airflow db init`ed template; its default
pool keeps Airflow's 128 slots (the Runtime's pool choice equals its parallelism, which caps
first). Zombie tasks are detected after 60 s (Airflow: 300) in every cell, so that a killed task
supervisor ends a cell rather than stalling it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "tools" / "in_image" / "workload_dags"
DAG_ID = "runtime_workload"
LIMITS = [(0.5, "1g"), (1, "2g"), (2, "4g")]
SWEEP = [1, 2, 4, 8, 16, 32]
PREFIX = "runtime-bench-wl"
# what every Airflow container of the bench gets (besides the database and executor)
BASE_ENV = {"AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_ZOMBIE_TASK_THRESHOLD": "60",
            "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS": "workload_logging.LOGGING_CONFIG",
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            "PYTHONPATH": "/usr/local/airflow/dags"}
# Airflow 2.2's own defaults for what the Runtime chooses
AIRFLOW_DEFAULTS = {"parallelism": "32", "per_dag": "16", "worker": "16"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOOP_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)[,.](\d+)\].*Ran scheduling loop "
                       r"in ([0-9.]+) seconds")


# ---- pure parts (unit-tested in tests/tasks/test_bench_workload.py) ----

def p95(values: list[float]) -> float | None:
    """The 95th percentile, nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def oom_kills(memory_events: str | None, oom_control: str | None = None) -> int | None:
    """oom_kill from cgroup v2 memory.events, else from cgroup v1 memory.oom_control."""
    for text in (memory_events, oom_control):
        for line in (text or "").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "oom_kill":
                return int(parts[1])
    return None


def loop_durations(log: str, start: datetime.datetime | None = None,
                   end: datetime.datetime | None = None) -> list[float]:
    """The scheduler's loop durations logged between start and end (UTC, naive)."""
    found = []
    for line in log.splitlines():
        match = LOOP_LINE.match(ANSI.sub("", line))
        if not match:
            continue
        when = datetime.datetime.fromisoformat(match[1].replace(" ", "T"))
        if (start and when < start.replace(microsecond=0)) or (end and when > end):
            continue
        found.append(float(match[3]))
    return found


@dataclass
class Cell:
    executor: str  # LocalExecutor | CeleryExecutor
    cpus: float
    memory: str  # docker's --memory
    config: str  # "Runtime" | "Airflow" | "parallelism N"
    parallelism: str | None = None  # what the task container ran with
    makespan: float | None = None
    succeeded: int = 0
    failed: int = 0
    unfinished: int = 0
    oom_killed: bool = False
    oom_kills: int | None = None
    peak_mib: float | None = None
    loop_p95: float | None = None
    loops: int = 0
    note: str = ""
    load: str = ""

    @property
    def limit(self) -> str:
        return f"{self.cpus:g} CPU / {self.memory[:-1]} GiB"


def slots(parallelism: str | None) -> int | None:
    """The task slots of a cell's parallelism column: "32 (16 per DAG)" -> 16."""
    numbers = [int(n) for n in re.findall(r"\d+", parallelism or "")]
    return min(numbers) if numbers else None


def _figure(value, digits=1, unit=""):
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def table(cells: list[Cell]) -> str:
    """The cells as a markdown table."""
    rows = ["| executor | limits | defaults | parallelism | makespan | failed / unfinished | "
            "OOM kills | peak memory | loop p95 | load (1 min) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        oom = "–" if c.oom_kills is None else str(c.oom_kills)
        if c.oom_killed:
            oom += " (container OOMKilled)"
        makespan = _figure(c.makespan, 1, " s") if not c.unfinished or c.makespan is None \
            else f"> {_figure(c.makespan, 0, ' s')} (timeout)"
        rows.append(f"| {c.executor.replace('Executor', '')} | {c.limit} | {c.config} | "
                    f"{c.parallelism if c.parallelism is not None else '–'} | {makespan} | "
                    f"{c.failed} / {c.unfinished} | {oom} | {_figure(c.peak_mib, 0, ' MiB')} | "
                    f"{_figure(c.loop_p95, 2, ' s')} | {c.load} |"
                    + (f" {c.note}" if c.note else ""))
    return "\n".join(rows) + "\n"


# ---- the engine side ----

def docker(*args, check=True, timeout=600) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def run_args(name, env, cpus=None, memory=None, extra=()):
    args = ["run", "-d", "--name", name, "--network", "host",
            "-v", f"{DAGS}:/usr/local/airflow/dags:ro"]
    if cpus:
        args += ["--cpus", str(cpus), "--memory", memory, "--memory-swap", memory]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    return [*args, *extra]


def remove(*names):
    for name in names:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def cgroup_dir(container_id: str) -> Path | None:
    """The container's memory cgroup on the host (cgroup v2 or v1, cgroupfs or systemd)."""
    for pattern in (f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope",
                    f"/sys/fs/cgroup/docker/{container_id}",
                    f"/sys/fs/cgroup/memory/docker/{container_id}",
                    f"/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope"):
        if Path(pattern).is_dir():
            return Path(pattern)
    return None


def read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def memory_figures(name: str) -> tuple[float | None, int | None, bool]:
    """(peak MiB, OOM kills, OOMKilled) of a container that still exists."""
    state = json.loads(docker("inspect", name))[0]
    folder = cgroup_dir(state["Id"])
    peak = kills = None
    if folder:
        raw = read(folder / "memory.peak") or read(folder / "memory.max_usage_in_bytes")
        peak = int(raw) / (1 << 20) if raw else None
        kills = oom_kills(read(folder / "memory.events"), read(folder / "memory.oom_control"))
    return peak, kills, bool(state["State"].get("OOMKilled"))


def running(name) -> bool:
    proc = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name],
                          capture_output=True, text=True)
    return proc.stdout.strip() == "true"


def logs(name) -> str:
    proc = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
    return proc.stdout + proc.stderr


class Bench:
    def __init__(self, args, image, pg, redis):
        self.args, self.image, self.pg, self.redis = args, image, pg, redis
        self.count = 0
        self.workload = {"WORKLOAD_TASKS": str(args.tasks),
                         "WORKLOAD_CPU_LOOPS": str(args.cpu_loops),
                         "WORKLOAD_MEMORY_MB": str(args.memory_mb)}

    def env(self, database, executor, extra=None):
        env = {**BASE_ENV, **self.workload,
               "AIRFLOW__CORE__SQL_ALCHEMY_CONN": self.pg.url(database),
               "AIRFLOW__CORE__EXECUTOR": executor}
        if executor == "CeleryExecutor":
            env.update({"AIRFLOW__CELERY__BROKER_URL": self.redis.url(),
                        "AIRFLOW__CELERY__RESULT_BACKEND": self.pg.url(database,
                                                                       "db+postgresql"),
                        "AIRFLOW__CELERY__WORKER_LOG_SERVER_PORT": str(free_port())})
        return {**env, **(extra or {})}

    def template(self):
        self.pg.create_database(f"{PREFIX}-template".replace("-", "_"))
        name = f"{PREFIX}-init"
        remove(name)
        # Airflow's default pool (128 slots): `db init` with the Runtime's defaults would size it
        # for the host, capping every cell
        env = {**self.env("runtime_bench_wl_template", "LocalExecutor"),
               "RUNTIME_CONCURRENCY_DEFAULTS": "off"}
        proc = subprocess.run(["docker", "run", "--rm", "--name", name, "--network", "host",
                               "-v", f"{DAGS}:/usr/local/airflow/dags:ro",
                               *sum((["-e", f"{k}={v}"] for k, v in env.items()), []),
                               self.image, "airflow", "db", "init"],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode:
            raise RuntimeError("airflow db init: " + (proc.stdout + proc.stderr)[-3000:])
        self.pg.psql("UPDATE slot_pool SET slots = 128 WHERE pool = 'default_pool'",
                     "runtime_bench_wl_template")

    def database(self) -> str:
        self.count += 1
        name = f"runtime_bench_wl_{self.count}"
        self.pg.psql(f'DROP DATABASE IF EXISTS "{name}"')
        self.pg.psql(f'CREATE DATABASE "{name}" TEMPLATE runtime_bench_wl_template')
        return name

    def finished(self, database):
        rows = self.pg.psql(f"SELECT state, start_date, end_date FROM dag_run "
                            f"WHERE dag_id = '{DAG_ID}'", database)
        return rows[0] if rows and rows[0][0] in ("success", "failed") else None

    def run_started(self, database):
        rows = self.pg.psql(f"SELECT start_date FROM dag_run WHERE dag_id = '{DAG_ID}'",
                            database)
        return rows[0][0] if rows and rows[0][0] else None

    def task_states(self, database) -> dict:
        rows = self.pg.psql("SELECT coalesce(state, 'none'), count(*) FROM task_instance "
                            f"WHERE dag_id = '{DAG_ID}' GROUP BY 1", database)
        return {state: int(n) for state, n in rows}

    def cell(self, executor, cpus, memory, config, settings: dict) -> Cell:
        cell = Cell(executor, cpus, memory, config)
        database = self.database()
        env = self.env(database, executor)
        if config == "Airflow":
            env["RUNTIME_CONCURRENCY_DEFAULTS"] = "off"
        env.update(settings)
        scheduler, worker = f"{PREFIX}-scheduler", f"{PREFIX}-worker"
        remove(scheduler, worker)
        limited = scheduler
        try:
            if executor == "LocalExecutor":
                docker(*run_args(scheduler, env, cpus, memory), self.image, "scheduler")
            else:
                limited = worker
                docker(*run_args(worker, env, cpus, memory), self.image, "celery", "worker")
                deadline = time.monotonic() + 180
                while "ready." not in logs(worker):  # celery's "celery@host ready."
                    if time.monotonic() > deadline or not running(worker):
                        cell.note = "the Celery worker exited before it was ready"
                        cell.unfinished = self.args.tasks
                        cell.load = load_average()
                        cell.peak_mib, cell.oom_kills, cell.oom_killed = memory_figures(worker)
                        return cell
                    time.sleep(1)
                docker(*run_args(scheduler, env), self.image, "scheduler")
            deadline = time.monotonic() + self.args.cell_timeout
            done = None
            while time.monotonic() < deadline:
                done = self.finished(database)
                if done or not running(limited) or not running(scheduler):
                    break
                time.sleep(2)
            cell.load = load_average()
            if running(limited):
                cell.parallelism = self.effective(limited, executor)
            states = self.task_states(database)
            cell.succeeded = states.get("success", 0)
            cell.failed = states.get("failed", 0) + states.get("upstream_failed", 0)
            cell.unfinished = self.args.tasks - cell.succeeded - cell.failed
            started = self.run_started(database)
            if done:
                cell.makespan = (_ts(done[2]) - _ts(done[1])).total_seconds()
            elif started:
                cell.makespan = (datetime.datetime.utcnow() - _ts(started)).total_seconds()
            if not running(limited) or not running(scheduler):
                cell.note = "a container exited"
            cell.peak_mib, cell.oom_kills, cell.oom_killed = memory_figures(limited)
            loops = loop_durations(logs(scheduler), _ts(started) if started else None,
                                   _ts(done[2]) if done else None)
            cell.loops, cell.loop_p95 = len(loops), p95(loops)
        except Exception as error:  # a cell that breaks is reported, the bench goes on
            cell.note = " ".join(f"error: {error}".split())[:300]
        finally:
            if self.args.keep_logs:
                for name in (scheduler, worker):
                    Path(self.args.keep_logs).mkdir(parents=True, exist_ok=True)
                    (Path(self.args.keep_logs) / f"{database}-{name}.log").write_text(logs(name))
            remove(scheduler, worker)
            self.pg.psql(f'DROP DATABASE IF EXISTS "{database}"')
            print(table([cell]).splitlines()[-1], flush=True)
        return cell

    def effective(self, name, executor) -> str:
        """The task slots the container runs with: parallelism and the per-DAG cap (LocalExecutor),
        the worker concurrency (Celery). The Airflow process's own environment is unreadable
        (setproctitle overwrites it): ask the entrypoint's module again, in the container."""
        proc = subprocess.run(["docker", "exec", name, "bash", "-c",
                               "eval \"$(cd / && python3.9 -m astro_runtime.concurrency)\" "
                               "&& env -0"],
                              capture_output=True, text=True, timeout=60)
        env = dict(item.split("=", 1) for item in proc.stdout.split("\0") if "=" in item)
        if executor == "LocalExecutor":
            total = int(env.get("AIRFLOW__CORE__PARALLELISM", AIRFLOW_DEFAULTS["parallelism"]))
            per_dag = int(env.get("AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG",
                                  AIRFLOW_DEFAULTS["per_dag"]))
            return str(total) if per_dag >= total else f"{total} ({per_dag} per DAG)"
        return env.get("AIRFLOW__CELERY__WORKER_CONCURRENCY", AIRFLOW_DEFAULTS["worker"])


def _ts(text: str) -> datetime.datetime:
    """A PostgreSQL timestamptz as psql prints it, as naive UTC."""
    value = datetime.datetime.fromisoformat(text if len(text) > 22 else text + ":00")
    return value.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def free_port() -> int:
    from tests.services import free_port as port

    return port()


# ---- container start and entrypoint overhead ----

ENTRYPOINT_PROBE = r"""
import os, statistics, subprocess, sys, time
os.makedirs("/tmp/shim", exist_ok=True)
with open("/tmp/shim/airflow", "w") as f:
    f.write("#!/bin/sh\nexit 0\n")
os.chmod("/tmp/shim/airflow", 0o755)
env = {**os.environ, "PATH": "/tmp/shim:" + os.environ["PATH"]}
rounds = int(sys.argv[1])
cases = {"airflow tasks run (as a Kubernetes pod)": ["airflow", "tasks", "run", "d", "t", "r"],
         "airflow scheduler (database answering)": ["airflow", "scheduler"]}
out = {}
for label, cmd in cases.items():
    direct, through = [], []
    for _ in range(rounds):
        for target, argv in ((direct, cmd), (through, ["/usr/local/bin/runtime-entrypoint", *cmd])):
            t = time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
            target.append(time.perf_counter() - t)
    out[label] = [statistics.median(direct), statistics.median(through)]
print(__import__("json").dumps(out))
"""


def start_times(bench: Bench, cpus, memory, rounds) -> list[str]:
    lines = []
    database = bench.database()
    env = bench.env(database, "LocalExecutor")
    name = f"{PREFIX}-start"
    firsts, healths = [], []
    try:
        for _ in range(rounds):
            bench.pg.psql("DELETE FROM job", database)
            remove(name)
            started = time.monotonic()
            docker(*run_args(name, env, cpus, memory), bench.image, "scheduler")
            while not bench.pg.psql("SELECT 1 FROM job WHERE job_type = 'SchedulerJob'",
                                    database):
                if time.monotonic() - started > 300 or not running(name):
                    raise RuntimeError("no scheduler heartbeat: " + logs(name)[-2000:])
                time.sleep(0.1)
            firsts.append(time.monotonic() - started)
            remove(name)
            port = free_port()
            web = {**env, "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(port),
                   "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1"}
            started = time.monotonic()
            docker(*run_args(name, web, cpus, memory), bench.image, "webserver")
            while not _healthy(f"http://127.0.0.1:{port}/health"):
                if time.monotonic() - started > 300 or not running(name):
                    raise RuntimeError("no /health: " + logs(name)[-2000:])
                time.sleep(0.2)
            healths.append(time.monotonic() - started)
            remove(name)
        lines.append(f"container start at {cpus:g} CPU / {memory[:-1]} GiB, LocalExecutor, median "
                     f"of {rounds}: `docker run` to the scheduler's first heartbeat "
                     f"{statistics.median(firsts):.1f} s ({', '.join(f'{v:.1f}' for v in firsts)})"
                     f"; to the webserver's /health {statistics.median(healths):.1f} s "
                     f"({', '.join(f'{v:.1f}' for v in healths)})")
        out = subprocess.run(["docker", "run", "--rm", "--network", "host", "--cpus", str(cpus),
                              "--memory", memory, "--entrypoint", "python3.9",
                              "-v", f"{DAGS}:/usr/local/airflow/dags:ro",
                              *sum((["-e", f"{k}={v}"] for k, v in env.items()), []),
                              bench.image, "-c", ENTRYPOINT_PROBE, str(bench.args.probe_rounds)],
                             capture_output=True, text=True, timeout=900)
        if out.returncode:
            raise RuntimeError("entrypoint probe: " + out.stderr[-2000:])
        for label, (direct, through) in json.loads(out.stdout.splitlines()[-1]).items():
            lines.append(f"entrypoint overhead, {label}: {1000 * (through - direct):.0f} ms "
                         f"(median of {bench.args.probe_rounds}: {1000 * through:.0f} ms through "
                         f"the entrypoint, {1000 * direct:.0f} ms calling `airflow` directly; "
                         f"`airflow` is a no-op stand-in)")
    except Exception as error:
        lines.append(f"container start: error: {error}"[:500])
    finally:
        remove(name)
        bench.pg.psql(f'DROP DATABASE IF EXISTS "{database}"')
    for line in lines:
        print(line, flush=True)
    return lines


def _healthy(url) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200 and json.load(response)["scheduler"] is not None
    except (OSError, ValueError, KeyError):
        return False


# ---- the plot (Debian's python3-matplotlib when the venv has none) ----

def plot(data: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=80)
    for executor, points in data["sweep"].items():
        xs = [p for p, m in points if m is not None]
        ax.plot(xs, [m for p, m in points if m is not None], marker="o",
                label=f"{executor} sweep")
    markers = {"Runtime": "*", "Airflow": "s"}
    for executor, config, parallelism, makespan in data["marks"]:
        if makespan is not None and parallelism:
            ax.scatter([parallelism], [makespan], marker=markers.get(config, "P"), s=120,
                       zorder=3, label=f"{executor} {config} defaults")
    ax.set_xscale("log", base=2)
    ax.set_xticks(SWEEP)
    ax.set_xticklabels([str(p) for p in SWEEP])
    ax.set_xlabel("parallelism (Celery: worker concurrency)")
    ax.set_ylabel("makespan (s)")
    ax.set_title(data["title"], fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png)


def write_plot(cells: list[Cell], png: Path, limit: tuple[float, str], title: str) -> None:
    sweep, marks = {}, []
    for c in cells:
        if (c.cpus, c.memory) != limit:
            continue
        makespan = None if c.unfinished or c.failed else c.makespan
        if c.config.startswith("parallelism"):
            sweep.setdefault(c.executor.replace("Executor", ""), []).append(
                (int(c.config.split()[1]), makespan))
        else:
            marks.append((c.executor.replace("Executor", ""), c.config, slots(c.parallelism),
                          makespan))
    data = {"sweep": sweep, "marks": marks, "title": title}
    try:
        plot(data, png)
    except ImportError:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(data, f)
        subprocess.run(["/usr/bin/python3", __file__, "--plot", f.name, str(png)], check=True)
        Path(f.name).unlink()
    print(f"plot: {png}")


# ---- main ----

def image_tag(line: str) -> str:
    """The line's base image, built and loaded when the engine lacks it (as bench_logging)."""
    from rules.common.cache import default_cache
    from rules.image import build as images
    from rules.image import policy
    from rules.load import project
    from rules.oci import docker_load

    proj = project.load(REPO)
    runtime = proj.line(line)
    tag = policy.reference(proj.image(runtime), policy.tag(proj.image(runtime), runtime.version,
                                                           "base"))
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode:
        with tempfile.TemporaryDirectory() as out:
            images.build(proj, line, ("base",), Path(out), default_cache())
            docker_load.load(Path(out))
    return tag


def calibrate(image: str) -> int:
    """Loop iterations that take about 2 s of one unconstrained core in the image's Python."""
    code = ("import time\nn = 2000000\nt = time.perf_counter()\ntotal = 0\n"
            "for i in range(n):\n    total += i * i\nprint(n / (time.perf_counter() - t))")
    out = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint",
                          "python3.9", image, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return int(2 * float(out.strip()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--line", default="4.2")
    parser.add_argument("--image", default="", help="an image reference to bench instead of the "
                        "line's base image (whose tag another session may load over)")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--memory-mb", type=int, default=300)
    parser.add_argument("--cpu-loops", type=int, default=0, help="0: calibrate to about 2 s")
    parser.add_argument("--executors", default="LocalExecutor,CeleryExecutor")
    parser.add_argument("--limits", default="0.5:1g,1:2g,2:4g")
    parser.add_argument("--sweep", default=",".join(map(str, SWEEP)))
    parser.add_argument("--sweep-executors", default="LocalExecutor")
    parser.add_argument("--sweep-limit", default="1:2g", help="the limits of the sweep")
    parser.add_argument("--cell-timeout", type=int, default=600)
    parser.add_argument("--start-rounds", type=int, default=3)
    parser.add_argument("--probe-rounds", type=int, default=15)
    parser.add_argument("--no-start", action="store_true")
    parser.add_argument("--out", default=str(REPO / "out" / "bench-workload"))
    parser.add_argument("--keep-logs", default="")
    parser.add_argument("--plot", nargs=2, metavar=("JSON", "PNG"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plot:
        plot(json.loads(Path(args.plot[0]).read_text()), Path(args.plot[1]))
        return
    sys.path.insert(0, str(REPO))
    from tests import services

    image = args.image or image_tag(args.line)
    args.cpu_loops = args.cpu_loops or calibrate(image)
    limits = [(float(c), m) for c, m in (x.split(":") for x in args.limits.split(",") if x)]
    executors = args.executors.split(",")
    sweep = [int(p) for p in args.sweep.split(",") if p]
    cpus, memory = args.sweep_limit.split(":")
    sweep_limit = (float(cpus), memory)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.utcnow()
    print(f"{image}, {args.tasks} tasks ({args.tasks * 15 // 100} CPU-bound of "
          f"{args.cpu_loops:,} loops, {args.tasks * 5 // 100} of {args.memory_mb} MB), "
          f"load {Path('/proc/loadavg').read_text().strip()}", flush=True)
    cells: list[Cell] = []
    start_lines: list[str] = []
    with services.postgres() as pg, \
            (services.redis() if "CeleryExecutor" in executors else
             contextlib.nullcontext()) as redis:
        bench = Bench(args, image, pg, redis)
        bench.template()  # (also reads the image from disk once: the first cell is not colder)
        for executor in executors:
            for n, (cpus, memory) in enumerate(limits):
                # alternating which goes first, so that neither always meets a colder cache
                for config in ("Runtime", "Airflow")[::1 if n % 2 == 0 else -1]:
                    cells.append(bench.cell(executor, cpus, memory, config, {}))
            if executor in args.sweep_executors.split(",") and sweep:
                for p in sweep:
                    settings = {"AIRFLOW__CORE__PARALLELISM": str(p),
                                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(p)} \
                        if executor == "LocalExecutor" else \
                        {"AIRFLOW__CELERY__WORKER_CONCURRENCY": str(p)}
                    cells.append(bench.cell(executor, *sweep_limit, f"parallelism {p}",
                                            settings))
        if not args.no_start:
            start_lines = start_times(bench, 1.0, "2g", args.start_rounds)
    finished = datetime.datetime.utcnow()
    header = (f"`python tools/bench_workload.py` on {image}, {started:%Y-%m-%d %H:%M}–"
              f"{finished:%H:%M} UTC, {args.tasks} tasks, load average at the end "
              f"{Path('/proc/loadavg').read_text().split()[:3]}\n\n")
    text = header + table(cells) + "\n" + "".join(f"- {line}\n" for line in start_lines)
    (out / "workload.md").write_text(text)
    (out / "workload.json").write_text(json.dumps([asdict(c) for c in cells], indent=1))
    print()
    print(text)
    if sweep:
        write_plot(cells, out / "workload-sweep.png", sweep_limit,
                   f"{args.tasks} tasks at {sweep_limit[0]:g} CPU / {sweep_limit[1][:-1]} GiB, "
                   f"{image} ({started:%Y-%m-%d})")


if __name__ == "__main__":
    main()
