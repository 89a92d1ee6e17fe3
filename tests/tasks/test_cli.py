"""The invoke front end as a user meets it: exit codes, one-line errors, no tracebacks."""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from tests.fixtures import REPO, invoke_argv, make_project, run_invoke


@pytest.fixture
def repo_copy(tmp_path):
    dst = tmp_path / "repo"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__"))
    return dst


def assert_clean_error(proc, code):
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("filename, source, where", [
    ("BUILD", 'runtime_line(name = "4.2",, )\n', "BUILD:1:27: syntax error"),
    ("WORKSPACE", 'workspace(name = "runtime")\nx = [1,\n', "WORKSPACE:2:8: syntax error"),
    ("ui/BUILD", 'runtime_module(\n    name = "ui"\n    srcs = [],\n)\n',
     "ui/BUILD:3:5: syntax error"),
])
def test_syntax_error_is_one_line_with_location(repo_copy, filename, source, where):
    (repo_copy / filename).write_text(source)
    proc = run_invoke(repo_copy, "lock", "--check")
    assert_clean_error(proc, 2)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {where}"), proc.stderr


def test_unknown_runtime_lists_known_lines(repo_copy):
    proc = run_invoke(repo_copy, "lock", "--runtime", "9.9")
    assert_clean_error(proc, 2)
    from rules.load import project

    known = ", ".join(project.load(repo_copy).lines)
    assert f"unknown runtime line '9.9'; known lines: {known}\n" in proc.stderr


def test_bad_field_names_target_and_field(repo_copy):
    build = repo_copy / "BUILD"
    build.write_text(build.read_text().replace('name = "4.2",', 'name = "4.2",\n    lts = True,'))
    proc = run_invoke(repo_copy, "lines")
    assert_clean_error(proc, 2)
    assert 'runtime_line "4.2"' in proc.stderr and "'lts'" in proc.stderr, proc.stderr


def test_bad_support_policy_names_file_line_and_column(repo_copy):
    policy = repo_copy / "runtime" / "support.json"
    policy.write_text(policy.read_text().replace('"lts": true,', '"lts": yes,'))
    proc = run_invoke(repo_copy, "lines")
    assert_clean_error(proc, 2)
    assert "runtime/support.json:16:14: Expecting value" in proc.stderr, proc.stderr


def test_check_passes_on_committed_locks():
    proc = run_invoke(REPO, "lock", "--check")
    assert proc.returncode == 0, proc.stderr
    assert "locks are current" in proc.stdout


def test_arm64_debian_lock_check_and_bad_platforms():
    proc = run_invoke(REPO, "lock", "--platform", "linux/arm64", "--check")
    assert proc.returncode == 0, proc.stderr
    assert "the Debian lock of linux/arm64 and its cross toolchain's are current" in proc.stdout
    proc = run_invoke(REPO, "lock", "--platform", "linux/riscv64", "--check")
    assert_clean_error(proc, 2)
    assert "unknown platform 'linux/riscv64'" in proc.stderr
    proc = run_invoke(REPO, "lock", "--platform", "linux/amd64")
    assert_clean_error(proc, 2)
    assert "the main Debian lock's" in proc.stderr


@pytest.mark.parametrize("args, words", [
    (("--platform", "linux/arm64", "--load"), "--load loads the host's platform"),
    (("--platform", "all", "--remote-cache", "127.0.0.1:1/cache"),
     "--remote-cache is not used for linux/arm64"),
    (("--platform", "linux/arm64", "--push-to", "127.0.0.1:1/runtime"), "invoke push --from"),
    (("--platform", "linux/arm",), "unknown platform 'linux/arm'"),
])
def test_image_platform_choices_refused_before_any_work(tmp_path, args, words):
    out = tmp_path / "out"
    proc = run_invoke(REPO, "image", "--runtime", "4.2", *args, "--out", str(out))
    assert_clean_error(proc, 2)
    assert words in proc.stderr
    assert not out.exists()


def test_check_on_stale_lock_exits_1_with_diff(repo_copy):
    providers = repo_copy / "providers" / "BUILD"
    providers.write_text(providers.read_text().replace('"redis",', '"redis",\n    "slack",'))
    before = {p.name: p.read_bytes() for p in (repo_copy / "constraints").iterdir()}
    proc = run_invoke(repo_copy, "lock", "--check")
    assert_clean_error(proc, 1)
    from rules.load import project

    proj = project.load(REPO)
    line = next(ln for ln in proj.lines.values() if ln.providers == "//providers:airflow-2.2")
    extras = sorted(proj.provider_sets[line.providers].airflow_extras)
    old = f"apache-airflow[{','.join(extras)}]=={line.airflow}"
    new = f"apache-airflow[{','.join(sorted(extras + ['slack']))}]=={line.airflow}"
    assert f"-{old}" in proc.stderr and f"+{new}" in proc.stderr, proc.stderr
    assert {p.name: p.read_bytes() for p in (repo_copy / "constraints").iterdir()} == before


