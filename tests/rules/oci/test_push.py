"""`invoke push` and rules.oci.push against a real registry (tests/registry.py: docker-registry
2.8, TLS, htpasswd), on small generated OCI layouts: digests, tags, skipped blobs, auth, the
order that keeps tags from moving on a failed push, and concurrent pushes."""

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from rules.common.errors import UserError
from rules.oci import push as pushing
from rules.oci.layout import canonical
from rules.oci.registry import Client, RegistryError, parse_target
from tests.fixtures import REPO, invoke_argv
from tests.registry import PASSWORD, USER, registry

pytestmark = pytest.mark.timeout(300)


def make_layout(folder: Path, layer_sizes=(300_000, 200_000), seed: bytes = b"a",
                tags=("1.0.0", "1.0")) -> Path:
    """An OCI layout of one image (random layers of these sizes) under several tags."""
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layers = []
    for i, size in enumerate(layer_sizes):
        data = b"".join(hashlib.sha256(seed + bytes([i]) + n.to_bytes(4, "big")).digest()
                        for n in range(size // 32 + 1))[:size]
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **put(data)})
    config = put(canonical({"architecture": "amd64", "os": "linux", "seed": seed.hex(),
                            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]
                                                                      for layer in layers]}}))
    manifest = canonical({"schemaVersion": 2,
                          "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                     **config},
                          "layers": layers})
    ref = put(manifest)
    (folder / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    (folder / "index.json").write_bytes(canonical({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **ref,
                       "annotations": {"org.opencontainers.image.ref.name": tag}}
                      for tag in tags]}))
    return folder


def digest_of(layout: Path) -> str:
    return json.loads((layout / "index.json").read_bytes())["manifests"][0]["digest"]


@pytest.fixture
def reg():
    with registry() as r:
        yield r


def client(reg, password=PASSWORD, repo="runtime") -> Client:
    return Client(parse_target(f"{reg.host}/{repo}"), reg.ca, USER, password)


def quiet(*_):
    pass


