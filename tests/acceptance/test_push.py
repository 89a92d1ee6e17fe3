"""`invoke push` of the 4.2 line to a local TLS registry with htpasswd auth, then a real Docker
engine logs in (its `docker login` writes the Docker config the push reads) and pulls both
flavors by their floating tags: the engine's digest is the built digest, and so is skopeo's.

The registry's CA goes to /etc/docker/certs.d/127.0.0.1:PORT/ca.crt (the engine reads it per
pull; the port is this run's own) and is removed afterwards, as are the pulled images, the
Docker config and the registry with its storage."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rules.common.cache import default_cache
from tasks import dockerd
from tests.fixtures import REPO, invoke_argv
from tests.registry import PASSWORD, USER, registry

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
LINE = os.environ.get("RUNTIME_TEST_LINE", "4.2")


@pytest.fixture(scope="module")
def docker_host():
    with dockerd.engine(default_cache()) as host:
        yield host


def test_push_then_docker_pull_gets_the_built_digest(docker_host, tmp_path):
    with registry() as reg:
        certs = Path("/etc/docker/certs.d") / reg.host
        config = tmp_path / "docker-config"
        env = dict(os.environ, DOCKER_HOST=docker_host, DOCKER_CONFIG=str(config),
                   PYTHONPATH=str(REPO))
        env.pop("RUNTIME_CALLER_DIR", None)
        pulled = []
        made = [p for p in (certs.parent.parent, certs.parent) if not p.exists()]
        try:
            certs.mkdir(parents=True)
            shutil.copy(reg.ca, certs / "ca.crt")
            login = subprocess.run(["docker", "login", reg.host, "-u", USER, "--password-stdin"],
                                   input=PASSWORD, env=env, capture_output=True, text=True,
                                   timeout=60)
            assert login.returncode == 0, login.stderr
            out = tmp_path / "out"
            push = subprocess.run(invoke_argv("push", "--runtime", LINE, "--to",
                                              f"{reg.host}/runtime", "--out", str(out),
                                              "--ca-cert", str(reg.ca)),
                                  cwd=REPO, env=env, capture_output=True, text=True,
                                  timeout=1200)
            assert push.returncode == 0, push.stdout + push.stderr
            index = json.loads((out / "index.json").read_bytes())
            built = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
                     for m in index["manifests"] if "artifactType" not in m}
            floating = [tag for tag in built if tag.count(".") == 1]  # 4.2, 4.2-base
            assert len(floating) == 2, built
            for tag in floating:
                ref = f"{reg.host}/runtime:{tag}"
                pull = subprocess.run(["docker", "pull", ref], env=env, capture_output=True,
                                      text=True, timeout=600)
                assert pull.returncode == 0, pull.stderr
                pulled.append(ref)
                repo_digests = json.loads(subprocess.run(
                    ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", ref],
                    env=env, capture_output=True, text=True, check=True).stdout)
                assert f"{reg.host}/runtime@{built[tag]}" in repo_digests
                skopeo = subprocess.run(["skopeo", "inspect", "--cert-dir", str(certs),
                                         "--authfile", str(config / "config.json"), "--format",
                                         "{{.Digest}}", f"docker://{ref}"],
                                        capture_output=True, text=True, timeout=60)
                assert skopeo.stdout.strip() == built[tag], skopeo.stderr
            again = subprocess.run(invoke_argv("push", "--runtime", LINE, "--to",
                                               f"{reg.host}/runtime", "--out", str(out),
                                               "--ca-cert", str(reg.ca)),
                                   cwd=REPO, env=env, capture_output=True, text=True,
                                   timeout=1200)
            assert again.returncode == 0, again.stderr
            assert " 0 uploaded (0 bytes)" in again.stdout, again.stdout
        finally:
            for ref in pulled:
                subprocess.run(["docker", "rmi", "-f", ref], env=env, capture_output=True)
            shutil.rmtree(certs, ignore_errors=True)
            for folder in reversed(made):  # /etc/docker/certs.d, /etc/docker if we made them
                if folder.exists() and not any(folder.iterdir()):
                    folder.rmdir()
