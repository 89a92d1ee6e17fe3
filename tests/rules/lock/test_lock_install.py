"""A lock must install and run on the image's Python: bullseye's python3.9 in a real Debian
root (mmdebstrap from the Debian lock), `pip install --require-hashes`, `pip check`,
`airflow version`, `airflow db init`. Needs root and network; CI runs it for Airflow 2.2.4.
`./dev verify-lock` does the same for every Airflow version."""

import pytest

from rules.load import project
from rules.lock import lock_verify
from tests.fixtures import REPO


@pytest.mark.slow
def test_airflow_2_2_4_lock_installs_and_runs():
    result = lock_verify.verify(project.load(REPO), "2.2.4")
    assert result.reported_version == "2.2.4"
    assert {"install", "check", "version", "dbinit"} <= set(result.timings)
