"""The real image of line 4.2 and its attestations: SPDX valid for spdx-tools, CycloneDX valid
for its 1.5 schema, signed provenance; two builds (the second from a fresh cache that shares
only the fetched inputs) give byte-identical SBOMs and provenance; `invoke verify` passes,
and fails naming what broke when one byte of a layer, the SBOM, the provenance or the
signature is changed, or when the provenance names another commit; the push sends the
referrers with the image (tag schema on docker-registry 2.8) and verify reads them back.

Slow: each builds (a warm build takes seconds; the second build and verify's rebuild are cold
builds, about a minute each)."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rules.attest import provenance
from rules.oci import referrers
from rules.attest.verify import Layout
from rules.common.cache import default_cache
from rules.fetch.locked_inputs import cache_of_fetched
from rules.oci.layout import canonical
from tests.fixtures import REPO, invoke_argv, run_invoke
from tests.registry import PASSWORD, USER, registry

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
LINE = "4.2"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    private, public, keyid = provenance.generate_key(tmp_path_factory.mktemp("keys"))
    return private, public


@pytest.fixture(scope="module")
def built(tmp_path_factory, keys):
    out = tmp_path_factory.mktemp("built") / "layout"
    proc = run_invoke(REPO, "image", "--runtime", LINE, "--out", str(out),
                      env={provenance.KEY_ENV: str(keys[0])})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "attached:" in proc.stdout and "signed, keyid" in proc.stdout
    return out


def attached(layout: Path) -> dict:
    """(image digest, kind) -> bytes of each attached document."""
    lay = Layout(layout)
    out = {}
    for digest, _ in lay.images():
        for entry in lay.referrers(digest):
            manifest = json.loads(lay.read(entry["digest"], "artifact manifest"))
            kind = referrers.KIND[manifest["artifactType"]]
            out[(digest, kind)] = lay.read(manifest["layers"][0]["digest"], kind)
    return out


def run(*args, stdin=None):
    """`invoke ARGS` as a user runs it, with ``stdin`` (a password) on standard input."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("RUNTIME_CALLER_DIR", None)
    return subprocess.run(invoke_argv(*args), cwd=REPO, input=stdin, capture_output=True,
                          text=True, timeout=1500, env=env)


def verify(*args, stdin=None):
    return run("verify", *args, stdin=stdin)


def test_sboms_validate_and_provenance_is_signed(built, keys):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from ntia_conformance_checker.sbom_checker import SbomChecker
    from spdx_tools.spdx.parser.parse_anything import parse_file

    from rules.load import project
    from rules.lock import debian_lock
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    docs = attached(built)
    assert len(docs) == 6  # two flavors, three documents each
    for (digest, kind), data in docs.items():
        if kind == "SPDX SBOM":
            path = built.parent / "check.spdx.json"
            path.write_bytes(data)
            assert validate_full_spdx_document(parse_file(str(path))) == []
            ntia = SbomChecker(str(path), compliance="ntia")  # NTIA minimum elements
            assert ntia.compliant, (ntia.components_without_suppliers[:5],
                                    ntia.components_without_versions[:5])
            packages = json.loads(data)["packages"]
            locked = debian_lock.load(project.load(REPO))["packages"]
            assert sum(p["SPDXID"].startswith("SPDXRef-deb-") for p in packages) == len(locked)
        elif kind == "CycloneDX SBOM":
            assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(data.decode()) is None
        else:
            statement = provenance.open_envelope(data, [provenance.load_public_key(keys[1])])
            assert statement["subject"][0]["digest"]["sha256"] == digest[7:]


def test_the_graph_lists_the_sbom_actions_cached(built):
    proc = run_invoke(REPO, "graph", "--runtime", LINE, "--inputs", env={"COLUMNS": "250"})
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("│") for line in proc.stdout.splitlines() if line.startswith("│")]
    sboms = {(r[1].strip(), r[2].strip(), r[5].strip()) for r in rows
             if r[1].strip().startswith("sbom")}
    assert sboms == {("sbom facts", LINE, "yes"), ("sbom", f"{LINE} onbuild", "yes"),
                     ("sbom", f"{LINE} base", "yes")}
    assert "    wheel apache-airflow = action " in proc.stdout  # the patched wheel's key
    assert "    layer: debian base = " in proc.stdout


