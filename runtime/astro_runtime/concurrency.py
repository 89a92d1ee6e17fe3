"""Concurrency defaults computed at container start from the container's real limits.

A value the user set (an AIRFLOW__SECTION__KEY variable, its _CMD/_SECRET form, or airflow.cfg
with a value other than Airflow's default) always wins, and is checked: a nonsense value stops
the container with a clear message instead of hiding behind a default.

    C = CPUs (cgroup quota, else the CPUs we may run on), M = memory in GiB (cgroup limit, else
    the host's RAM), task slots S = clamp(min(floor(16 C), floor((M - 640 MiB) / 85 MiB)), 1, 64)
    and for a Celery worker's own processes W = the same with 128 MiB a slot; from Airflow 2.3,
    768 MiB reserved, 192 MiB a task slot, 256 MiB a Celery slot
    (measured basis: docs/benchmarks.md, "concurrency defaults under container limits")

    parallelism                 S            (LocalExecutor; other executors run tasks elsewhere)
    max_active_tasks_per_dag    min(16, S)   (dag_concurrency on Airflow 2.1; LocalExecutor)
    default_pool_task_slot_count S           (LocalExecutor; used when `db init` makes the pool)
    celery worker_concurrency   W            (the worker's own container limits)
    webserver workers           clamp(min(2 ceil(C), floor(M / 0.5)), 1, 4)
    scheduler parsing_processes clamp(ceil(C), 1, 8)

`python -m astro_runtime.concurrency` prints `export` lines for the entrypoint; `runtime-info`
shows the choices and why. RUNTIME_CONCURRENCY_DEFAULTS=off leaves the six options above to
Airflow (its own defaults: parallelism 32, ...), for comparisons; the high-availability settings
stay.
"""

from __future__ import annotations

import configparser
import math
import os
import shlex
import sys
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

from astro_runtime import limits as limits_mod

LOCAL_EXECUTORS = ("LocalExecutor", "SequentialExecutor", "DebugExecutor")
# the variables the entrypoint exported from our own choices (not the user's)
COMPUTED_VARIABLE = "RUNTIME_COMPUTED_SETTINGS"
SWITCH = "RUNTIME_CONCURRENCY_DEFAULTS"  # on (default) | off
# the task slot formula, fitted to DAG runs under container limits (docs/benchmarks.md): most
# tasks wait more than they compute, and a 1 CPU container ran a DAG of mostly short tasks
# fastest with 16 at once; a running task cost about 45 MiB with the LocalExecutor, so 85 MiB a
# slot, after 640 MiB for the scheduler (or Celery worker) itself and one big task. A Celery
# slot also holds a pool process: 69-100 MiB measured, and 16 of them OOMed in 2 GiB: 128 MiB.
# Airflow 2.3's task processes are bigger: 161 MiB a running task measured (LocalExecutor,
# 1 CPU / 2 GiB: parallelism 2 → 4, 1073 → 1395 MiB), and with 85 MiB a slot 16 tasks in 2 GiB
# were OOM-killed; its Celery slots are not measured yet (a pool process more, as on 2.2)
CPU_SLOTS = 16
MEMORY = {(2, 0): (640, 85, 128), (2, 3): (768, 192, 256)}  # first version: reserved, slot MiB


def memory_model(version: tuple[int, int]) -> tuple[int, int, int]:
    """(MiB reserved, MiB a task slot, MiB a Celery worker slot) for this Airflow version."""
    return MEMORY[max(v for v in MEMORY if v <= version)]


class ConfigError(Exception):
    pass


@dataclass
class Setting:
    section: str
    key: str  # the name this Airflow version reads
    aliases: tuple[str, ...]  # older or newer names of the same option
    minimum: int


@dataclass
class Choice:
    setting: Setting
    value: str | None  # None: left to Airflow
    source: str  # "user (env ...)", "user (airflow.cfg)", "computed", "Airflow default"
    why: str

    @property
    def env_name(self) -> str:
        return f"AIRFLOW__{self.setting.section.upper()}__{self.setting.key.upper()}"

    def as_dict(self) -> dict:
        return {"option": f"{self.setting.section}.{self.setting.key}", "value": self.value,
                "source": self.source, "why": self.why}


