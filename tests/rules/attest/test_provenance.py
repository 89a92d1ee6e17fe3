"""rules.attest.provenance: the in-toto statement, DSSE signing with ed25519 (deterministic),
verification, tampering, and where the key comes from."""

import base64
import json
from types import SimpleNamespace

import pytest

from rules.attest import provenance
from rules.common.errors import UserError

LINE = SimpleNamespace(name="4.2", version="4.2.1")
SOURCE = provenance.Source("a" * 40, "b" * 40, False)


def body(digest="sha256:" + "c" * 64):
    return provenance.statement("runtime:4.2.1", digest, LINE, "onbuild", SOURCE, 1646179200,
                                [provenance.dependency("constraints/x.txt", "d" * 64,
                                                       "git+file:constraints/x.txt")],
                                {"action format": "1"},
                                [{"name": "x.spdx.json", "digest": {"sha256": "e" * 64}}])


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    private, public, keyid = provenance.generate_key(folder)
    return private, public, keyid


def test_statement_fields():
    s = body()
    assert s["_type"] == "https://in-toto.io/Statement/v1"
    assert s["predicateType"] == "https://slsa.dev/provenance/v1"
    assert s["subject"] == [{"name": "runtime:4.2.1", "digest": {"sha256": "c" * 64}}]
    bd = s["predicate"]["buildDefinition"]
    assert bd["externalParameters"] == {"line": "4.2", "flavor": "onbuild", "source": {
        "commit": "a" * 40, "tree": "b" * 40}}
    assert bd["resolvedDependencies"][0]["digest"] == {"sha256": "d" * 64}
    run = s["predicate"]["runDetails"]
    assert run["builder"]["id"] == provenance.BUILDER_ID
    assert run["metadata"]["invocationId"].startswith("sha256:")
    assert "startedOn" not in run["metadata"]  # no clock
    assert provenance.canonical(body()) == provenance.canonical(body())


def test_ed25519_envelope_is_deterministic_and_verifies(keypair):
    private, public, keyid = keypair
    key = provenance.load_signing_key(str(private))
    assert key.keyid == keyid and key.public.scheme == "ed25519"
    one, two = provenance.sign(body(), key), provenance.sign(body(), key)
    assert one == two
    envelope = json.loads(one)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert envelope["signatures"][0]["keyid"] == keyid
    assert provenance.open_envelope(one, [provenance.load_public_key(public)]) == body()


def test_tampering_and_wrong_key_fail(keypair, tmp_path):
    private, public, _ = keypair
    key = provenance.load_signing_key(str(private))
    data = json.loads(provenance.sign(body(), key))
    verifier = [provenance.load_public_key(public)]
    other = body("sha256:" + "f" * 64)
    forged = dict(data, payload=base64.b64encode(provenance.canonical(other)).decode())
    with pytest.raises(provenance.SignatureError, match="no valid signature"):
        provenance.open_envelope(json.dumps(forged).encode(), verifier)
    sig = bytearray(base64.b64decode(data["signatures"][0]["sig"]))
    sig[0] ^= 1
    flipped = dict(data, signatures=[dict(data["signatures"][0],
                                          sig=base64.b64encode(bytes(sig)).decode())])
    with pytest.raises(provenance.SignatureError):
        provenance.open_envelope(json.dumps(flipped).encode(), verifier)
    _, other_public, _ = provenance.generate_key(tmp_path / "other")
    with pytest.raises(provenance.SignatureError, match="signed by keyid"):
        provenance.open_envelope(json.dumps(data).encode(),
                                 [provenance.load_public_key(other_public)])


def test_key_sources(keypair, monkeypatch, tmp_path):
    private, _, keyid = keypair
    monkeypatch.delenv(provenance.KEY_ENV, raising=False)
    assert provenance.load_signing_key(None) is None  # unsigned
    monkeypatch.setenv(provenance.KEY_ENV, str(private))
    assert provenance.load_signing_key(None).keyid == keyid
    monkeypatch.setenv(provenance.KEY_ENV, private.read_text())
    assert provenance.load_signing_key(None).keyid == keyid
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(UserError, match="not an unencrypted PEM private key"):
        provenance.load_signing_key(str(bad))
    with pytest.raises(UserError, match="No such file"):
        provenance.load_signing_key(str(tmp_path / "missing.pem"))
    with pytest.raises(UserError, match="exists"):
        provenance.generate_key(private.parent)
    assert oct(private.stat().st_mode & 0o777) == "0o600"
