"""Push the images of an OCI image layout (what `invoke image` writes) to a registry
repository, with every tag the layout's index names (version tags and floating tags).

The order is what makes a push safe to watch and to repeat:

1. every blob (configs and layers, each once across the images) is HEAD-checked, and only the
   missing ones are uploaded, several at a time, largest first; a second push uploads 0 blobs;
2. each manifest is PUT by its digest, as the exact bytes the build wrote (the registry's
   digest is the built digest; a mismatch is an error);
3. only then are the tags PUT, one manifest PUT per tag. A tag is therefore never seen
   pointing at a manifest whose blobs are not all there: a push that fails (registry killed,
   disk full, 401) moves no tag, and the next push sends only what is still missing.

Two pushes of the same layout at once both succeed with the same digest: blob uploads of the
same digest are independent sessions the registry stores once, and manifest PUTs are
idempotent.

Artifacts attached to an image (its SBOMs and provenance: manifests whose ``subject`` is the
image, rules.oci.referrers) go with it: their blobs in step 1, their manifests in step 2,
then, before any tag moves, the image's referrers are made findable. A registry with the OCI 1.1
referrers API (`GET /v2/<repo>/referrers/<digest>` answers) indexes them itself; for one
without (docker-registry 2.8 answers 404) the tag schema fallback of the distribution spec 1.1
is used: the tag ``sha256-<hex of the image digest>`` is given an image index of the referrers'
descriptors, merged with the one already there. A tag therefore never names an image whose
attestations are not yet findable.

``push_images`` publishes images straight from a build (`invoke image --push-to`), in the same
order, without a layout: a layer that is not in the local store is mounted from the remote
cache's repository when it is on the same registry (no byte is downloaded or sent), else its
bytes are fetched first.
"""

import hashlib
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from rules.common.errors import UserError
from rules.oci.layout import INDEX
from rules.oci.registry import Client, RegistryError, TAG, Target

REF_NAME = "org.opencontainers.image.ref.name"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
WORKERS = 4  # concurrent blob uploads (measured: tools/bench_push.py)


@dataclass
class LayoutImage:
    digest: str
    media_type: str
    manifest: bytes
    tags: list[str]
    blobs: list[dict]  # config then layers: {"digest", "size"}
    subject: str | None = None  # an artifact attached to this image manifest (a referrer)
    artifact_type: str | None = None


@dataclass
class PushResult:
    target: Target
    images: list[LayoutImage]
    blobs_total: int = 0
    blobs_uploaded: int = 0
    bytes_uploaded: int = 0
    blobs_mounted: int = 0
    seconds: float = 0.0
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest


def read_layout(layout: Path) -> list[LayoutImage]:
    """The layout's images, grouped by manifest digest, with their tags (index order); an
    image index's images come before it, without tags, so that every manifest an index names
    is in the registry before the index (distribution refuses an index naming unknown ones)."""
    layout = Path(layout)
    try:
        index = json.loads((layout / "index.json").read_bytes())
    except (OSError, ValueError) as e:
        raise UserError(f"{layout} is not an OCI image layout: {e}") from None
    images: dict[str, LayoutImage] = {}

    def add(digest: str, media_type: str) -> None:
        if digest in images:
            return
        try:
            data = _blob(layout, digest).read_bytes()
            if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
                raise UserError(f"{layout}: manifest {digest[:19]} has other bytes than its "
                                "digest names")
            manifest = json.loads(data)
        except (OSError, ValueError, AttributeError) as e:
            raise UserError(f"{layout}: manifest {str(digest)[:80]} is missing or "
                            f"unreadable: {e}") from None
        if media_type == INDEX:  # an image index (one tag, several platforms): its
            for child in manifest.get("manifests", []):  # images go first, untagged
                add(child["digest"], child["mediaType"])
            images[digest] = LayoutImage(digest, media_type, data, [], [])
            return
        blobs = [manifest["config"], *manifest.get("layers", [])]
        images[digest] = LayoutImage(digest, media_type, data, [],
                                     [{"digest": b["digest"], "size": b["size"]}
                                      for b in blobs],
                                     (manifest.get("subject") or {}).get("digest"),
                                     manifest.get("artifactType"))

    for entry in index.get("manifests", []):
        digest = entry["digest"]
        tag = (entry.get("annotations") or {}).get(REF_NAME)
        add(digest, entry["mediaType"])
        if tag:
            if not TAG.match(tag):
                raise UserError(f"{layout}: {tag!r} is not a valid tag")
            images[digest].tags.append(tag)
    if not images:
        raise UserError(f"{layout}: the index names no image")
    for image in images.values():
        for blob in image.blobs:
            path = _blob(layout, blob["digest"])
            if not path.is_file() or path.stat().st_size != blob["size"]:
                raise UserError(f"{layout}: blob {blob['digest']} is missing or truncated")
    return list(images.values())


DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _blob(layout: Path, digest: str) -> Path:
    """The blob's file; a digest that is not sha256:<64 hex> is refused (a layout naming
    "sha256:../../etc/shadow" must not make push read, or send, a file outside it)."""
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise UserError(f"{layout}: {str(digest)[:80]!r} is not a sha256 digest")
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def push(layout: Path, client: Client, progress=print) -> PushResult:
    """Push every image of `layout` to the client's repository (see the module docstring)."""
    layout = Path(layout)
    images = read_layout(layout)

    def upload(digest: str, size: int) -> bool:
        return client.upload_blob(_blob(layout, digest), digest, size)
    return _push(images, client, upload, progress)


