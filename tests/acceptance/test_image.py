"""Acceptance checks of a built Runtime image in a real Docker engine: what a platform team
looks at before shipping an Airflow image. Line from RUNTIME_TEST_LINE (default 4.2), both
flavors; `./dev test-image --runtime X` runs them for any line. Containers use --network none,
or --network host with servers on 127.0.0.1 only."""

import json
from pathlib import Path

import pytest

from tests.acceptance.containers import (AIRFLOW, PROJECT, QUIET_AIRFLOW, RUNTIME, container,
    docker_run, http_json, inspect, sh, wait_until)
from tests.services import free_port

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
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
    "password": ["bcrypt", "flask_bcrypt"],
    "postgres": ["psycopg2"],
    "redis": ["redis"],
    "snowflake": ["snowflake.connector"],
    "statsd": ["statsd"],
    "virtualenv": ["virtualenv"],
}
# Extras that install no provider package.
EXTRAS_WITHOUT_PROVIDER = {"password", "statsd", "virtualenv"}
PACKAGE_MODULES = {"openlineage-airflow": ["openlineage.airflow"],
                   "astronomer-providers": ["astronomer.providers"],
                   "pytest": ["pytest"]}


def test_no_arguments_prints_airflow_help(img):
    proc = docker_run(img)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: airflow")


def test_entrypoint_dispatch(img):
    """Airflow sub-commands run through `airflow` (even `celery`, which is also a program);
    bash and python run as given."""
    assert docker_run(img, "version").stdout.strip().splitlines()[-1] == AIRFLOW
    celery = docker_run(img, "celery", "--help", env={
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__SQL_ALCHEMY_CONN": "postgresql://airflow@127.0.0.1:1/airflow"})
    assert celery.stdout.startswith("usage: airflow celery"), celery.stdout + celery.stderr
    assert docker_run(img, "bash", "-c", "echo $0 $1", "x", "y").stdout == "x y\n"
    assert docker_run(img, "python", "-c", "import sys; print(sys.version_info[:2])"
                      ).stdout == "(3, 9)\n"
    unknown = docker_run(img, "no-such-command")
    assert unknown.returncode != 0 and "invalid choice" in unknown.stderr


def test_versions_os_and_user(img):
    out = sh(img, "airflow version 2>/dev/null | tail -n 1; python --version 2>&1; "
                  "cat /etc/debian_version; id -u; id -g").splitlines()
    assert out[0] == AIRFLOW
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
    assert f"apache-airflow=={AIRFLOW}" in text and "constraint" in text, text
    assert sh(img, "airflow version 2>/dev/null | tail -n 1").strip() == AIRFLOW


def test_version_label_env_and_file_agree(img):
    config = inspect(img)["Config"]
    label = config["Labels"]["io.astronomer.docker.runtime.version"]
    env = dict(e.split("=", 1) for e in config["Env"])
    data = json.loads(sh(img, "cat /usr/local/share/runtime/version.json"))
    in_container = sh(img, "echo $ASTRONOMER_RUNTIME_VERSION").strip()
    assert label == env["ASTRONOMER_RUNTIME_VERSION"] == data["runtime_version"] == \
        in_container == RUNTIME.version
    assert data["airflow_version"] == AIRFLOW


def test_providers_are_the_declared_ones(img):
    listed = json.loads(sh(img, "airflow providers list --output json 2>/dev/null"))
    names = {p["package_name"] for p in listed}
    pset = PROJECT.provider_sets[RUNTIME.providers]
    declared = {f"apache-airflow-providers-{e.replace('.', '-')}" for e in pset.airflow_extras
                if e not in EXTRAS_WITHOUT_PROVIDER}
    # astronomer-providers does not register as an Airflow provider: its import is checked below
    assert declared <= names, declared - names
    assert names - declared <= AIRFLOW_DEFAULT_PROVIDERS, names - declared


def test_modules_of_every_extra_import(img):
    pset = PROJECT.provider_sets[RUNTIME.providers]
    modules = [m for e in pset.airflow_extras for m in EXTRA_MODULES[e]]
    modules += [m for p in pset.packages + pset.tools for m in PACKAGE_MODULES.get(p, [])]
    script = "; ".join(f"import {m}" for m in modules) + "; print('imported', %d)" % len(modules)
    # (openlineage-airflow 0.2/0.3 log warnings about optional extractors on stdout)
    out = sh(img, f"python3.9 -c \"{script}\"").strip().splitlines()
    assert out[-1] == f"imported {len(modules)}"


def test_every_shared_object_loads(img):
    """The build strips symbol tables from the wheels' shared objects: every extension module
    still imports and every other library still opens (auditwheel's bundled libraries are
    loaded by the extension that needs them)."""
    checks = Path(__file__).with_name("in_image")
    out = sh(img, "python3.9 /checks/load_shared_objects.py 2>/dev/null",
             volumes={checks: "/checks:ro"})
    report = json.loads(out.strip().splitlines()[-1])
    assert report["failed"] == []
    assert report["imported"] >= 20 and report["imported"] + report["opened"] == report["files"]


def test_every_record_matches_the_installed_files(img):
    """pip reads RECORD to uninstall and to list a package's files: every row names a file of
    the image with its sha256 and size, scripts in /usr/local/bin included (../../../bin/...)."""
    checks = Path(__file__).with_name("in_image")
    out = sh(img, "python3.9 /checks/check_records.py", volumes={checks: "/checks:ro"})
    report = json.loads(out.strip().splitlines()[-1])
    assert report["bad"] == [] and report["bad_count"] == 0
    assert report["records"] > 200 and report["outside_site"] > 20, report


def test_pip_uninstall_removes_a_packages_script(img):
    """A dependency's console script goes with it (python-nvd3 installs /usr/local/bin/nvd3)."""
    out = sh(img, "ls /usr/local/bin/nvd3 && pip uninstall -y python-nvd3 >/dev/null 2>&1; "
                  "ls /usr/local/bin/nvd3 2>&1 || echo gone", user="root")
    assert out.splitlines() == ["/usr/local/bin/nvd3", "ls: cannot access '/usr/local/bin/nvd3': "
                                "No such file or directory", "gone"]


def test_airflow_info_runs(img):
    assert "Apache Airflow" in sh(img, "airflow info 2>/dev/null")


def test_webserver_answers_health_on_loopback(images):
    port = free_port()
    with container(images["base"], "bash", "-c",
                   f"airflow db init >/dev/null 2>&1 && exec airflow webserver "
                   f"--hostname 127.0.0.1 --port {port}",
                   name=f"runtime-acceptance-web-{port}", network="host", env=QUIET_AIRFLOW):
        body = wait_until(lambda: http_json(f"http://127.0.0.1:{port}/health"), 180,
                          "the webserver answering /health")
    assert body["metadatabase"]["status"] == "healthy"


def test_flavors_share_every_layer(images):
    """The flavors differ in their config only (ONBUILD triggers), so the checks that start
    servers run on one of them."""
    onbuild, base = inspect(images["onbuild"]), inspect(images["base"])
    assert onbuild["RootFS"]["Layers"] == base["RootFS"]["Layers"]
    assert onbuild["Config"]["OnBuild"] and not base["Config"]["OnBuild"]
    assert {k: v for k, v in onbuild["Config"].items() if k != "OnBuild"} == \
        {k: v for k, v in base["Config"].items() if k != "OnBuild"}


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
    assert not [e for e in inspect(img)["Config"]["Env"]
                if any(w in e.split("=")[0] for w in ("TOKEN", "SECRET", "PASSWORD", "KEY"))]
