"""The remote action cache (rules.graph.remote) against a real registry (tests/registry.py:
docker-registry 2.8, TLS, htpasswd), no mocks: records as OCI artifacts tagged by key, lazy
and digest-checked blobs, remote hits skipping their deps, and the faults (corrupt blob in the
registry's storage, unreachable registry, read-only, wrong credentials) that must never fail
a build. Small action graphs here; the image end to end (publish without the bytes) is the
`slow` test at the end."""

import hashlib
import json
import shutil
import socket
from pathlib import Path

import pytest

from rules.common import atomic
from rules.common.errors import UserError
from rules.fetch.download import cas_path
from rules.graph import action_cache, remote as remotes, scheduler
from rules.graph.action import Action, Made
from rules.oci.registry import Client, parse_target
from tests.registry import PASSWORD, USER, registry

pytestmark = pytest.mark.timeout(300)


def blob_action(label, text, deps=(), calls=None):
    """Writes ``text`` as its blob; reads its deps' blobs (so they must be here)."""
    def run(ctx):
        if calls is not None:
            calls.append(label)
        seen = b"".join(ctx.dep(d).blob(ctx.cache, "out").read_bytes() for d in deps)
        data = text.encode() + hashlib.sha256(seen).hexdigest().encode()
        sha = hashlib.sha256(data).hexdigest()
        atomic.write_bytes(cas_path(ctx.cache, sha), data)
        return Made(blobs={"out": (sha, len(data))}, values={"label": label})
    return Action("test", label, {"text": text}, run, deps=tuple(deps))


def graph(calls=None):
    """a -> b -> c (c reads b's blob, b reads a's)."""
    a = blob_action("a", "x" * 2000, calls=calls)
    b = blob_action("b", "y" * 3000, deps=[a], calls=calls)
    c = blob_action("c", "z", deps=[b], calls=calls)
    return a, b, c


@pytest.fixture(scope="module")
def reg():
    with registry(access_log=True) as r:
        yield r


@pytest.fixture
def repo(request):
    """A repository of its own per test: tests do not see each other's records."""
    return "cache-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]


def open_remote(reg, repo, read_only=False, password=PASSWORD, warnings=None):
    return remotes.open_cache(f"{reg.host}/{repo}", read_only, reg.ca, USER, password,
                              warn=(warnings.append if warnings is not None else print))


def blob_file(reg, sha: str) -> Path:
    return reg.folder / "storage/docker/registry/v2/blobs/sha256" / sha[:2] / sha / "data"


def requests_since(reg, start: int) -> list[str]:
    return reg.log.read_text(errors="replace").splitlines()[start:]


def log_length(reg) -> int:
    return len(reg.log.read_text(errors="replace").splitlines())


def test_records_are_artifacts_tagged_by_key_and_blobs_come_only_when_read(reg, repo,
                                                                            tmp_path):
    a, b, c = graph()
    writer = open_remote(reg, repo)
    first = scheduler.run([b], tmp_path / "one", remote=writer)
    assert writer.records_uploaded == 2 and not writer.hits
    made = first[b].record

    # the artifact: tag action-<key>, config = the record, layers = its blobs
    client = Client(parse_target(f"{reg.host}/{repo}"), reg.ca, USER, PASSWORD).connect()
    data, _ = client.get_manifest(f"action-{b.key}")
    manifest = json.loads(data)
    assert manifest["artifactType"] == remotes.ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == remotes.ARTIFACT_TYPE
    record = json.loads(client.get_blob(manifest["config"]["digest"]))
    assert record["key"] == b.key and record["inputs"] == b.named_inputs()
    assert [x["digest"] for x in manifest["layers"]] == [f"sha256:{made.blobs['out'][0]}"]

    # another machine: b is a remote hit, a is not needed, no byte downloaded yet
    calls = []
    a2, b2, c2 = graph(calls)
    reader = open_remote(reg, repo, read_only=True)
    other = tmp_path / "two"
    outcomes = scheduler.run([b2], other, remote=reader)
    assert outcomes[b2].hit and outcomes[b2].remote and a2 not in outcomes and not calls
    assert reader.blobs_downloaded == 0 and action_cache.get(other, b2.key) is None
    # the bytes come when something reads them, checked, and the record is kept locally
    path = outcomes[b2].record.blob(other, "out")
    assert path.read_bytes() == made.blob(tmp_path / "one", "out").read_bytes()
    assert reader.blobs_downloaded == 1 and action_cache.get(other, b2.key) is not None

    # c runs locally from b's downloaded blob; the read-only cache does not get c
    outcomes = scheduler.run([c2], tmp_path / "three", remote=reader)
    assert calls == ["c"] and not outcomes[c2].hit
    assert client.manifest_digest(f"action-{c2.key}") is None