def test_unresolvable_lock_via_cli_is_clean(tmp_path):
    from tests.fixtures import make_wheel

    root = make_project(tmp_path / "p", packages=["needs310"])
    make_wheel(root / "wheels", "needs310", "1.0.0", requires_python=">=3.10")
    proc = run_invoke(root, "lock", "--no-debian")
    assert_clean_error(proc, 1)
    assert "needs310" in proc.stderr and "cannot lock Airflow 2.2.4" in proc.stderr
    assert not (root / "constraints" / "constraints-2.2.4.txt").exists()


BUSY = """
def _busy():
    n = 0
    for i in range(1000000000):
        n += i * 2
    return n

_x = _busy()
"""


def _busy_build(repo_copy) -> int:
    """Append a loop that runs for minutes to BUILD; return the line of its `for`."""
    build = repo_copy / "BUILD"
    text = build.read_text()
    build.write_text(text + BUSY)
    return len(text.splitlines()) + BUSY.splitlines().index("    for i in range(1000000000):") + 1


def test_a_long_loop_stops_at_the_budget_naming_file_and_line(repo_copy):
    line = _busy_build(repo_copy)
    started = time.monotonic()
    proc = run_invoke(repo_copy, "lines", env={"RUNTIME_EVAL_TIMEOUT": "1"}, timeout=120)
    seconds = time.monotonic() - started
    assert_clean_error(proc, 2)
    assert f"error: BUILD:{line}:5: evaluation stopped after 1 s (RUNTIME_EVAL_TIMEOUT)" \
        in proc.stderr, (proc.stderr, seconds)


def test_ctrl_c_stops_a_long_evaluation_with_130(repo_copy):
    _busy_build(repo_copy)
    env = dict(os.environ, PYTHONPATH=str(REPO), RUNTIME_EVAL_TIMEOUT="600")
    proc = subprocess.Popen(invoke_argv("lines"), cwd=repo_copy, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(3)  # invoke starts and is inside the loop
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)  # before the fix: runs for minutes
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert err.strip() == "interrupted"


@pytest.mark.parametrize("value", ["abc", "0", "-3", "inf", "nan", "1e400", "1_0", "１０",
                                   "1e-300"])
def test_a_bad_eval_budget_is_named(repo_copy, value):
    proc = run_invoke(repo_copy, "lines", env={"RUNTIME_EVAL_TIMEOUT": value})
    assert_clean_error(proc, 2)
    assert f"RUNTIME_EVAL_TIMEOUT={value!r}" in proc.stderr


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failed_lock_changes_no_file(tmp_path):
    from tests.fixtures import make_wheel

    root = make_project(tmp_path / "p")
    assert run_invoke(root, "lock", "--no-debian").returncode == 0
    # a package no Python 3.9 can install: the resolver fails
    make_wheel(root / "wheels", "needs310", "1.0.0", requires_python=">=3.10")
    providers = root / "providers" / "BUILD"
    providers.write_text(providers.read_text().replace('"otherdep"', '"otherdep", "needs310"'))
    before = _files(root)
    proc = run_invoke(root, "lock", "--no-debian")
    assert_clean_error(proc, 1)
    assert "no file was changed" in proc.stderr
    assert _files(root) == before  # the requirements.in too, and no new file


def test_a_failed_first_lock_leaves_no_new_file(tmp_path):
    from tests.fixtures import make_wheel

    root = make_project(tmp_path / "p", packages=["needs310"])
    make_wheel(root / "wheels", "needs310", "1.0.0", requires_python=">=3.10")
    before = _files(root)
    proc = run_invoke(root, "lock", "--no-debian")
    assert_clean_error(proc, 1)
    assert _files(root) == before
    assert not (root / "constraints").exists()