# Settings that make two or more schedulers safe on PostgreSQL/MySQL, set unless the user did:
# (section, key, value, why). Pool options live in [database] from Airflow 2.3.
HIGH_AVAILABILITY = [
    ("scheduler", "use_row_level_locking", "True",
     "schedulers take rows with SELECT ... FOR UPDATE SKIP LOCKED: two never queue one task"),
    ("database|core", "sql_alchemy_pool_pre_ping", "True",
     "a pooled connection is tested before use: a database restart or failover is survived"),
    ("database|core", "sql_alchemy_pool_recycle", "1800",
     "connections are renewed every 30 min, before proxies and load balancers drop them"),
    ("scheduler", "scheduler_health_check_threshold", "30",
     "a scheduler silent for 30 s counts as dead"),
    ("scheduler", "orphaned_tasks_check_interval", "60",
     "the tasks of a dead scheduler are adopted within a minute (Airflow's default: 5)"),
    ("celery_broker_transport_options", "visibility_timeout", "21600",
     "a Celery task taken by a worker that died goes back to the queue after 6 h, "
     "never sooner than a long task could run (Airflow acks Celery tasks late)"),
]


def airflow_version(env=os.environ) -> tuple[int, int]:
    raw = env.get("AIRFLOW_VERSION") or metadata.version("apache-airflow")
    major, minor = raw.split(".")[:2]
    return int(major), int(minor)


def settings(version: tuple[int, int]) -> dict[str, Setting]:
    per_dag = "dag_concurrency" if version < (2, 2) else "max_active_tasks_per_dag"
    return {
        "parallelism": Setting("core", "parallelism", (), 0),
        "per_dag": Setting("core", per_dag, ("dag_concurrency", "max_active_tasks_per_dag"), 1),
        "pool": Setting("core", "default_pool_task_slot_count", (), 1),
        "worker": Setting("celery", "worker_concurrency", (), 1),
        "webserver": Setting("webserver", "workers", (), 1),
        "parsing": Setting("scheduler", "parsing_processes", ("max_threads",), 1),
    }


def _defaults() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    spec = util.find_spec("airflow")
    if spec and spec.origin:
        path = Path(spec.origin).parent / "config_templates" / "default_airflow.cfg"
        if path.exists():
            parser.read(path)
    return parser


def _user_config(env) -> tuple[configparser.ConfigParser, str]:
    home = env.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
    path = env.get("AIRFLOW_CONFIG", os.path.join(home, "airflow.cfg"))
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(path)
    except configparser.Error as error:
        raise ConfigError(f"{path} cannot be read: {error}") from None
    return parser, path


def _checked(name: str, raw: str, minimum: int) -> str:
    text = raw.strip()
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} is below {minimum}")
    return text


def user_value(setting: Setting, env, user_cfg, cfg_path, defaults,
               number: bool = True) -> tuple[str, str] | None:
    """(value, where) of an option the user set (a number: checked); None when they did not."""
    def checked(name, raw):
        return _checked(name, raw, setting.minimum) if number else raw.strip()

    ours = set(env.get(COMPUTED_VARIABLE, "").split())
    for key in (setting.key, *setting.aliases):
        name = f"AIRFLOW__{setting.section.upper()}__{key.upper()}"
        if name in env and name not in ours:
            return checked(name, env[name]), f"user (env {name})"
        for suffix in ("_CMD", "_SECRET"):
            if name + suffix in env:
                return "(from " + name + suffix + ")", f"user (env {name}{suffix})"
    for key in (setting.key, *setting.aliases):
        if user_cfg.has_option(setting.section, key):
            value = user_cfg.get(setting.section, key)
            default = defaults.get(setting.section, key, fallback=None)
            if default is None or value.strip() != default.strip():
                where = f"{cfg_path} [{setting.section}] {key}"
                return checked(where, value), "user (airflow.cfg)"
    return None


def executor(env, user_cfg) -> str:
    value = env.get("AIRFLOW__CORE__EXECUTOR") or user_cfg.get("core", "executor",
                                                                fallback="SequentialExecutor")
    return value.strip().rsplit(".", 1)[-1]


def defaults_on(env) -> bool:
    raw = env.get(SWITCH, "on").strip().lower()
    if raw in ("on", "true", "1", "yes", ""):
        return True
    if raw in ("off", "false", "0", "no"):
        return False
    raise ConfigError(f"{SWITCH}={env[SWITCH]!r} is neither on nor off")


