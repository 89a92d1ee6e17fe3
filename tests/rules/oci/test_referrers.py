"""rules.oci.referrers: the artifact manifests (OCI 1.1) and the tag schema's index."""

import hashlib
import json

from rules.oci import referrers

SUBJECT = "sha256:" + "a" * 64


def attachment():
    return referrers.Attachment(referrers.SPDX, referrers.SPDX, "b" * 64, 10, "x.spdx.json")


def test_artifact_manifest_shape():
    ref = referrers.referrer(SUBJECT, 1234, attachment(), 1646179200)
    manifest = json.loads(ref.manifest)
    assert manifest["artifactType"] == "application/spdx+json"
    assert manifest["subject"] == {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                   "digest": SUBJECT, "size": 1234}
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert manifest["config"]["digest"] == "sha256:" + hashlib.sha256(b"{}").hexdigest()
    assert manifest["layers"][0]["digest"] == "sha256:" + "b" * 64
    assert manifest["annotations"] == {"org.opencontainers.image.created":
                                       "2022-03-02T00:00:00Z"}
    assert ref.manifest == referrers.referrer(SUBJECT, 1234, attachment(), 1646179200).manifest
    assert ref.descriptor()["artifactType"] == "application/spdx+json"


def test_tag_schema():
    assert referrers.tag_for(SUBJECT) == "sha256-" + "a" * 64
    ref = referrers.referrer(SUBJECT, 1, attachment(), 0)
    first = referrers.merged_index(None, [ref])
    assert referrers.merged_index(first, [ref]) == first  # idempotent
    someone = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": "sha256:" + "c" * 64, "size": 3, "artifactType": "x/y"}
    existing = json.dumps({"schemaVersion": 2, "manifests": [someone]}).encode()
    merged = json.loads(referrers.merged_index(existing, [ref]))
    assert [m["digest"] for m in merged["manifests"]] == [someone["digest"], ref.digest]
    assert merged["mediaType"] == "application/vnd.oci.image.index.v1+json"