def test_a_corrupt_remote_blob_is_never_used_and_its_action_runs_locally(reg, repo, tmp_path):
    a, b, c = graph()
    writer = open_remote(reg, repo)
    good = scheduler.run([b], tmp_path / "one", remote=writer)[b].record
    sha = good.blobs["out"][0]
    stored = blob_file(reg, sha)
    data = stored.read_bytes()
    stored.write_bytes(data[:-5] + b"EVIL!")  # same size, other bytes

    calls, warnings = [], []
    a2, b2, c2 = graph(calls)
    reader = open_remote(reg, repo, read_only=True, warnings=warnings)
    other = tmp_path / "two"
    outcomes = scheduler.run([c2], other, remote=reader)
    # c needed b's bytes: they did not match, so b ran here (from a's remote blob, which is
    # fine), and c again
    assert calls == ["c", "b", "c"]
    assert cas_path(other, sha).read_bytes() == data
    assert outcomes[c2].record.blobs == scheduler.run([c], tmp_path / "ref")[c].record.blobs
    assert len(warnings) == 1 and b.key in warnings[0] and "other bytes" in warnings[0]
    assert not list(cas_path(other, sha).parent.glob(".remote-*"))  # no partial download left


def test_a_record_made_for_other_inputs_is_not_used(reg, repo, tmp_path):
    a, b, c = graph()
    writer = open_remote(reg, repo)
    scheduler.run([a], tmp_path / "one", remote=writer)
    client = Client(parse_target(f"{reg.host}/{repo}"), reg.ca, USER, PASSWORD).connect()
    data, media_type = client.get_manifest(f"action-{a.key}")
    client.put_manifest(f"action-{b.key}", data, media_type)  # b's tag names a's record

    calls, warnings = [], []
    _, b2, _ = graph(calls)
    reader = open_remote(reg, repo, read_only=True, warnings=warnings)
    outcomes = scheduler.run([b2], tmp_path / "two", remote=reader)
    assert not outcomes[b2].hit and calls == ["b"]  # (a's own record is fine: a remote hit)
    assert len(warnings) == 1 and b.key in warnings[0] and "not this action's" in warnings[0]