def run_push(*args, stdin=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    full_env.pop("RUNTIME_CALLER_DIR", None)
    return subprocess.run(invoke_argv("push", *args), cwd=REPO, env=full_env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def test_push_tags_and_digest_match_the_build_and_second_push_sends_nothing(reg, tmp_path):
    layout = make_layout(tmp_path / "layout")
    first = pushing.push(layout, client(reg), quiet)
    assert (first.blobs_total, first.blobs_uploaded) == (3, 3)
    assert first.bytes_uploaded == sum(p.stat().st_size for p in
                                       (layout / "blobs/sha256").iterdir()) - len(
        (layout / "blobs/sha256" / digest_of(layout)[7:]).read_bytes())
    c = client(reg).connect()
    for tag in ("1.0.0", "1.0"):
        assert c.manifest_digest(tag) == digest_of(layout)
        data, media_type = c.get_manifest(tag)
        assert data == (layout / "blobs/sha256" / digest_of(layout)[7:]).read_bytes()
        assert media_type == "application/vnd.oci.image.manifest.v1+json"
    second = pushing.push(layout, client(reg), quiet)
    assert (second.blobs_uploaded, second.bytes_uploaded) == (0, 0)
    assert second.tags == first.tags == {"1.0.0": digest_of(layout), "1.0": digest_of(layout)}


def test_skopeo_inspect_agrees_on_the_digest(reg, tmp_path):
    layout = make_layout(tmp_path / "layout")
    pushing.push(layout, client(reg), quiet)
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(reg.ca.read_bytes())
    proc = subprocess.run(["skopeo", "inspect", "--cert-dir", str(certs), "--creds",
                           f"{USER}:{PASSWORD}", "--format", "{{.Digest}}",
                           f"docker://{reg.host}/runtime:1.0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == digest_of(layout)


def test_blob_helpers_and_cross_repo_mount(reg, tmp_path):
    """What the remote cache will use: HEAD/GET a blob, and mount one from another repo."""
    layout = make_layout(tmp_path / "layout")
    pushing.push(layout, client(reg, repo="team/a"), quiet)
    config = json.loads((layout / "blobs/sha256" / digest_of(layout)[7:]).read_bytes())["config"]
    other = client(reg, repo="team/b").connect()
    assert not other.blob_exists(config["digest"])
    assert other.blob_exists(config["digest"], repo="team/a")
    path = layout / "blobs/sha256" / config["digest"][7:]
    assert other.upload_blob(path, config["digest"], config["size"], mount_from="team/a") is False
    assert other.get_blob(config["digest"]) == path.read_bytes()


def test_wrong_password_is_one_line_and_pushes_nothing(reg, tmp_path):
    layout = make_layout(tmp_path / "layout")
    proc = run_push("--to", f"{reg.host}/runtime", "--from", str(layout), "--ca-cert",
                    str(reg.ca), "--username", USER, "--password-stdin", stdin="wrong\n")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert reg.host in lines[0] and "401" in lines[0]
    assert not (reg.storage / "docker/registry/v2/blobs").exists()


def test_credentials_from_the_docker_config(reg, tmp_path):
    layout = make_layout(tmp_path / "layout")
    config = reg.docker_config(tmp_path / "docker")
    proc = run_push("--to", f"{reg.host}/runtime", "--from", str(layout), "--ca-cert",
                    str(reg.ca), env={"DOCKER_CONFIG": str(config)})
    assert proc.returncode == 0, proc.stderr
    assert digest_of(layout) in proc.stdout
    assert "3 uploaded" in proc.stdout
    # no credentials at all: one line naming the registry and the 401
    proc = run_push("--to", f"{reg.host}/runtime", "--from", str(layout), "--ca-cert",
                    str(reg.ca), env={"DOCKER_CONFIG": str(tmp_path / "none")})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert reg.host in proc.stderr and "401" in proc.stderr


def test_unknown_ca_is_a_clear_error(reg, tmp_path):
    layout = make_layout(tmp_path / "layout")
    with pytest.raises(RegistryError, match="not trusted.*--ca-cert"):
        pushing.push(layout, Client(parse_target(f"{reg.host}/runtime"), None, USER, PASSWORD),
                     quiet)


@pytest.mark.parametrize("to", ["", "runtime", "localhost:5000", "127.0.0.1:5000/Runtime",
                                "127.0.0.1:5000/runtime:4.2", "127.0.0.1:5000/runtime@sha256:ab",
                                "registry/runtime", "https://127.0.0.1:5000/runtime",
                                "127.0.0.1:5000/run//time"])
def test_invalid_to_is_refused_before_any_work(to):
    with pytest.raises(UserError, match="is not a registry"):
        parse_target(to)


def test_invalid_to_from_the_cli(tmp_path):
    started = time.monotonic()
    proc = run_push("--to", "127.0.0.1:5000/runtime:4.2", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no tag or digest" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing was built
    assert time.monotonic() - started < 30


def test_an_unknown_flavor_names_the_line_s_flavors(tmp_path):
    proc = run_push("--runtime", "4.2", "--flavor", "nosuch", "--to", "127.0.0.1:5000/runtime",
                    "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "unknown flavor 'nosuch'; flavors: onbuild, base, all" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_valid_targets():
    assert parse_target("127.0.0.1:5000/runtime").host == "127.0.0.1:5000"
    assert parse_target("registry.example.com/team/runtime-images").repo == "team/runtime-images"
    assert parse_target("localhost/a_b").repo == "a_b"


def _uploading(storage: Path, at_least: int) -> bool:
    return any(p.stat().st_size >= at_least for p in storage.glob(
        "docker/registry/v2/repositories/*/_uploads/*/data"))


def test_registry_killed_mid_push_moves_no_tag_and_the_next_push_completes(reg, tmp_path):
    # an earlier image holds the tag: a failed push must leave it there
    old = make_layout(tmp_path / "old", seed=b"old")
    pushing.push(old, client(reg), quiet)
    layout = make_layout(tmp_path / "layout", layer_sizes=(1_000_000,) + (48 << 20,) * 5,
                         seed=b"new")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("RUNTIME_CALLER_DIR", None)
    proc = subprocess.Popen(invoke_argv("push", "--to", f"{reg.host}/runtime", "--from",
                                        str(layout), "--ca-cert", str(reg.ca), "--username",
                                        USER, "--password-stdin"),
                            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdin.write(PASSWORD + "\n")
    proc.stdin.close()
    proc.stdin = None  # (communicate() below must not flush it)
    deadline = time.monotonic() + 120
    while not _uploading(reg.storage, 1 << 20) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.01)
    reg.kill()  # SIGKILL, as a crash would
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, out
    assert "Traceback" not in err
    assert reg.host in err and "no tag was moved" in err and "--ca-cert" not in err, err
    assert len(err.strip().splitlines()) == 1, err

    reg.start()  # same storage, same port
    c = client(reg).connect()
    assert c.manifest_digest("1.0") == digest_of(old)  # no tag moved
    assert c.manifest_digest("1.0.0") == digest_of(old)
    there = sum(c.blob_exists(b["digest"]) for b in pushing.read_layout(layout)[0].blobs)
    result = pushing.push(layout, client(reg), quiet)
    assert result.blobs_uploaded == 7 - there  # only what was missing
    assert c.manifest_digest("1.0") == digest_of(layout)


def test_two_pushes_at_once_both_succeed_with_the_same_digest(reg, tmp_path):
    layout = make_layout(tmp_path / "layout", layer_sizes=(8 << 20, 4 << 20, 100_000))
    results, errors = [], []

    def one():
        try:
            results.append(pushing.push(layout, client(reg), quiet))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert [r.tags for r in results] == [{"1.0.0": digest_of(layout), "1.0": digest_of(layout)}] * 2
    assert client(reg).connect().manifest_digest("1.0.0") == digest_of(layout)


def test_a_tag_of_two_platforms_is_pushed_as_its_image_index(reg, tmp_path):
    """A layout of --platform all (rules.oci.layout writes one index per tag): the images go
    first by digest, then the index under the tags; skopeo reads each platform's image."""
    from rules.oci.layout import INDEX, Image, write_layout
    from tests.fixtures import cas_layer

    cache = tmp_path / "cache"
    images = [Image("runtime", "1.0.0", [cas_layer(cache, bytes([i + 1]), 50_000)], ["made"],
                    {"User": "a"}, 0,
                    {}, aliases=("1.0",), architecture=arch)
              for i, arch in enumerate(("amd64", "arm64"))]
    layout = tmp_path / "layout"
    write_layout(images, layout, cache)
    pushed = pushing.push(layout, client(reg), quiet)
    index_digest = digest_of(layout)
    assert pushed.tags == {"1.0.0": index_digest, "1.0": index_digest}
    c = client(reg).connect()
    data, media_type = c.get_manifest("1.0")
    assert media_type == INDEX
    assert [(m["digest"], m["platform"]["architecture"]) for m in json.loads(data)[
        "manifests"]] == [(i.digest, i.architecture) for i in images]
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(reg.ca.read_bytes())
    for image in images:  # (skopeo's Digest is the tag's: the index's)
        proc = subprocess.run(["skopeo", "inspect", "--cert-dir", str(certs), "--creds",
                               f"{USER}:{PASSWORD}", "--override-arch", image.architecture,
                               "--format", "{{.Digest}} {{.Architecture}} {{.Layers}}",
                               f"docker://{reg.host}/runtime:1.0.0"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [index_digest, image.architecture,
                                       f"[{image.layers[0].digest}]"]


def test_a_digest_naming_a_file_outside_the_layout_is_refused_before_any_read(tmp_path):
    """A hostile layout whose index (or an index it names) gives "sha256:../../x" as a
    digest: push refuses it, and reads and sends nothing of the file it names."""
    secret = tmp_path / "secret.json"
    secret.write_text('{"config": {"digest": "sha256:../../../../etc/hostname", "size": 1},'
                      ' "layers": []}')
    for media_type in ("application/vnd.oci.image.index.v1+json",
                       "application/vnd.oci.image.manifest.v1+json"):
        layout = make_layout(tmp_path / media_type.split(".")[-2])
        index = json.loads((layout / "index.json").read_text())
        index["manifests"][0].update(mediaType=media_type, digest="sha256:../../secret.json")
        (layout / "index.json").write_text(json.dumps(index))
        with pytest.raises(UserError, match="is not a sha256 digest"):
            pushing.read_layout(layout)


def test_layout_errors(tmp_path):
    with pytest.raises(UserError, match="not an OCI image layout"):
        pushing.read_layout(tmp_path)
    layout = make_layout(tmp_path / "layout")
    next(p for p in (layout / "blobs/sha256").iterdir()
         if p.stat().st_size == 300_000).unlink()
    with pytest.raises(UserError, match="missing or truncated"):
        pushing.read_layout(layout)


def test_registry_stop_is_clean():
    with registry() as r:
        folder, pid = r.folder, r.proc.pid
    assert not folder.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, signal.SIG_DFL or 0)
