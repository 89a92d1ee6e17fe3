"""Acceptance checks of a built Runtime image in a real Docker engine: what a platform team
looks at before shipping an Airflow image. Line from RUNTIME_TEST_LINE (default 4.2), both
flavors; `./dev test-image --runtime X` runs them for any line. Containers use --network none,
or --network host with servers on 127.0.0.1 only."""

import json
import os
import socket
import subprocess
import time
import urllib.request

import pytest

from rules import image, pip_lock, project
from tests.fixtures import REPO, run_invoke

pytestmark = pytest.mark.slow
LINE = os.environ.get("RUNTIME_TEST_LINE", "4.2")
PROJECT = project.load(REPO)
RUNTIME = PROJECT.line(LINE)
FLAVOR_TAGS = {"onbuild": RUNTIME.version, "base": f"{RUNTIME.version}-base"}
# Providers that apache-airflow installs by itself, whatever the extras.
AIRFLOW_DEFAULT_PROVIDERS = {"apache-airflow-providers-ftp", "apache-airflow-providers-http",
                             "apache-airflow-providers-imap", "apache-airflow-providers-sqlite"}
EXTRA_MODULES = {
    "amazon": ["boto3", "botocore", "watchtower"],
    "celery": ["celery", "flower", "vine"],
    "cncf.kubernetes": ["kubernetes"],
    "databricks": ["airflow.providers.databricks.hooks.databricks"],
    "elasticsearch": ["elasticsearch"],
    "google": ["google.cloud.storage", "google.cloud.bigquery", "googleapiclient"],
    "postgres": ["psycopg2"],
    "redis": ["redis"],
    "snowflake": ["snowflake.connector"],
    "statsd": ["statsd"],
    "virtualenv": ["virtualenv"],
}
PACKAGE_MODULES = {"openlineage-airflow": ["openlineage.airflow"],
                   "astronomer-providers": ["astronomer.providers"]}