def test_two_builds_give_the_same_bytes(built, keys, tmp_path):
    """The second build's cache shares only fetched inputs: the SBOM facts, SBOMs, layers and
    provenance are all made again."""
    fresh = cache_of_fetched(default_cache(), tmp_path / "cache")
    out = tmp_path / "layout"
    proc = run_invoke(REPO, "image", "--runtime", LINE, "--out", str(out),
                      "--remote-cache", "off",
                      env={provenance.KEY_ENV: str(keys[0]), "RUNTIME_CACHE": str(fresh)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert attached(out) == attached(built)
    assert (out / "index.json").read_bytes() == (built / "index.json").read_bytes()


def test_verify_passes(built, keys):
    proc = verify(str(built), "--public-key", str(keys[1]), "--no-rebuild")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASS") == 2 * 5 and "SKIP" in proc.stdout


def test_unsigned_provenance_is_said_and_fails_verify_unless_allowed(tmp_path):
    out = tmp_path / "layout"
    env = {provenance.KEY_ENV: ""}
    proc = run_invoke(REPO, "image", "--runtime", LINE, "--flavor", "base", "--out", str(out),
                      env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "UNSIGNED (no --signing-key or $RUNTIME_SIGNING_KEY)" in proc.stdout
    assert "the provenance is unsigned" in failures(verify(str(out), "--no-rebuild"))
    proc = verify(str(out), "--no-rebuild", "--allow-unsigned")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the signature, the rebuild, and the release (a development build, not a recorded one)
    assert proc.stdout.count("SKIP") == 3


def copy_layout(src: Path, dst: Path) -> Path:
    """Hard links: replace a file (unlink, write) before changing it."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def rewrite(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def flip(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 1
    rewrite(path, bytes(data))


def swap_document(layout: Path, subject: str, kind: str, data: bytes) -> None:
    """Replace an attached document consistently (new blob, artifact manifest, index entry):
    only what the document means can give it away."""
    lay = Layout(layout)
    index = json.loads((layout / "index.json").read_bytes())
    for entry in index["manifests"]:
        if not entry.get("artifactType"):
            continue
        manifest = json.loads(lay.read(entry["digest"], "artifact manifest"))
        if manifest["subject"]["digest"] != subject or referrers.KIND[
                manifest["artifactType"]] != kind:
            continue
        sha = hashlib.sha256(data).hexdigest()
        (layout / "blobs/sha256" / sha).write_bytes(data)
        manifest["layers"][0].update(digest=f"sha256:{sha}", size=len(data))
        new = canonical(manifest)
        (layout / "blobs/sha256" / hashlib.sha256(new).hexdigest()).write_bytes(new)
        entry.update(digest="sha256:" + hashlib.sha256(new).hexdigest(), size=len(new))
    rewrite(layout / "index.json", canonical(index))


def onbuild(layout: Path) -> str:
    """The digest of the line's onbuild image."""
    from rules.image import policy
    from rules.load import project

    proj = project.load(REPO)
    line = proj.line(LINE)
    tag = policy.tag(proj.image(line), line.version, "onbuild")
    return next(d for d, tags in Layout(layout).images() if tag in tags)


def failures(proc) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return " ".join(line for line in proc.stdout.splitlines() if "FAIL" in line)


def test_one_byte_changed_is_named(built, keys, tmp_path):
    subject = onbuild(built)
    docs = attached(built)
    lay = Layout(built)
    manifest = json.loads(lay.read(subject, "image manifest"))
    cases = {}

    bad = copy_layout(built, tmp_path / "layer")
    flip(bad / "blobs/sha256" / manifest["layers"][3]["digest"][7:])
    cases["layer"] = (bad, "layer 4")

    bad = copy_layout(built, tmp_path / "sbom-blob")
    spdx = docs[(subject, "SPDX SBOM")]
    flip(bad / "blobs/sha256" / hashlib.sha256(spdx).hexdigest())
    cases["sbom blob"] = (bad, "SPDX SBOM")

    bad = copy_layout(built, tmp_path / "sbom-swapped")
    swap_document(bad, subject, "SPDX SBOM", spdx.replace(b'"tzdata"', b'"tzdatb"', 1))
    cases["sbom swapped"] = (bad, "is not the one the provenance names")

    bad = copy_layout(built, tmp_path / "provenance")
    envelope = json.loads(docs[(subject, "provenance")])
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[payload.index(b'"line":"4.2"') + 9] = ord("3")
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    swap_document(bad, subject, "provenance", json.dumps(envelope).encode())
    cases["provenance"] = (bad, "no valid signature")

    bad = copy_layout(built, tmp_path / "signature")
    envelope = json.loads(docs[(subject, "provenance")])
    sig = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig[5] ^= 1
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    swap_document(bad, subject, "provenance", json.dumps(envelope).encode())
    cases["signature"] = (bad, "no valid signature")

    for what, (layout, expected) in cases.items():
        proc = verify(str(layout), "--public-key", str(keys[1]), "--no-rebuild", "--tag",
                      subject)
        assert expected in failures(proc), (what, proc.stdout)


def test_verify_rebuilds_the_commit(built, keys):
    proc = verify(str(built), "--public-key", str(keys[1]), "--tag", onbuild(built))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rebuilt in a scratch clone" in proc.stdout


def test_provenance_naming_another_commit_fails_the_rebuild(built, keys, tmp_path):
    subject = onbuild(built)
    statement = provenance.open_envelope(attached(built)[(subject, "provenance")], None)
    git = ["git", "-C", str(REPO)]
    source = statement["predicate"]["buildDefinition"]["externalParameters"]["source"]
    parent = f"{source['commit']}~1"  # (an image of it differs at least by its revision)
    commit = subprocess.run([*git, "rev-parse", parent], capture_output=True, text=True,
                            check=True).stdout.strip()
    tree = subprocess.run([*git, "rev-parse", parent + "^{tree}"], capture_output=True,
                          text=True, check=True).stdout.strip()
    source.update(commit=commit, tree=tree)
    key = provenance.load_signing_key(str(keys[0]))
    bad = copy_layout(built, tmp_path / "other-commit")
    swap_document(bad, subject, "provenance", provenance.sign(statement, key))
    proc = verify(str(bad), "--public-key", str(keys[1]), "--tag", subject)
    out = failures(proc)
    assert "rebuild" in out and f"commit {commit[:12]} builds" in out, proc.stdout
    assert "signature" not in out


def test_push_sends_the_referrers_and_verify_reads_them_from_the_registry(built, keys):
    subject = onbuild(built)
    with registry() as reg:
        proc = run("push", "--from", str(built), "--to", f"{reg.host}/runtime", "--username",
                   USER, "--password-stdin", "--ca-cert", str(reg.ca), stdin=PASSWORD + "\n")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"sha256-{subject[7:]}" in proc.stdout and "tag schema" in proc.stdout
        from rules.oci.registry import Client, parse_target

        client = Client(parse_target(f"{reg.host}/runtime"), reg.ca, USER, PASSWORD).connect()
        assert not client.has_referrers_api(subject)
        kinds = sorted(d["artifactType"] for d in client.referrers(subject))
        assert kinds == sorted([referrers.SPDX, referrers.CYCLONEDX, referrers.IN_TOTO])
        proc = verify(f"{reg.host}/runtime@{subject}", "--public-key", str(keys[1]),
                      "--no-rebuild", "--username", USER, "--password-stdin", "--ca-cert",
                      str(reg.ca), stdin=PASSWORD + "\n")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.count("PASS") == 5
