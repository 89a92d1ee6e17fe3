"""The line's Airflow is the patched wheel: it says so (`airflow version`, `pip show`, the pip
constraints), and each backported fix has a check that fails on upstream's Airflow and passes
on the image's. Upstream's Airflow is the locked upstream wheel's `airflow` package, mounted
and put first on PYTHONPATH in the same image (all other packages are the image's)."""

import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.acceptance.containers import AIRFLOW, PROJECT, RUNTIME, docker_run, sh
from tests.fixtures import upstream_airflow_wheel

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
PATCHES = PROJECT.patches.get(RUNTIME.airflow)
CHECKS = Path(__file__).with_name("backports")


def check_script(patch: str) -> Path:
    return CHECKS / RUNTIME.airflow / (Path(patch).stem + ".py")


@pytest.fixture(scope="module")
def upstream_airflow():
    """A folder holding upstream's `airflow` package, from the locked (unpatched) wheel."""
    wheel, _ = upstream_airflow_wheel(PROJECT, RUNTIME.airflow)
    tmp = Path(tempfile.mkdtemp(prefix="upstream-airflow-"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp, [n for n in zf.namelist() if n.startswith("airflow/")])
    tmp.chmod(0o755)
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


def test_airflow_version_and_pip_show_report_the_patched_wheel(images):
    img = images["base"]
    assert PATCHES, f"Airflow {RUNTIME.airflow} has no airflow_patches target"
    assert AIRFLOW == f"{RUNTIME.airflow}+runtime.{PATCHES.revision}"
    out = sh(img, "airflow version 2>/dev/null | tail -n 1; pip show apache-airflow "
                  "2>/dev/null | grep '^Version:'; grep '^apache-airflow==' "
                  "/usr/local/share/runtime/constraints.txt; pip check >/dev/null && echo ok")
    assert out.split("\n")[:4] == [AIRFLOW, f"Version: {AIRFLOW}", f"apache-airflow=={AIRFLOW}",
                                   "ok"], out


def test_every_backport_has_a_check():
    assert PATCHES
    missing = [p for p in PATCHES.patches if not check_script(p).is_file()]
    assert not missing, f"backports without a check in {CHECKS}: {missing}"


@pytest.mark.parametrize("patch", PATCHES.patches if PATCHES else [],
                         ids=lambda p: Path(p).stem)
def test_backport_fixes_what_upstream_airflow_gets_wrong(images, upstream_airflow, patch):
    img = images["base"]
    script = check_script(patch)
    mounts = {str(script.parent): "/checks", str(upstream_airflow): "/upstream"}
    # which airflow package the check imports, then the check itself
    run = f"python -c 'import airflow; print(airflow.__file__)' 2>/dev/null | tail -n 1; " \
          f"python /checks/{script.name}"
    before = docker_run(img, "bash", "-c", run, volumes=mounts, env={"PYTHONPATH": "/upstream"})
    after = docker_run(img, "bash", "-c", run, volumes=mounts)
    assert before.stdout.startswith("/upstream/airflow/__init__.py\n"), before.stdout
    assert before.returncode == 1 and "BUG:" in before.stdout, \
        "upstream Airflow should show the bug:\n" + before.stdout + before.stderr
    assert after.stdout.startswith("/usr/local/lib/python3.9/dist-packages/airflow/"), after.stdout
    assert after.returncode == 0 and "BUG:" not in after.stdout, \
        "the patched Airflow should not:\n" + after.stdout + after.stderr
