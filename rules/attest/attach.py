"""The attestations of a build's images: each image's SBOMs (already made by the ``sbom``
actions of the line's graph) and its provenance (made here, once the image's digest is known),
as OCI referrers of the image (rules.oci.referrers), for the layout writer and the push.

The provenance is a ``provenance`` action too (keyed by the statement's digest and the signing
key's id), so a second build reuses the envelope, and a remote cache shares it.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from rules.attest import provenance
from rules.oci import referrers
from rules.oci.referrers import Attachment, Referrer
from rules.common import atomic
from rules.graph import scheduler
from rules.graph.action import Action, Made

PROVENANCE_RECIPE = 1


@dataclass
class Attested:
    flavor: str
    image: str  # the image's manifest digest
    spdx: Attachment
    cyclonedx: Attachment
    provenance: Attachment
    keyid: str | None  # None: unsigned
    referrers: list[Referrer] = field(default_factory=list)


def _attachment(record, cache: Path, name: str, artifact_type: str, media_type: str,
                title: str) -> Attachment:
    record.blob(cache, name)  # (a remote record's blob is downloaded)
    sha, size = record.blobs[name]
    return Attachment(artifact_type, media_type, sha, size, title)


def attestations(project, line, images: dict, sbom_records: dict, cache: Path,
                 signing_key=None, remote=None, arch: str | None = None) -> list[Attested]:
    """For each flavor's image (rules.oci.layout.Image) its attachments and referrers;
    ``arch``: the images' Debian architecture (the main lock's by default)."""
    from rules.fetch import pypi_files

    root = Path(project.root)
    lock = project.locks[line.airflow].lock
    foreign = arch not in (None, project.debian.arch)
    platform = pypi_files.platform_for(project.python.platform, arch) if foreign else None
    choices = pypi_files.load_choices(cache, (root / lock).read_text(encoding="utf-8"), lock,
                                      remote=remote, platform=platform)
    dependencies = provenance.resolved_dependencies(project, line, choices,
                                                    arch if foreign else None)
    source = provenance.git_source(root)
    builder = provenance.builder_version(root)
    keyid = signing_key.keyid if signing_key else None
    out, actions = [], {}
    for flavor, image in images.items():
        record = sbom_records[flavor]
        stem = f"{image.repo}-{image.tag}"
        spdx = _attachment(record, cache, "spdx", referrers.SPDX, referrers.SPDX,
                           f"{stem}.spdx.json")
        cdx = _attachment(record, cache, "cyclonedx", referrers.CYCLONEDX,
                          referrers.CYCLONEDX, f"{stem}.cdx.json")
        byproducts = [{"name": a.title, "mediaType": a.media_type,
                       "digest": {"sha256": a.sha256}} for a in (spdx, cdx)]
        body = provenance.statement(f"{image.repo}:{image.tag}", image.digest, line, flavor,
                                    source, line.source_date_epoch, dependencies, builder,
                                    byproducts, f"linux/{arch}" if foreign else None)
        actions[flavor] = _provenance_action(line, flavor, body, signing_key)
        out.append(Attested(flavor, image.digest, spdx, cdx, None, keyid))
    outcomes = scheduler.run(list(actions.values()), cache, remote=remote)
    referrers.ensure_empty(cache)
    for attested, image in zip(out, images.values()):
        record = outcomes[actions[attested.flavor]].record
        media = referrers.DSSE if keyid else referrers.IN_TOTO
        suffix = "intoto.dsse.json" if keyid else "intoto.json"
        attested.provenance = _attachment(record, cache, "provenance", referrers.IN_TOTO,
                                          media, f"{image.repo}-{image.tag}.{suffix}")
        manifest = image.manifest_blob()
        attested.referrers = [referrers.referrer(image.digest, len(manifest), a,
                                                 line.source_date_epoch)
                              for a in (attested.spdx, attested.cyclonedx,
                                        attested.provenance)]
    return out


def _provenance_action(line, flavor: str, body: dict, signing_key) -> Action:
    statement = provenance.canonical(body)

    def run(ctx) -> Made:
        from rules.fetch.download import cas_path

        data = provenance.sign(body, signing_key) if signing_key else statement + b"\n"
        sha = hashlib.sha256(data).hexdigest()
        path = cas_path(ctx.cache, sha)
        if not path.exists():
            atomic.write_bytes(path, data)
        return Made(blobs={"provenance": (sha, len(data))},
                    values={"signed": bool(signing_key)})

    inputs = {"recipe": str(PROVENANCE_RECIPE),
              "statement": hashlib.sha256(statement).hexdigest(),
              "signing key": signing_key.keyid if signing_key else "unsigned"}
    return Action("provenance", f"{line.name} {flavor}", inputs, run)


def summary(attested: list[Attested]) -> list[str]:
    """Lines for people: what was attached to each image."""
    lines = []
    for a in attested:
        signed = (f"signed, keyid {a.keyid[:16]}" if a.keyid else
                  "UNSIGNED (no --signing-key or $RUNTIME_SIGNING_KEY)")
        lines.append(f"{a.flavor} {a.image[:19]}: SPDX {a.spdx.digest[:19]}, CycloneDX "
                     f"{a.cyclonedx.digest[:19]}, provenance {a.provenance.digest[:19]} "
                     f"({signed})")
    return lines


def statement_of(data: bytes) -> dict:
    """The statement of a provenance blob, signed or not (signature not checked)."""
    value = json.loads(data)
    if "payload" in value:
        import base64

        return json.loads(base64.b64decode(value["payload"]))
    return value
