"""`invoke pex`: the line's environment as one PEX, reproducible, runnable on the image's
python3.9. Needs root (it builds in the Debian root) and fetched inputs."""

import shutil

import pytest

from rules.load import project
from rules.python import pex_build
from tests.fixtures import REPO, run_invoke
from rules.common.cache import default_cache

pytestmark = pytest.mark.slow


def test_pex_is_reproducible_and_runs_airflow(tmp_path):
    proc = run_invoke(REPO, "fetch", "--runtime", "4.2")
    assert proc.returncode == 0, proc.stderr
    proj, cache = project.load(REPO), default_cache()
    first, digest = pex_build.build(proj, "4.2", tmp_path / "one", cache)
    again, digest_again = pex_build.build(proj, "4.2", tmp_path / "two", cache)
    assert digest == digest_again and first.read_bytes() == again.read_bytes()
    assert first.name == f"runtime-{proj.lines['4.2'].version}.pex"
    # the PEX holds the same Airflow as the image: the patched wheel
    version = pex_build.run(proj, "4.2", first, ["version"], cache).strip().splitlines()[-1]
    assert version == proj.airflow_version("2.2.4")
    shutil.rmtree(tmp_path, ignore_errors=True)