def test_an_unreachable_remote_cache_is_one_warning_and_the_build_goes_on(reg, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    warnings = []
    assert remotes.open_cache(f"127.0.0.1:{port}/cache", warn=warnings.append) is None
    assert len(warnings) == 1 and "unreachable" in warnings[0]

    # a registry that dies during the build: one warning, the rest runs locally
    with registry() as dying:
        warnings = []
        remote = remotes.open_cache(f"{dying.host}/cache", False, dying.ca, USER, PASSWORD,
                                    warn=warnings.append)
        dying.kill()
        a, b, c = graph()
        outcomes = scheduler.run([c], tmp_path / "one", remote=remote)
    assert outcomes[c].record.blobs == scheduler.run([c], tmp_path / "ref")[c].record.blobs
    assert len(warnings) == 1 and "without it" in warnings[0]


def test_read_only_never_writes(reg, repo, tmp_path):
    start = log_length(reg)
    reader = open_remote(reg, repo, read_only=True)
    a, b, c = graph()
    scheduler.run([c], tmp_path / "one", remote=reader)  # every action runs: nothing there
    assert reader.records_uploaded == reader.blobs_uploaded == 0
    methods = [line.split('"')[1].split()[0] for line in requests_since(reg, start)
               if '"' in line and " HTTP/" in line]
    assert methods and set(methods) <= {"GET", "HEAD"}, methods


def test_wrong_credentials_are_one_warning_and_the_build_succeeds_locally(reg, repo,
                                                                         tmp_path):
    warnings = []
    assert open_remote(reg, repo, password="wrong", warnings=warnings) is None
    assert len(warnings) == 1 and "credentials refused" in warnings[0] and "401" in warnings[0]
    a, b, c = graph()
    assert not scheduler.run([c], tmp_path / "one", remote=None)[c].hit
    # (a registry that lets these credentials read but not write answers the writes 401 or
    # 403: RemoteCache._failed then stops the writes with one warning and reads go on;
    # htpasswd registries have no such users)


def test_remote_cache_rule_in_workspace_and_the_command_line_wins(tmp_path):
    from rules.defs import Collector
    from rules.load.starlark_eval import evaluate
    from tasks import _remote_cache_choice

    (tmp_path / "WORKSPACE").write_text(
        'remote_cache(url = "registry.example.com/runtime/cache", read_only = True)\n')
    collector = Collector()
    evaluate(tmp_path / "WORKSPACE", "WORKSPACE", collector.workspace_functions())
    declared = collector.remote_cache
    assert declared.url == "registry.example.com/runtime/cache" and declared.read_only

    class Proj:
        remote_cache = declared
    assert _remote_cache_choice(Proj, None, False) == ("registry.example.com/runtime/cache",
                                                       True)
    assert _remote_cache_choice(Proj, "other.example.com:5000/c", False) == (
        "other.example.com:5000/c", False)
    assert _remote_cache_choice(Proj, "off", False) == (None, False)
    with pytest.raises(UserError, match="--remote-cache"):
        _remote_cache_choice(Proj, "no-host", False)

    (tmp_path / "WORKSPACE").write_text('remote_cache(url = "HOST/x:tag")\n')
    with pytest.raises(Exception, match="HOST\\[:PORT\\]/REPO"):
        evaluate(tmp_path / "WORKSPACE", "WORKSPACE", Collector().workspace_functions())


@pytest.mark.slow
def test_publish_without_the_bytes_gives_the_local_build_digests(reg, repo, tmp_path):
    """4.2, both flavors: machine 1 (the warm cache; cold if it is not) seeds the cache; an
    empty cache on another checkout path publishes with no layer downloaded or uploaded and
    the same digests; a third empty cache, with the `module ui` layer corrupt in the
    registry, writes the full layout with the same digests after one warning."""
    from rules.common.cache import default_cache
    from tests.fixtures import REPO, run_invoke

    config = reg.docker_config(tmp_path / "docker")
    remote = ("--remote-cache", f"{reg.host}/{repo}", "--ca-cert", str(reg.ca))
    env = {"DOCKER_CONFIG": str(config)}
    one = run_invoke(REPO, "image", "--runtime", "4.2", "--out", str(tmp_path / "out1"),
                     *remote, env=env)
    assert one.returncode == 0, one.stdout + one.stderr
    index = json.loads((tmp_path / "out1/index.json").read_text())
    built = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
             for m in index["manifests"] if "artifactType" not in m}

    checkout = tmp_path / "checkout2"
    shutil.copytree(REPO, checkout, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", "out", "__pycache__", ".pytest_cache", ".ruff_cache"))
    (tmp_path / "cache2").mkdir()
    uploads = len(reg.uploads())
    two = run_invoke(checkout, "image", "--runtime", "4.2", "--push-to",
                     f"{reg.host}/{repo}-images", *remote,
                     env={**env, "RUNTIME_CACHE": str(tmp_path / "cache2")})
    assert two.returncode == 0, two.stdout + two.stderr
    for tag, digest in built.items():
        assert f"/{repo}-images:{tag}  {digest}" in two.stdout
    layers = {"sha256:" + Path(p).name for e in json.loads(
        (tmp_path / "out1/manifest.json").read_text()) for p in e["Layers"]}
    assert not layers & set(reg.uploads()[uploads:])  # configs only: every layer mounted
    assert not list((tmp_path / "cache2").rglob("cas/sha256/*/*")) or all(
        p.stat().st_size < 1 << 20 for p in (tmp_path / "cache2").rglob("cas/sha256/*/*"))
    assert not (checkout / "out").exists()  # no layout without --out

    record = None
    for path in (default_cache() / "actions").glob("*.json"):
        found = action_cache.read(default_cache(), path.stem)
        if found and found.kind == "layer" and found.label == "module ui" and \
                f"sha256:{found.blobs['layer'][0]}" in layers:
            record = found
    assert record is not None
    stored = blob_file(reg, record.blobs["layer"][0])
    stored.write_bytes(stored.read_bytes()[:-4] + b"BAD!")
    # an empty cache: every layer downloaded for the layout, checked; `module ui` made here
    # (its python root from the 6 locked .debs, fetched for it alone)
    (tmp_path / "cache3").mkdir()
    three = run_invoke(REPO, "image", "--runtime", "4.2", "--out", str(tmp_path / "out3"),
                       "--remote-cache-read-only", *remote,
                       env={**env, "RUNTIME_CACHE": str(tmp_path / "cache3")})
    assert three.returncode == 0, three.stdout + three.stderr
    assert three.stderr.count("warning:") == 1 and record.key in three.stderr
    index = json.loads((tmp_path / "out3/index.json").read_text())
    assert {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
            for m in index["manifests"] if "artifactType" not in m} == built