@pytest.fixture(scope="module")
def images():
    proc = run_invoke(REPO, "fetch", "--runtime", LINE)
    assert proc.returncode == 0, proc.stderr
    proc = run_invoke(REPO, "image", "--runtime", LINE, "--load",
                      "--out", str(pip_lock.default_cache() / "acceptance-out"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield {flavor: f"{image.REPO}:{tag}" for flavor, tag in FLAVOR_TAGS.items()}
    for tag in FLAVOR_TAGS.values():
        subprocess.run(["docker", "rmi", "-f", f"{image.REPO}:{tag}"], capture_output=True)


def docker_run(img, *cmd, user=None, network="none", env=None, timeout=300):
    args = ["docker", "run", "--rm", "--network", network]
    if user:
        args += ["--user", user]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    return subprocess.run([*args, img, *cmd], capture_output=True, text=True, timeout=timeout)


def sh(img, script, **kw):
    proc = docker_run(img, "bash", "-c", script, **kw)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(params=sorted(FLAVOR_TAGS))
def img(request, images):
    return images[request.param]


def test_no_arguments_prints_airflow_help(img):
    proc = docker_run(img)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: airflow")


def test_versions_os_and_user(img):
    out = sh(img, "airflow version 2>/dev/null | tail -n 1; python --version 2>&1; "
                  "cat /etc/debian_version; id -u; id -g").splitlines()
    assert out[0] == RUNTIME.airflow
    assert out[1].startswith("Python 3.9.")
    assert out[2].startswith("11.")
    assert out[3:5] == ["50000", "0"]


def test_arbitrary_uid_can_run_airflow(img):
    out = sh(img, "id -u; airflow db init >/dev/null 2>&1 && echo db-ok; "
                  "touch $AIRFLOW_HOME/written && echo home-writable", user="12345:0")
    assert out.split() == ["12345", "db-ok", "home-writable"]


def test_pip_check_is_clean(img):
    assert "No broken requirements found" in sh(img, "pip check 2>/dev/null")


def test_pip_cannot_replace_airflow(img):
    other = "2.3.0" if RUNTIME.airflow != "2.3.0" else "2.2.4"
    proc = docker_run(img, "pip", "install", "--no-index", f"apache-airflow=={other}")
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert f"apache-airflow=={RUNTIME.airflow}" in text and "constraint" in text, text
    assert sh(img, "airflow version 2>/dev/null | tail -n 1").strip() == RUNTIME.airflow


def test_version_label_env_and_file_agree(img):
    inspect = json.loads(subprocess.run(["docker", "image", "inspect", img],
                                        capture_output=True, text=True, check=True).stdout)[0]
    label = inspect["Config"]["Labels"]["io.astronomer.docker.runtime.version"]
    env = dict(e.split("=", 1) for e in inspect["Config"]["Env"])
    data = json.loads(sh(img, "cat /usr/local/share/runtime/version.json"))
    in_container = sh(img, "echo $ASTRONOMER_RUNTIME_VERSION").strip()
    assert label == env["ASTRONOMER_RUNTIME_VERSION"] == data["runtime_version"] == \
        in_container == RUNTIME.version
    assert data["airflow_version"] == RUNTIME.airflow


def test_providers_are_the_declared_ones(img):
    listed = json.loads(sh(img, "airflow providers list --output json 2>/dev/null"))
    names = {p["package_name"] for p in listed}
    pset = PROJECT.provider_sets[RUNTIME.providers]
    declared = {f"apache-airflow-providers-{e.replace('.', '-')}" for e in pset.airflow_extras
                if e not in ("statsd", "virtualenv")}
    # astronomer-providers does not register as an Airflow provider: its import is checked below
    assert declared <= names, declared - names
    assert names - declared <= AIRFLOW_DEFAULT_PROVIDERS, names - declared


def test_modules_of_every_extra_import(img):
    pset = PROJECT.provider_sets[RUNTIME.providers]
    modules = [m for e in pset.airflow_extras for m in EXTRA_MODULES[e]]
    modules += [m for p in pset.packages for m in PACKAGE_MODULES.get(p, [])]
    script = "; ".join(f"import {m}" for m in modules) + "; print('imported', %d)" % len(modules)
    # (openlineage-airflow 0.2/0.3 log warnings about optional extractors on stdout)
    out = sh(img, f"python3.9 -c \"{script}\"").strip().splitlines()
    assert out[-1] == f"imported {len(modules)}"


def test_airflow_info_runs(img):
    assert "Apache Airflow" in sh(img, "airflow info 2>/dev/null")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webserver_answers_health_on_loopback(images):
    port = free_port()
    name = f"runtime-acceptance-web-{port}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "host",
                    "-e", "AIRFLOW__WEBSERVER__WORKERS=1", images["base"], "bash", "-c",
                    f"airflow db init >/dev/null 2>&1 && exec airflow webserver "
                    f"--hostname 127.0.0.1 --port {port}"], check=True, capture_output=True)
    try:
        deadline, body = time.monotonic() + 180, None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    body = json.load(r)
            except OSError:
                time.sleep(2)
        assert body is not None, "webserver did not answer /health within 180 s"
        assert body["metadatabase"]["status"] == "healthy"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_no_caches_lists_build_paths_or_secrets(img):
    out = sh(img, r"""
        ls -A /var/lib/apt/lists | grep -v '^partial$' | grep -v '^lock$' | sed 's/^/apt-list: /'
        ls -A /var/cache/apt/archives 2>/dev/null | grep '\.deb$' | sed 's/^/deb: /'
        for d in /root/.cache /usr/local/airflow/.cache /tmp/pip-*; do
          [ -e "$d" ] && echo "cache: $d"; done
        grep -rlaE '/mnt/trees|/mnt/src|/root/\.cache/runtime' /usr/local/lib/python3.9 \
          --include='*.pyc' 2>/dev/null | head -5 | sed 's/^/build-path: /'
        grep -rlE 'BEGIN (RSA |OPENSSH |EC |DSA )?PRIVATE KEY' /root /usr/local/airflow /home \
          /tmp /etc 2>/dev/null | grep -v '^/etc/ssl/' | head -5 | sed 's/^/secret: /'
        find / -xdev \( -name '.netrc' -o -name 'id_rsa*' -o -name 'id_ed25519*' \
          -o -name '.pypirc' -o -name '.git-credentials' -o -path '*/.docker/config.json' \
          -o -path '*/.aws/credentials' \) 2>/dev/null | sed 's/^/secret: /'
        [ -e /etc/pip.conf ] && grep -iE 'token|password|://[^/ ]*:[^/ ]*@' /etc/pip.conf \
          | sed 's/^/secret: /'
        true""", user="0:0")
    assert out.strip() == "", out
    inspect = json.loads(subprocess.run(["docker", "image", "inspect", img], capture_output=True,
                                        text=True, check=True).stdout)[0]
    assert not [e for e in inspect["Config"]["Env"]
                if any(w in e.split("=")[0] for w in ("TOKEN", "SECRET", "PASSWORD", "KEY"))]
