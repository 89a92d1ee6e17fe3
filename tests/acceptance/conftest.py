"""Session fixtures for the acceptance tests: the line's images loaded into the engine, and
real PostgreSQL and Redis servers on 127.0.0.1."""

import os
import subprocess

import pytest

from rules.image import policy
from tests import services
from tests.acceptance.containers import FLAVOR_TAGS, FLOATING_TAGS, IMAGE, LINE
from tests.fixtures import REPO, run_invoke
from rules.common.cache import default_cache


def _present(tags) -> set:
    """The tags the engine has now."""
    return {tag for tag in tags if subprocess.run(["docker", "image", "inspect", tag],
                                                   capture_output=True).returncode == 0}


@pytest.fixture(scope="session")
def images():
    tags = [policy.reference(IMAGE, t) for t in (*FLAVOR_TAGS.values(), *FLOATING_TAGS)]
    already = _present(tags)  # someone else's (another test session's): left in place
    proc = run_invoke(REPO, "fetch", "--runtime", LINE)
    assert proc.returncode == 0, proc.stderr
    # (a release's image-tests gate names its own folder, to compare what it tested)
    out = os.environ.get("RUNTIME_TEST_IMAGE_OUT") or default_cache() / "acceptance-out"
    proc = run_invoke(REPO, "image", "--runtime", LINE, "--load", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield {flavor: policy.reference(IMAGE, tag) for flavor, tag in FLAVOR_TAGS.items()}
    for tag in sorted(set(tags) - already):
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


@pytest.fixture(params=sorted(FLAVOR_TAGS))
def img(request, images):
    return images[request.param]


@pytest.fixture(scope="session")
def postgres_server():
    with services.postgres() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server():
    with services.redis() as server:
        yield server
