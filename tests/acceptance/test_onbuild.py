"""The ONBUILD flavor as a user meets it: a project (packages.txt with a comment and CRLF line
endings, requirements.txt from the team's private index, dags/, plugins/, include/) built with
`docker build` FROM the image — the user's build, the only docker build in the project."""

import hashlib
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import services
from tests.acceptance.containers import AIRFLOW, QUIET_AIRFLOW, RUNTIME, docker_run, sh
from tests.fixtures import make_wheel

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]

SAMPLE_DAG = '''\
import json
import subprocess
from datetime import datetime
from pathlib import Path

import runtime_sample_helper
from airflow import DAG
from airflow.operators.python import PythonOperator

INCLUDE = Path(__file__).resolve().parents[1] / "include"


def report():
    doc = json.dumps({"greeting": (INCLUDE / "greeting.txt").read_text().strip()})
    greeting = subprocess.run(["jq", "-r", ".greeting"], input=doc, capture_output=True,
                              text=True, check=True).stdout.strip()
    Path("/tmp/sample_project.out").write_text(runtime_sample_helper.shout(greeting))


with DAG("sample_project", start_date=datetime(2022, 1, 1), schedule_interval=None) as dag:
    PythonOperator(task_id="report", python_callable=report)
'''

SAMPLE_PLUGIN = '''\
from airflow.plugins_manager import AirflowPlugin


class SamplePlugin(AirflowPlugin):
    name = "sample_project_plugin"
'''


def simple_index(root: Path) -> None:
    """A PEP 503 index of one wheel, as a team's private package index would serve it."""
    wheel = make_wheel(root / "files", "runtime-sample-helper", "1.0.0", code={
        "runtime_sample_helper/__init__.py": "def shout(text):\n    return text.upper() + '!'\n"})
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    page = root / "simple" / "runtime-sample-helper" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>\n')


def make_user_project(root: Path, base_image: str, index_url: str,
                      requirements: str | None = None) -> Path:
    (root / "dags").mkdir(parents=True)
    (root / "plugins").mkdir()
    (root / "include").mkdir()
    (root / "Dockerfile").write_text(f"FROM {base_image}\n")
    (root / "packages.txt").write_bytes(b"# a JSON tool the DAG calls\r\njq\r\n\r\n")
    (root / "requirements.txt").write_text(requirements or (
        f"--index-url {index_url}/simple/\n"
        "runtime-sample-helper==1.0.0  # from the team's own index\n"))
    (root / "dags" / "sample_project.py").write_text(SAMPLE_DAG)
    (root / "plugins" / "sample_plugin.py").write_text(SAMPLE_PLUGIN)
    (root / "include" / "greeting.txt").write_text("hello from include\n")
    return root


def docker_build(context: Path, tag: str) -> subprocess.CompletedProcess:
    # host network: the build's apt-get reaches the Debian mirror, pip the index on 127.0.0.1
    return subprocess.run(["docker", "build", "--network", "host", "--force-rm", "-t", tag,
                           str(context)], capture_output=True, text=True, timeout=900)


@pytest.fixture
def tag():
    name = f"runtime-user-project:{uuid.uuid4().hex[:12]}"
    yield name
    subprocess.run(["docker", "rmi", "-f", name], capture_output=True)
    subprocess.run(["docker", "image", "prune", "-f"], capture_output=True)  # failed-build layers


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    simple_index(root)
    with services.static_http(root) as url:
        yield url


def test_user_project_builds_and_its_dag_runs(images, index, tag, tmp_path):
    project = make_user_project(tmp_path / "project", images["onbuild"], index)
    proc = docker_build(project, tag)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert "installing Debian packages: jq" in proc.stdout
    out = sh(tag, """
        set -e
        jq --version
        python -c 'import runtime_sample_helper; print(runtime_sample_helper.shout("ok"))'
        pip show runtime-sample-helper 2>/dev/null | grep '^Version'
        id -u
        stat -c '%U:%g' dags/sample_project.py include/greeting.txt
        airflow db init >/dev/null 2>&1
        airflow plugins 2>/dev/null | grep -o sample_project_plugin | head -1
        airflow dags list 2>/dev/null | grep -o '^sample_project' || true
        airflow dags test sample_project 2022-01-01 >/tmp/dags-test.log 2>&1 \
          || { tail -40 /tmp/dags-test.log; exit 1; }
        cat /tmp/sample_project.out; echo
        airflow version 2>/dev/null | tail -n 1
        """, env=QUIET_AIRFLOW).split()
    assert out == ["jq-1.6", "OK!", "Version:", "1.0.0", "50000",
                   "astro:0", "astro:0", "sample_project_plugin", "sample_project",
                   "HELLO", "FROM", "INCLUDE!", AIRFLOW], out


