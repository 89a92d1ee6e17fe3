"""The runtime module's concurrency defaults, offline: cgroup v1/v2 files in a temp folder
stand in for the kernel's, and the formula, the user's overrides and bad input are checked.
(The same code runs in real containers with --cpus/--memory in acceptance/test_runtime.py.)"""


import pytest


from astro_runtime import concurrency, limits

GIB = 1 << 30


def v2(root, cpu="max 100000", memory="max"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "cpu.max").write_text(cpu + "\n")
    (root / "memory.max").write_text(memory + "\n")
    return root


def v1(root, quota="-1", period="100000", memory=str(9223372036854771712)):
    (root / "cpu,cpuacct").mkdir(parents=True)
    (root / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text(quota + "\n")
    (root / "cpu,cpuacct" / "cpu.cfs_period_us").write_text(period + "\n")
    (root / "memory").mkdir()
    (root / "memory" / "memory.limit_in_bytes").write_text(memory + "\n")
    return root


def test_cgroup_v2_quota_and_memory(tmp_path):
    lim = limits.detect({"RUNTIME_CGROUP_ROOT": str(v2(tmp_path, "150000 100000",
                                                          str(2 * GIB)))})
    assert (lim.cpus, lim.memory_bytes, lim.cpu_source, lim.memory_source) == \
        (1.5, 2 * GIB, "cgroup v2", "cgroup v2")


def test_cgroup_v1_quota_and_memory(tmp_path):
    lim = limits.detect({"RUNTIME_CGROUP_ROOT": str(v1(tmp_path, "50000", "100000",
                                                          str(GIB)))})
    assert (lim.cpus, lim.memory_bytes, lim.cpu_source) == (0.5, GIB, "cgroup v1")


def test_no_limits_fall_back_to_the_host(tmp_path):
    lim = limits.detect({"RUNTIME_CGROUP_ROOT": str(v1(tmp_path))})
    assert lim.cpu_source == lim.memory_source == "host"
    assert lim.cpus >= 1 and lim.memory_bytes > 256 * (1 << 20)


@pytest.mark.parametrize("make, message", [
    (lambda p: v2(p, memory="-5"), "memory.max holds '-5': not a positive limit"),
    (lambda p: v2(p, cpu="lots 100000"), "cpu.max holds 'lots', not a number"),
    (lambda p: v1(p, memory="-1"), "memory.limit_in_bytes holds '-1': not a positive limit"),
    (lambda p: v1(p, quota="0"), "cpu.cfs_quota_us holds '0': not a quota"),
])
def test_nonsense_limit_files_are_reported(tmp_path, make, message):
    with pytest.raises(limits.LimitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        limits.detect({"RUNTIME_CGROUP_ROOT": str(make(tmp_path))})


def chosen(env, cpus, gib):
    lim = limits.Limits(cpus, int(gib * GIB), "test", "test")
    choices, facts = concurrency.choose({"AIRFLOW_VERSION": "2.2.4", "AIRFLOW_HOME": "/nonexistent",
                                         **env}, lim)
    return {c.setting.key: (c.value, c.source) for c in choices}, facts


@pytest.mark.parametrize("cpus, gib, slots, per_dag, celery, web, parsing", [
    (0.25, 0.5, 1, 1, 1, 1, 1),
    (0.5, 0.75, 1, 1, 1, 1, 1),
    (0.5, 1, 4, 4, 3, 2, 1),
    (1, 1, 4, 4, 3, 2, 1),
    (1, 2, 16, 16, 11, 2, 1),
    (0.5, 2, 8, 8, 8, 2, 1),
    (2, 4, 32, 16, 27, 4, 2),
    (4, 8, 64, 16, 59, 4, 4),
    (64, 256, 64, 16, 64, 4, 8),
])
def test_the_formula_of_the_readme(cpus, gib, slots, per_dag, celery, web, parsing):
    got, facts = chosen({"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}, cpus, gib)
    assert (facts["task_slots"], facts["celery_task_slots"]) == (slots, celery)
    assert got["parallelism"] == (str(slots), "computed")
    assert got["max_active_tasks_per_dag"] == (str(per_dag), "computed")
    assert got["worker_concurrency"] == (str(celery), "computed")
    assert got["workers"] == (str(web), "computed")
    assert got["parsing_processes"] == (str(parsing), "computed")


def test_remote_executors_leave_parallelism_to_airflow():
    got, _ = chosen({"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}, 2, 4)
    assert got["parallelism"] == (None, "Airflow default")
    assert got["worker_concurrency"] == ("27", "computed")


def test_airflow_2_1_names_dag_concurrency():
    lim = limits.Limits(2, 4 * GIB, "test", "test")
    choices, _ = concurrency.choose({"AIRFLOW_VERSION": "2.1.1", "AIRFLOW_HOME": "/nonexistent",
                                     "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}, lim)
    assert "export AIRFLOW__CORE__DAG_CONCURRENCY=16\n" in concurrency.exports(choices)
    assert "export AIRFLOW__CORE__PARALLELISM=32\n" in concurrency.exports(choices)


def test_what_the_user_set_wins(tmp_path):
    (tmp_path / "airflow.cfg").write_text("[core]\nparallelism = 3\n[webserver]\nworkers = 4\n")
    got, _ = chosen({"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                     "AIRFLOW__CORE__DAG_CONCURRENCY": "5",
                     "AIRFLOW__CELERY__WORKER_CONCURRENCY_CMD": "echo 9"}, 2, 4)
    assert got["parallelism"] == ("3", "user (airflow.cfg)")
    assert got["max_active_tasks_per_dag"] == ("5", "user (env AIRFLOW__CORE__DAG_CONCURRENCY)")
    assert got["worker_concurrency"][1] == "user (env AIRFLOW__CELERY__WORKER_CONCURRENCY_CMD)"
    # no airflow.cfg defaults on this host: any value in the file counts as the user's
    assert got["workers"] == ("4", "user (airflow.cfg)")


@pytest.mark.parametrize("env, message", [
    ({"AIRFLOW__CORE__PARALLELISM": "abc"}, "AIRFLOW__CORE__PARALLELISM='abc' is not a whole"),
    ({"AIRFLOW__WEBSERVER__WORKERS": "0"}, "AIRFLOW__WEBSERVER__WORKERS='0' is below 1"),
])
def test_nonsense_overrides_are_reported(env, message):
    with pytest.raises(concurrency.ConfigError, match=message):
        chosen(env, 2, 4)


def test_our_own_exports_are_not_taken_for_the_users():
    lim = limits.Limits(2, 4 * GIB, "test", "test")
    env = {"AIRFLOW_VERSION": "2.2.4", "AIRFLOW_HOME": "/nonexistent",
           "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
    first, _ = concurrency.choose(env, lim)
    exported = dict(line.removeprefix("export ").split("=", 1)
                    for line in concurrency.exports(first).splitlines())
    assert exported["AIRFLOW__CORE__PARALLELISM"] == "32"
    again, _ = concurrency.choose({**env, **{k: v.strip("'") for k, v in exported.items()}},
                                  limits.Limits(1, 2 * GIB, "test", "test"))
    assert {c.setting.key: c.source for c in again}["parallelism"] == "computed"


def test_high_availability_settings_unless_the_user_set_them():
    got, _ = chosen({"AIRFLOW__CORE__SQL_ALCHEMY_POOL_RECYCLE": "600"}, 2, 4)
    assert got["use_row_level_locking"] == ("True", "computed")
    assert got["orphaned_tasks_check_interval"] == ("60", "computed")
    assert got["visibility_timeout"] == ("21600", "computed")
    assert got["sql_alchemy_pool_recycle"] == \
        ("600", "user (env AIRFLOW__CORE__SQL_ALCHEMY_POOL_RECYCLE)")


def test_the_switch_leaves_concurrency_to_airflow():
    got, facts = chosen({"AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                         "RUNTIME_CONCURRENCY_DEFAULTS": "off",
                         "AIRFLOW__WEBSERVER__WORKERS": "3"}, 1, 2)
    for key in ("parallelism", "max_active_tasks_per_dag", "worker_concurrency",
                "parsing_processes"):
        assert got[key] == (None, "Airflow default"), key
    assert got["workers"] == ("3", "user (env AIRFLOW__WEBSERVER__WORKERS)")
    assert got["use_row_level_locking"] == ("True", "computed")  # high availability stays
    assert facts["concurrency_defaults"] == "off"
    choices, _ = concurrency.choose({"AIRFLOW_VERSION": "2.2.4", "AIRFLOW_HOME": "/nonexistent",
                                     "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                                     "RUNTIME_CONCURRENCY_DEFAULTS": "off"},
                                    limits.Limits(1, 2 * GIB, "test", "test"))
    assert "PARALLELISM" not in concurrency.exports(choices)


def test_a_nonsense_switch_is_reported():
    with pytest.raises(concurrency.ConfigError, match="RUNTIME_CONCURRENCY_DEFAULTS='maybe'"):
        chosen({"RUNTIME_CONCURRENCY_DEFAULTS": "maybe"}, 1, 2)


@pytest.mark.parametrize("cpus, gib, slots, celery", [
    (0.5, 1, 1, 1),
    (1, 2, 6, 5),
    (2, 4, 17, 13),
])
def test_airflow_2_3_takes_more_memory_a_slot(cpus, gib, slots, celery):
    lim = limits.Limits(cpus, int(gib * GIB), "test", "test")
    choices, facts = concurrency.choose({"AIRFLOW_VERSION": "2.3.0", "AIRFLOW_HOME": "/nonexistent",
                                         "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}, lim)
    assert (facts["task_slots"], facts["celery_task_slots"]) == (slots, celery)
