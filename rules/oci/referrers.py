"""SBOMs and provenance attached to an image as OCI 1.1 artifacts (referrers).

Each attestation is an image manifest whose ``subject`` is the image's manifest (OCI image spec
1.1, "Guidelines for artifact usage"): ``artifactType`` says what it is, ``config`` is the empty
descriptor (``application/vnd.oci.empty.v1+json``, the 2 bytes ``{}``), and its one layer is
the document:

| artifactType | layer media type | what |
|---|---|---|
| application/spdx+json | application/spdx+json | SPDX 2.3 SBOM |
| application/vnd.cyclonedx+json | application/vnd.cyclonedx+json | CycloneDX 1.5 SBOM |
| application/vnd.in-toto+json | application/vnd.dsse.envelope.v1+json | signed SLSA provenance |
| application/vnd.in-toto+json | application/vnd.in-toto+json | unsigned SLSA provenance |

In the OCI layout (image-layout spec 1.1), the artifact manifests are blobs and are listed in
index.json beside the images, with their ``artifactType`` and no ref.name (they are not tags;
`docker load` reads manifest.json, which lists only the images). In a registry they are
pushed by digest, and found through the referrers API where the registry has one; where it has
none (docker-registry 2.8 has none), through the OCI 1.1 tag schema: the tag
``sha256-<hex of the subject's digest>`` holds an image index of the referrers' descriptors
(see rules.oci.push). The manifests carry no time but the line's SOURCE_DATE_EPOCH, so their
digests are reproducible too.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from rules.oci.layout import MANIFEST, canonical, rfc3339

EMPTY_MEDIA = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY).hexdigest()
SPDX = "application/spdx+json"
CYCLONEDX = "application/vnd.cyclonedx+json"
IN_TOTO = "application/vnd.in-toto+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
KIND = {SPDX: "SPDX SBOM", CYCLONEDX: "CycloneDX SBOM", IN_TOTO: "provenance"}
CREATED = "org.opencontainers.image.created"


@dataclass
class Attachment:
    """One document to attach: a blob of the content-addressed store."""

    artifact_type: str
    media_type: str
    sha256: str
    size: int
    title: str  # file name, for people (org.opencontainers.image.title)

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256}"


@dataclass
class Referrer:
    """An artifact manifest attached to ``subject`` (an image manifest's digest)."""

    subject: str
    artifact_type: str
    manifest: bytes
    blobs: list[dict] = field(default_factory=list)  # config then layers: {digest, size}

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()

    def descriptor(self) -> dict:
        """How an index (the layout's, or the tag schema's) lists it."""
        annotations = json.loads(self.manifest).get("annotations") or {}
        return {"mediaType": MANIFEST, "digest": self.digest, "size": len(self.manifest),
                "artifactType": self.artifact_type, "annotations": annotations}


def referrer(subject_digest: str, subject_size: int, attachment: Attachment,
             epoch: int) -> Referrer:
    manifest = canonical({
        "schemaVersion": 2, "mediaType": MANIFEST, "artifactType": attachment.artifact_type,
        "config": {"mediaType": EMPTY_MEDIA, "digest": EMPTY_DIGEST, "size": len(EMPTY),
                   "data": "e30="},
        "layers": [{"mediaType": attachment.media_type, "digest": attachment.digest,
                    "size": attachment.size,
                    "annotations": {"org.opencontainers.image.title": attachment.title}}],
        "subject": {"mediaType": MANIFEST, "digest": subject_digest, "size": subject_size},
        "annotations": {CREATED: rfc3339(epoch)},
    })
    return Referrer(subject_digest, attachment.artifact_type, manifest,
                    [{"digest": EMPTY_DIGEST, "size": len(EMPTY)},
                     {"digest": attachment.digest, "size": attachment.size}])


def tag_for(subject_digest: str) -> str:
    """The OCI 1.1 referrers tag schema: sha256:<hex> -> sha256-<hex>."""
    algorithm, _, hexdigest = subject_digest.partition(":")
    return f"{algorithm}-{hexdigest}"[:128]


def merged_index(existing: bytes | None, referrers: list[Referrer]) -> bytes:
    """The tag schema's image index: the descriptors already there, then ours not yet listed."""
    from rules.oci.layout import INDEX

    manifests = []
    if existing:
        try:
            manifests = list(json.loads(existing).get("manifests") or [])
        except (ValueError, AttributeError):
            manifests = []
    have = {m.get("digest") for m in manifests}
    manifests += [r.descriptor() for r in referrers if r.digest not in have]
    return canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests})


def blob_path(cache: Path, digest: str) -> Path:
    from rules.fetch.download import cas_path

    return cas_path(cache, digest.removeprefix("sha256:"))


def ensure_empty(cache: Path) -> Path:
    """The empty config blob, in the content-addressed store."""
    from rules.common import atomic

    path = blob_path(cache, EMPTY_DIGEST)
    if not path.exists():
        atomic.write_bytes(path, EMPTY)
    return path
