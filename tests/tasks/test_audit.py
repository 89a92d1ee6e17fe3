"""`invoke audit` against Debian's real indexes (slow: `--refresh` needs the network once),
then offline on a copy of the project whose Debian lock holds an old curl: the fix waiting in
bullseye-security is listed and the audit fails; proxies pointing nowhere prove it reads only
the cache."""

import json
import shutil

import pytest

from rules.debian import debian_version
from rules.load import project
from rules.lock import debian_lock
from tests.fixtures import REPO, run_invoke

pytestmark = pytest.mark.slow
NOWHERE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}


@pytest.fixture(scope="module")
def refreshed():
    proc = run_invoke(REPO, "audit", "--refresh", "--runtime", "4.2", timeout=600)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return proc


def test_the_committed_locks_are_audited_offline_against_the_last_fetch(refreshed):
    proc = run_invoke(REPO, "audit", "--runtime", "4.2", env=NOWHERE)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    out = proc.stdout
    for _, suite in project.load(REPO).debian.archives:
        assert f"Debian {suite} main/amd64: index of " in out
    assert "NOT checked:" in out and "vulnerability database" in out
    assert "Python advisories" in out  # (checked, or said why not)
    assert "Traceback" not in proc.stderr


def test_an_old_package_in_the_lock_is_a_pending_security_fix(refreshed, tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__",
                                                              "out"))
    proj = project.load(copy)
    path = copy / proj.debian.lock
    document = json.loads(path.read_text())
    curl = next(p for p in document["packages"] if p["name"] == "curl")
    current, curl["version"] = curl["version"], "7.74.0-1.3+deb11u1"
    document["packages_sha256"] = debian_lock.packages_digest(document["packages"])
    path.write_text(json.dumps(document, indent=2) + "\n")
    proc = run_invoke(copy, "audit", "--runtime", "4.2", env=NOWHERE)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "│ curl " in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[:2] == ["curl", "7.74.0-1.3+deb11u1"]
    assert debian_version.compare(cells[2], current) >= 0
    assert cells[3:] == ["bullseye-security", "security fix"]
    assert "(1 with a security fix)" in proc.stdout
