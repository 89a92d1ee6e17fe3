"""`invoke image` end to end for line 4.2, both flavors: reproducible across caches and
environments, offline, cached per layer, safe against corruption, kill -9 and concurrency, and
runnable in a real Docker engine. Needs root (chroot, mmdebstrap), the network once (fetch)
and a Docker engine (DOCKER_HOST; `./dev test` starts one)."""

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from rules.fetch import locked_inputs as fetching
from rules.graph import action_cache
from rules.image import build as image
from rules.image import policy
from rules.load import project
from tests.fixtures import REPO, invoke_argv, run_invoke
from rules.common.cache import default_cache

pytestmark = pytest.mark.slow
DOWNLOADS = default_cache()
VERSION = project.load(REPO).lines["4.2"].version
IMG = project.load(REPO).image(project.load(REPO).lines["4.2"])  # runtime/BUILD's policy
FLAVORS = policy.flavors(IMG)  # onbuild, base
TAGS = tuple(policy.tag(IMG, VERSION, f) for f in FLAVORS)  # 4.2.1, 4.2.1-base
# the same manifests as TAGS, in that order: 4.2, 4.2-base
FLOATING = tuple(t for f in FLAVORS for t in policy.floating_tags(IMG, VERSION, f))
ONBUILD, BASE = TAGS
AIRFLOW = project.load(REPO).airflow_version("2.2.4")  # upstream's, or the patched wheel's


def fresh_cache(path: Path) -> Path:
    """A cache that shares only the downloaded inputs: every build action runs again."""
    return fetching.cache_of_fetched(DOWNLOADS, path, kinds=("file choice",))


def checkout_copy(path: Path) -> Path:
    """The same commit and work tree at another path (git metadata included)."""
    shutil.copytree(REPO, path, symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", "out", "__pycache__"))
    return path


def digests(out: Path) -> dict[str, str]:
    index = json.loads((out / "index.json").read_text())
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
            for m in index["manifests"] if "artifactType" not in m}  # (not the SBOMs)


def layer_digests(out: Path, tag: str) -> list[str]:
    manifest = json.loads((out / "manifest.json").read_text())
    ref = policy.reference(IMG, tag)
    return [entry["Layers"] for entry in manifest if ref in entry["RepoTags"]][0]