def push_images(images, client: Client, cache: Path, layer_path, mount_from: str | None = None,
                progress=print, referrers=()) -> PushResult:
    """Push built images (rules.oci.layout.Image) with their tags, without a layout: configs
    from memory; a layer from the local store if it is there, else mounted from repository
    ``mount_from`` of the same registry, else from ``layer_path(digest)`` (which fetches it)."""
    from rules.common import atomic
    from rules.fetch.download import cas_path

    built, configs = [], {}
    for image in images:
        config = image.config_blob()
        digest = "sha256:" + hashlib.sha256(config).hexdigest()
        configs[digest] = config
        manifest = image.manifest_blob()
        blobs = [{"digest": digest, "size": len(config)},
                 *({"digest": lay.digest, "size": lay.size} for lay in image.layers)]
        built.append(LayoutImage(image.digest, MANIFEST, manifest, list(image.tags), blobs))
    for ref in referrers:  # (their blobs are in the local store: the build made them)
        built.append(LayoutImage(ref.digest, MANIFEST, ref.manifest, [], list(ref.blobs),
                                 ref.subject, ref.artifact_type))

    def upload(digest: str, size: int) -> bool:
        path = cas_path(cache, digest.removeprefix("sha256:"))
        if digest in configs:
            if not path.exists():
                atomic.write_bytes(path, configs[digest])
            return client.upload_blob(path, digest, size)
        if path.exists():
            return client.upload_blob(path, digest, size, mount_from=mount_from)
        if mount_from and client.mount_blob(digest, mount_from):
            return False
        return client.upload_blob(layer_path(digest), digest, size)
    return _push(built, client, upload, progress)


def _push(images: list[LayoutImage], client: Client, upload, progress) -> PushResult:
    started = time.monotonic()
    result = PushResult(client.target, images)
    client.connect()  # credentials are checked before anything is sent
    try:
        _blobs_and_manifests(images, client, result, progress, upload)
        _referrers(images, client, progress)
    except RegistryError as e:
        raise RegistryError(f"{e}; no tag was moved (pushing again sends only what is "
                            f"missing)") from None
    for image in images:  # now the tags
        for tag in image.tags:
            try:
                client.put_manifest(tag, image.manifest, image.media_type)
            except RegistryError as e:
                moved = ", ".join(result.tags) or "none"
                raise RegistryError(f"{e}; every blob and manifest is there, tags moved: "
                                    f"{moved} (push again to move the rest)") from None
            result.tags[tag] = image.digest
            progress(f"{client.target}:{tag}  {image.digest}")
    result.seconds = time.monotonic() - started
    return result


def _blobs_and_manifests(images, client, result, progress, upload) -> None:
    """Steps 1 and 2: the missing blobs, then each manifest by digest (no tag yet)."""
    blobs = {b["digest"]: b["size"] for image in images for b in image.blobs}
    result.blobs_total = len(blobs)
    with ThreadPoolExecutor(WORKERS) as pool:
        exists = dict(zip(blobs, pool.map(client.blob_exists, blobs)))
        missing = sorted((d for d in blobs if not exists[d]), key=lambda d: -blobs[d])
        futures = {pool.submit(upload, d, blobs[d]): d for d in missing}
        try:
            for future in as_completed(futures):
                sent = future.result()
                result.blobs_uploaded += sent
                result.blobs_mounted += not sent
                result.bytes_uploaded += blobs[futures[future]] if sent else 0
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    progress(f"blobs: {result.blobs_uploaded} uploaded ({_mib(result.bytes_uploaded)}), "
             f"{result.blobs_total - len(missing)} already there")

    for image in images:  # every manifest by digest: no tag has moved yet
        digest = client.put_manifest(image.digest, image.manifest, image.media_type)
        if digest and digest != image.digest:
            raise RegistryError(f"{client.target.host}: stored the manifest as {digest}, "
                                f"built {image.digest}")


def _referrers(images: list[LayoutImage], client: Client, progress) -> None:
    """Make each image's referrers findable: the referrers API if the registry has one,
    else the tag schema (an index at tag sha256-<hex>, merged with what is there)."""
    from rules.oci import referrers as attest  # (the tag schema)

    by_subject: dict[str, list[LayoutImage]] = {}
    for image in images:
        if image.subject:
            by_subject.setdefault(image.subject, []).append(image)
    if not by_subject:
        return
    if client.has_referrers_api(next(iter(by_subject))):
        progress(f"referrers: {sum(map(len, by_subject.values()))} artifact(s), indexed by "
                 f"the registry's referrers API")
        return
    for subject, refs in by_subject.items():
        tag = attest.tag_for(subject)
        found = client.get_manifest(tag)
        index = attest.merged_index(found[0] if found else None, [
            attest.Referrer(subject, r.artifact_type or "", r.manifest, r.blobs) for r in refs])
        if found is None or found[0] != index:
            client.put_manifest(tag, index, INDEX)
        progress(f"{client.target}:{tag}  referrers of {subject[:19]} ({len(refs)} "
                 f"artifact(s), tag schema)")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