@pytest.mark.parametrize("edit, stale", [
    (("WORKSPACE", 'DEBIAN_MIRROR = "http://deb.debian.org/debian"',
      'DEBIAN_MIRROR = "http://mirror.invalid/debian"'), "stale Debian lock"),
    (("providers/BUILD", '"redis",', '"redis",\n    "slack",'), "stale lock(s)"),
])
def test_fetch_refuses_a_stale_lock_before_any_download(repo_copy, tmp_path, edit, stale):
    name, old, new = edit
    path = repo_copy / name
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    cache = tmp_path / "cache"
    proc = run_invoke(repo_copy, "fetch", env={"RUNTIME_CACHE": str(cache)}, timeout=300)
    assert_clean_error(proc, 1)
    assert stale in proc.stderr and "invoke lock" in proc.stderr, proc.stderr
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]


def test_a_lock_that_cannot_be_written_changes_no_file(tmp_path):
    from tests.fixtures import make_wheel

    root = make_project(tmp_path / "p")
    assert run_invoke(root, "lock", "--no-debian").returncode == 0
    # a second Airflow version whose lock must go where a file blocks the folder
    (root / "blocker").write_text("a file, not a folder\n")
    workspace = root / "WORKSPACE"
    workspace.write_text(workspace.read_text() + (
        'python_lock(\n    name = "airflow-2.2.9",\n    airflow = "2.2.9",\n'
        '    lock = "blocker/constraints-2.2.9.txt",\n'
        '    requirements_in = "constraints/requirements-2.2.9.in",\n'
        '    index_url = "",\n    find_links = ["wheels"],\n)\n'))
    build = root / "BUILD"
    build.write_text(build.read_text() + build.read_text().replace('"4.2"', '"4.3"')
                     .replace('"4.2.0"', '"4.3.0"').replace('"2.2.4"', '"2.2.9"'))
    support = root / "runtime" / "support.json"
    support.write_text(support.read_text().replace(
        '"4.2": {', '"4.3": {"lts": false, "supported_until": "2030-01-01"}, "4.2": {'))
    make_wheel(root / "wheels", "apache-airflow", "2.2.9", requires=["fakedep>=1"],
               extras={"amazon": ["apache-airflow-providers-amazon"]})
    providers = root / "providers" / "BUILD"  # 2.2.4's lock must move too
    providers.write_text(providers.read_text().replace('"otherdep"', '"otherdep", "fakedep"'))
    before = _files(root)
    proc = run_invoke(root, "lock", "--no-debian")
    assert_clean_error(proc, 2)
    assert "blocker/constraints-2.2.9.txt" in proc.stderr and "no file was changed" in \
        proc.stderr, proc.stderr
    assert _files(root) == before


@pytest.mark.parametrize("content, message", [
    (None, "not a regular file"),  # a FIFO: reading it would block for ever
    (b"runtime_line(\xff\xfe)\n", "not UTF-8 text"),
])
def test_a_build_file_that_is_not_text_is_one_line(repo_copy, content, message):
    build = repo_copy / "providers" / "BUILD"
    build.unlink()
    if content is None:
        os.mkfifo(build)
    else:
        build.write_bytes(content)
    proc = run_invoke(repo_copy, "lines", timeout=60)
    assert_clean_error(proc, 2)
    assert f"providers/BUILD:1:1: {message}" in proc.stderr, proc.stderr


def test_a_broken_debian_lock_is_one_line(repo_copy):
    lock = repo_copy / "constraints" / "debian-bullseye.lock.json"
    lock.write_text("{broken\n")
    proc = run_invoke(repo_copy, "lock", "--check")
    assert_clean_error(proc, 2)
    assert "constraints/debian-bullseye.lock.json:1:2:" in proc.stderr, proc.stderr


@pytest.mark.parametrize("name, edit, stale", [
    ("constraints/constraints-2.2.4.txt", lambda t: re.sub(r"\naiofiles==\S+", "\naiofiles==0.7.0",
                                                           t, count=1), "edited by hand"),
    ("constraints/debian-bullseye.lock.json",
     lambda t: t.replace('"name": "adduser",\n      "version": "', '"name": "adduser",\n'
                         '      "version": "9', 1), "edited by hand"),
])
def test_a_lock_edited_by_hand_is_stale_and_fetch_refuses_it(repo_copy, tmp_path, name, edit,
                                                             stale):
    path = repo_copy / name
    edited = edit(path.read_text())
    assert edited != path.read_text()
    path.write_text(edited)
    proc = run_invoke(repo_copy, "lock", "--check")
    assert_clean_error(proc, 1)
    assert stale in proc.stderr, proc.stderr
    cache = tmp_path / "cache"
    proc = run_invoke(repo_copy, "fetch", env={"RUNTIME_CACHE": str(cache)}, timeout=300)
    assert_clean_error(proc, 1)
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]