def task_slots(lim: limits_mod.Limits, slot_mib: int = 85, reserved_mib: int = 640) -> int:
    by_cpu = math.floor(CPU_SLOTS * lim.cpus + 1e-9)
    by_memory = math.floor((lim.memory_bytes / (1 << 20) - reserved_mib) / slot_mib + 1e-9)
    return max(1, min(by_cpu, by_memory, 64))


def choose(env=os.environ, lim: limits_mod.Limits | None = None) -> tuple[list[Choice], dict]:
    lim = lim or limits_mod.detect(env)
    version = airflow_version(env)
    table = settings(version)
    defaults = _defaults()
    user_cfg, cfg_path = _user_config(env)
    kind = executor(env, user_cfg)
    local = kind in LOCAL_EXECUTORS
    enabled = defaults_on(env)
    reserved, slot_mib, celery_mib = memory_model(version)
    slots = task_slots(lim, slot_mib, reserved)
    cpus_up = limits_mod.whole_cpus(lim)
    s_why = (f"S = min(floor({CPU_SLOTS} × {lim.cpus:g} CPUs), floor(({lim.memory_bytes >> 20} MiB"
             f" - {reserved}) / {slot_mib})) clamped to 1..64 = {slots}")
    celery_slots = task_slots(lim, celery_mib, reserved)
    w_why = (f"W = min(floor({CPU_SLOTS} × {lim.cpus:g} CPUs), floor(({lim.memory_bytes >> 20} MiB"
             f" - {reserved}) / {celery_mib})) clamped to 1..64 = {celery_slots}")
    computed = {
        "parallelism": (slots, s_why) if local else
        (None, f"{kind} runs tasks outside this container"),
        "per_dag": (min(16, slots), f"min(16, S) = {min(16, slots)}") if local else
        (None, f"{kind} runs tasks outside this container"),
        "pool": (slots, s_why) if local else
        (None, f"{kind} runs tasks outside this container"),
        "worker": (celery_slots, w_why),
        "webserver": (max(1, min(4, 2 * cpus_up, math.floor(lim.memory_gib / 0.5 + 1e-9))),
                      f"min(2 × {cpus_up} CPUs, {lim.memory_gib:.2f} GiB / 0.5) clamped to 1..4"),
        "parsing": (max(1, min(8, cpus_up)), f"{cpus_up} CPUs clamped to 1..8"),
    }
    choices = []
    for name, setting in table.items():
        if defaults.sections() and not defaults.has_option(setting.section, setting.key):
            continue  # this Airflow version has no such option
        found = user_value(setting, env, user_cfg, cfg_path, defaults)
        if found:
            choices.append(Choice(setting, found[0], found[1], "set by the user: kept"))
            continue
        value, why = computed[name] if enabled else (None, f"{SWITCH}=off")
        choices.append(Choice(setting, None if value is None else str(value),
                              "computed" if value is not None else "Airflow default", why))
    for sections, key, value, why in HIGH_AVAILABILITY:
        candidates = sections.split("|")
        section = next((c for c in candidates if defaults.has_option(c, key)), candidates[-1])
        # the user may name the option under its old section too
        found = next(filter(None, (user_value(Setting(c, key, (), 0), env, user_cfg, cfg_path,
                                                  defaults, number=False)
                                   for c in candidates)), None)
        if found:
            choices.append(Choice(Setting(section, key, (), 0), found[0], found[1],
                                  "set by the user: kept"))
        else:
            choices.append(Choice(Setting(section, key, (), 0), value, "computed",
                                  f"high availability: {why}"))
    facts = {"executor": kind, "task_slots": slots, "celery_task_slots": celery_slots,
             "limits": lim.as_dict(),
             "concurrency_defaults": "on" if enabled else "off"}
    return choices, facts


def exports(choices: list[Choice]) -> str:
    computed = [c for c in choices if c.source == "computed"]
    names = " ".join(c.env_name for c in computed)
    return "".join(f"export {c.env_name}={shlex.quote(c.value)}\n" for c in computed) + \
        f"export {COMPUTED_VARIABLE}={shlex.quote(names)}\n"


def main(argv: list[str]) -> int:
    try:
        choices, _ = choose()
    except (ConfigError, limits_mod.LimitError) as error:
        print(f"runtime: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(exports(choices))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