def build_cli(cwd: Path, cache: Path, out: Path, args=(), **kw):
    return run_invoke(cwd, "image", "--runtime", "4.2", "--out", str(out), *args,
                      env={"RUNTIME_CACHE": str(cache), **kw.pop("env", {})}, **kw)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    base = tmp_path_factory.mktemp("image")
    proc = run_invoke(REPO, "fetch", "--runtime", "4.2")
    assert proc.returncode == 0, proc.stderr
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def build_a(work):
    cache, out = fresh_cache(work / "cache-a"), work / "out-a"
    proc = build_cli(REPO, cache, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the Debian root was made once (a tree of the cache: the sdists of 2.2.4 are built in
    # it); the base layer's record keeps the file of it the config layer reads
    assert len(list((cache / "trees" / "debian-root").iterdir())) == 1
    records = [action_cache.read(cache, p.stem) for p in (cache / "actions").glob("*.json")]
    base = [r for r in records if r.kind == "layer" and r.label == "debian base"]
    assert len(base) == 1 and "root:x:0:0" in base[0].values["etc/passwd"]
    return cache, out


def test_both_flavors_are_written_as_an_oci_layout(build_a):
    _, out = build_a
    tagged = digests(out)
    assert set(tagged) == set(TAGS + FLOATING)
    assert [tagged[t] for t in FLOATING] == [tagged[t] for t in TAGS]
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    for tag in TAGS:
        for blob in layer_digests(out, tag):
            assert (out / blob).is_file()
    configs = {e["RepoTags"][0]: json.loads((out / e["Config"]).read_text())
               for e in json.loads((out / "manifest.json").read_text())}
    onbuild, base = configs[policy.reference(IMG, ONBUILD)]["config"], \
        configs[policy.reference(IMG, BASE)]["config"]
    assert "OnBuild" not in base and any("requirements.txt" in t for t in onbuild["OnBuild"])
    assert onbuild["User"] == "astro" and onbuild["WorkingDir"] == "/usr/local/airflow"
    assert f"ASTRONOMER_RUNTIME_VERSION={VERSION}" in onbuild["Env"]
    assert onbuild["Labels"]["io.astronomer.docker.runtime.version"] == VERSION
    assert configs[policy.reference(IMG, ONBUILD)]["created"] == "2022-03-02T00:00:00Z"
    assert layer_digests(out, ONBUILD) == layer_digests(out, BASE)
    assert len(layer_digests(out, ONBUILD)) >= 10  # base, python, airflow, providers, modules


def test_offline_build_elsewhere_gives_the_same_digests(build_a, work):
    """Other cache, output folder, checkout path and working directory, umask, TZ, wall clock;
    and no network at all (a new network namespace)."""
    _, out_a = build_a
    checkout = checkout_copy(work / "checkout-b")
    cache, out = fresh_cache(work / "cache-b"), work / "elsewhere" / "out-b"
    proc = build_cli(checkout / "ui", cache, out, umask=0o077, prefix=("unshare", "-n"),
                     env={"TZ": "Pacific/Kiritimati", "LC_ALL": "C"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert digests(out) == digests(out_a)
    shutil.rmtree(cache)


def test_noop_rebuild_is_all_cache_hits(build_a, work):
    cache, out_a = build_a
    result = image.build(project.load(REPO), "4.2", FLAVORS, work / "out-noop", cache)
    assert all(step.hit for step in result.steps)
    assert {tag: i.digest for i in result.images for tag in i.tags} == digests(out_a)


def test_editing_one_module_changes_exactly_one_layer(build_a, work):
    cache, out_a = build_a
    checkout = checkout_copy(work / "checkout-edit")
    source = checkout / "ui" / "runtime_ui" / "__init__.py"
    source.write_text(source.read_text() + "\nEDITED = True\n")
    result = image.build(project.load(checkout), "4.2", ("base",), work / "out-edit", cache)
    assert [s.name for s in result.steps if not s.hit] == ["module ui"]
    before = layer_digests(out_a, BASE)
    after = [s.layer.digest for s in result.steps]
    changed = [i for i, (x, y) in enumerate(zip(before, after))
               if x[len("blobs/sha256/"):] != y[7:]]
    assert len(before) == len(after) and len(changed) == 1
    # --explain: the one action that ran, and the one input of it that changed
    assert result.explained == [
        "module ui: ui/runtime_ui/__init__.py as site/runtime_ui/__init__.py changed"]


def test_graph_lists_every_action_and_explain_says_why(build_a, work):
    """`invoke graph` prints the actions without running any; `invoke image --explain` says
    which inputs of each action that ran changed since the last build of the line."""
    cache, _ = build_a
    proc = run_invoke(REPO, "graph", "--runtime", "4.2", "--inputs",
                      env={"RUNTIME_CACHE": str(cache), "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    labels = [s.name for s in image.build(project.load(REPO), "4.2", ("base",),
                                          work / "out-graph", cache).steps]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("│")]
    for label in labels:
        assert any(f" {label} " in row and " yes " in row for row in rows), (label, rows)
    kinds = {row.split("│")[1].strip() for row in rows}
    assert {"layer", "debian root", "python root", "sdist wheel", "patched wheel",
            "package tree"} <= kinds
    assert "    ui/runtime_ui/footer.py as site/runtime_ui/footer.py = " in proc.stdout
    checkout = checkout_copy(work / "checkout-explain")
    footer = checkout / "ui" / "runtime_ui" / "footer.py"
    footer.write_text(footer.read_text() + "\n# explained\n")
    proc = build_cli(checkout, cache, work / "out-explain", args=("--explain",))
    assert proc.returncode == 0, proc.stderr
    assert "explain: 1 action(s) ran" in proc.stdout, proc.stdout
    assert "  module ui: ui/runtime_ui/footer.py as site/runtime_ui/footer.py changed" \
        in proc.stdout, proc.stdout
    proc = build_cli(checkout, cache, work / "out-explain", args=("--explain",))
    assert "explain: every action was in the cache" in proc.stdout, proc.stdout


def test_a_new_version_rebuilds_only_the_config_without_a_debian_root(build_a, work,
                                                                     monkeypatch):
    """The config layer reads /etc/passwd of the Debian root: a later build takes it from the
    facts saved when the root was made, and never makes the root again."""
    from rules.debian import debian_rootfs

    cache, out_a = build_a
    checkout = checkout_copy(work / "checkout-version")
    build_file = checkout / "BUILD"
    build_file.write_text(build_file.read_text().replace(f'version = "{VERSION}"',
                                                         'version = "4.2.99"', 1))

    def no_root(*args, **kw):
        raise AssertionError("a Debian root was made")

    monkeypatch.setattr(debian_rootfs, "made", no_root)
    result = image.build(project.load(checkout), "4.2", ("base",), work / "out-version", cache)
    assert [s.name for s in result.steps if not s.hit] == ["config"]
    assert result.images[0].tags[0] == policy.tag(IMG, "4.2.99", "base")
    before = layer_digests(out_a, BASE)
    after = [f"blobs/sha256/{s.layer.digest[7:]}" for s in result.steps]
    assert before[:-1] == after[:-1] and before[-1] != after[-1]


SAMPLE = """\
import typing
CONSTANTS = {"a", "b", frozenset({1, 2}), 3.5, b"x"}
def f(x: typing.Any = ("k", 1)) -> str:
    return f"{x!r:>10}" if x in {"a", "b", "c"} else "".join(sorted({"z", "y"}))
class C:
    lookup = {i: str(i) for i in range(3)}
"""


def test_python_root_compiles_the_bytes_of_the_full_root(build_a, work):
    """Python layers are byte-compiled in the small python root (while mmdebstrap runs): its
    .pyc files must be the very bytes the full Debian root's python3.9 writes, and compiling
    must not write into the root (.pyc files written there by imports made the bytes depend on
    which process wrote them first)."""
    from rules.debian import debian_rootfs, python_root
    from rules.python import wheel_install

    cache, _ = build_a
    proj = project.load(REPO)
    roots = {"full": debian_rootfs.build(proj, cache, image.shared_epoch(proj, proj.line("4.2"))),
             "python": python_root.build(proj, cache)}
    assert sum(f.stat().st_size for f in roots["python"].rglob("*") if f.is_file()) < 60e6
    blob, filename, _ = image.wheels_for(proj, "2.2.4", image.Inputs(proj, cache, 0))["pendulum"]
    python_files = sorted(roots["python"].rglob("*"))
    assert any(f.suffix == ".pyc" for f in python_files)  # its standard library, compiled once
    compiled = {}
    for name, root in roots.items():
        trees = work / f"pyc-{name}"
        trees.mkdir()
        tree = wheel_install._unpack(blob, filename, trees, "pendulum", "pendulum").rename(
            trees / "tree")
        (tree / "site" / "sample.py").write_text(SAMPLE)
        wheel_install.compile_trees(root, [tree])
        compiled[name] = {str(f.relative_to(trees)): f.read_bytes()
                          for f in sorted(trees.rglob("*.pyc"))}
        shutil.rmtree(trees)
    assert len(compiled["python"]) > 50 and "tree/site/__pycache__/sample.cpython-39.pyc" in \
        compiled["python"]
    assert compiled["python"] == compiled["full"]
    assert sorted(roots["python"].rglob("*")) == python_files  # compiling never writes to it


def test_corrupted_cached_input_is_named_and_nothing_is_written(work):
    cache = work / "cache-corrupt"
    (cache / "cas" / "sha256").mkdir(parents=True)
    fetching.copy_records(DOWNLOADS, cache, ("file choice",))
    for blob in (DOWNLOADS / "cas" / "sha256").glob("*/*"):
        (cache / "cas" / "sha256" / blob.parent.name).mkdir(exist_ok=True)
        (cache / "cas" / "sha256" / blob.parent.name / blob.name).symlink_to(blob)
    debian = json.loads((REPO / "constraints" / "debian-bullseye.lock.json").read_text())
    victim = next(p for p in debian["packages"] if p["name"] == "libpq5")
    target = cache / "cas" / "sha256" / victim["sha256"][:2] / victim["sha256"]
    target.unlink()
    target.write_bytes(b"not a deb")
    out = work / "out-corrupt"
    proc = build_cli(REPO, cache, out)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert victim["filename"] in proc.stderr
    assert f"expected {victim['sha256']}" in proc.stderr
    assert "got 0f" in proc.stderr or "got " in proc.stderr
    assert not out.exists()
    shutil.rmtree(cache)


def test_cold_cache_without_network_says_run_fetch(work):
    cache = work / "cache-empty"
    cache.mkdir()
    proc = build_cli(REPO, cache, work / "out-cold", prefix=("unshare", "-n"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "run `invoke fetch`" in lines[0], proc.stderr
    assert not (work / "out-cold").exists()


def test_builds_killed_at_random_points_then_succeed_with_same_digest(build_a, work):
    _, out_a = build_a
    cache = fresh_cache(work / "cache-kill")
    rng = random.Random(4.2)
    env = dict(os.environ, PYTHONPATH=str(REPO), RUNTIME_CACHE=str(cache))
    for _attempt in range(3):
        proc = subprocess.Popen(invoke_argv("image", "--runtime", "4.2", "--out",
                                            str(work / "out-kill")),
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(2, 25))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = build_cli(REPO, cache, work / "out-kill")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert digests(work / "out-kill") == digests(out_a)
    shutil.rmtree(cache)


def test_two_builds_at_once_on_one_cache(build_a, work):
    _, out_a = build_a
    cache = fresh_cache(work / "cache-twice")
    env = dict(os.environ, PYTHONPATH=str(REPO), RUNTIME_CACHE=str(cache))
    procs = [subprocess.Popen(invoke_argv("image", "--runtime", "4.2", "--out",
                                          str(work / f"out-twice-{i}")),
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=1200)
        assert proc.returncode == 0, stdout + stderr
    assert digests(work / "out-twice-0") == digests(work / "out-twice-1") == digests(out_a)
    shutil.rmtree(cache)


def test_a_failing_step_fails_the_build_and_leaves_nothing_running(work, monkeypatch):
    """A Python layer fails (its python root cannot be made): the build raises that error at
    once for the queued layers, which are dropped (the Debian root's chain runs to its end), and
    no worker process or scratch folder of it is left."""
    from rules.common import scratch
    from rules.debian import python_root
    from rules.common.errors import UserError

    def broken(*args, **kw):
        raise UserError("no python root today")

    monkeypatch.setattr(python_root, "_make", broken)  # what the "python root" action runs
    cache = fresh_cache(work / "cache-failing")
    before = _children()  # (other tests' servers may be running)
    with pytest.raises(UserError, match="no python root today"):
        image.build(project.load(REPO), "4.2", ("base",), work / "out-failing", cache)
    assert not (work / "out-failing").exists()
    records = [action_cache.read(cache, p.stem) for p in (cache / "actions").glob("*.json")]
    assert not [r for r in records if r.kind == "python root"]  # a failed action records nothing
    assert _children() - before == set()
    assert not list(scratch.base(cache).glob("rt-*"))
    shutil.rmtree(cache)


def _children() -> set[int]:
    """Process ids of this process's children (of any of its threads)."""
    return {int(pid) for task in Path("/proc/self/task").glob("*/children")
            for pid in task.read_text().split()}


@pytest.fixture(scope="module")
def loaded(build_a):
    import docker

    from rules.oci import docker_load

    _, out = build_a
    tags = docker_load.load(out)
    assert tags == [policy.reference(IMG, t) for t in sorted(TAGS + FLOATING)]
    yield docker.from_env()
    client = docker.from_env()
    for tag in tags:
        client.images.remove(tag, force=True)


@pytest.mark.parametrize("tag", TAGS)
def test_loaded_image_runs_airflow(loaded, tag):
    run = lambda cmd: loaded.containers.run(policy.reference(IMG, tag), cmd, network_mode="none",
                                            remove=True).decode()
    assert run(["airflow", "version"]).strip().splitlines()[-1] == AIRFLOW
    out = run(["bash", "-c", "airflow db init >/dev/null 2>&1 && echo db-ok; id -u; "
                             "python --version 2>&1 || python3.9 --version"])
    assert out.splitlines()[:2] == ["db-ok", str(IMG.uid)]