OTHER_AIRFLOW = "2.3.0" if RUNTIME.airflow != "2.3.0" else "2.2.4"


# (requirements.txt, where the guard must point)
@pytest.mark.parametrize("requirements, where", [
    (f"runtime-sample-helper==1.0.0\napache-airflow=={OTHER_AIRFLOW}\n",
     f"requirements.txt:2: apache-airflow=={OTHER_AIRFLOW}"),
    # a continued line, as pip joins it
    (f"runtime-sample-helper==1.0.0\napache-\\\nairflow=={OTHER_AIRFLOW}\n",
     f"requirements.txt:2: apache-airflow=={OTHER_AIRFLOW}"),
    # another spelling, with an extra
    (f"Apache_Airflow[celery] == {OTHER_AIRFLOW}  # the team's pin\n",
     f"requirements.txt:1: Apache_Airflow[celery] == {OTHER_AIRFLOW}"),
], ids=["plain", "continued-line", "spelling"])
def test_a_requirement_on_apache_airflow_fails_the_build(images, index, tag, tmp_path,
                                                          requirements, where):
    project = make_user_project(tmp_path / "project", images["onbuild"], index,
                                requirements=requirements)
    (project / "packages.txt").write_text("")  # nothing to apt-get: fail fast
    proc = docker_build(project, tag)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "requirements.txt must not pin apache-airflow" in text, text[-3000:]
    assert where in text, text[-3000:]


def test_the_guard_reads_included_files_as_pip_does(images, tmp_path):
    """`-r` and `-c` includes are followed (the ONBUILD step copies requirements.txt alone, so
    this runs the image's guard on a project folder directly)."""
    tmp_path.chmod(0o755)  # (the container's user reads it)
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements.txt").write_text("-r requirements/base.txt\n")
    (tmp_path / "requirements" / "base.txt").write_text(
        "apache-airflow-providers-http  # a provider is fine\n-r more.txt\n")
    (tmp_path / "requirements" / "more.txt").write_text(
        f"# pinned by the team\napache-airflow @ file:///wheels/apache_airflow-{OTHER_AIRFLOW}"
        f"-py3-none-any.whl\napache-airflow==1.10.15 ; python_version < '3'\n"
        f"https://example.invalid/dist/apache-airflow-{OTHER_AIRFLOW}.tar.gz\n")
    proc = docker_run(images["base"], "runtime-install-requirements", "requirements.txt",
                      volumes={str(tmp_path): "/project:ro"}, workdir="/project")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    problems = [line.strip() for line in proc.stderr.splitlines()[1:]]
    assert problems == ["requirements/more.txt:2: apache-airflow @ file:///wheels/"
                        f"apache_airflow-{OTHER_AIRFLOW}-py3-none-any.whl",
                        "requirements/more.txt:4: https://example.invalid/dist/"
                        f"apache-airflow-{OTHER_AIRFLOW}.tar.gz"], proc.stderr


def test_the_base_flavor_has_no_onbuild_triggers(images, tag, tmp_path):
    # (a LABEL makes an image of its own: removing it must not remove the base)
    (tmp_path / "Dockerfile").write_text(f"FROM {images['base']}\nLABEL test=no-onbuild\n")
    (tmp_path / "requirements.txt").write_text("apache-airflow==1.10.15\n")
    proc = subprocess.run(["docker", "build", "--network", "none", "-t", tag, str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = docker_run(tag, "bash", "-c", "ls /usr/local/airflow; airflow version 2>/dev/null "
                                        "| tail -n 1").stdout.split()
    assert "requirements.txt" not in out and out[-1] == AIRFLOW
