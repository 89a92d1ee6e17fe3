"""Write an OCI image layout that `docker load` also accepts (manifest.json beside index.json).

Images of one tag for several platforms (amd64 and arm64) are put under one image index (an
``Index`` blob, whose ``manifests`` carry each one's ``platform``); index.json then tags the
index. manifest.json, which `docker load` reads, lists only the images of the host's
architecture (Docker 20.10 loads one platform; the engine then runs what it can).

Blobs are hard-linked (or copied) from the content-addressed cache; the layout is written in a
temp folder beside the output and renamed into place, so a failed build leaves no half output.
An existing folder at the output is replaced only if it is an earlier layout (rules.common.output).
"""

import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rules.common import atomic, output
from rules.fetch.download import cas_path
from rules.oci.layer import Layer

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
INDEX = "application/vnd.oci.image.index.v1+json"


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Image:
    """One image: its layers, config (the `config` part of the image config) and names."""

    repo: str
    tag: str
    layers: list[Layer]
    history: list[str]  # one `created_by` per layer
    config: dict
    epoch: int
    annotations: dict
    aliases: tuple[str, ...] = ()  # more tags of the same manifest (floating tags)
    architecture: str = "amd64"  # the Debian/OCI architecture (amd64, arm64)

    @property
    def tags(self) -> list[str]:
        return [self.tag, *self.aliases]

    @property
    def platform(self) -> dict:
        """The OCI platform of the image (arm64 with the "v8" variant, as Docker names it)."""
        return {"architecture": self.architecture, "os": "linux",
                **({"variant": "v8"} if self.architecture == "arm64" else {})}

    def config_blob(self) -> bytes:
        return canonical({
            **self.platform, "created": rfc3339(self.epoch),
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
            "history": [{"created": rfc3339(self.epoch), "created_by": h}
                        for h in self.history],
        })

    def manifest_blob(self) -> bytes:
        config = self.config_blob()
        return canonical({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": LAYER, "digest": layer.digest, "size": layer.size}
                       for layer in self.layers],
            "annotations": self.annotations,
        })

    @property
    def digest(self) -> str:
        return _digest(self.manifest_blob())


@dataclass
class Index:
    """An image index: one tag's images for several platforms (``images``, in their order)."""

    images: list[Image]

    @property
    def repo(self) -> str:
        return self.images[0].repo

    @property
    def tags(self) -> list[str]:
        return self.images[0].tags

    @property
    def tag(self) -> str:
        return self.images[0].tag

    def index_blob(self) -> bytes:
        annotations = {k: v for k, v in self.images[0].annotations.items()}
        return canonical({
            "schemaVersion": 2, "mediaType": INDEX,
            "manifests": [{"mediaType": MANIFEST, "digest": i.digest,
                           "size": len(i.manifest_blob()), "platform": i.platform}
                          for i in self.images],
            "annotations": annotations})

    @property
    def digest(self) -> str:
        return _digest(self.index_blob())


def group(images: list[Image]) -> list:
    """The layout's tagged things, in the images' order: an Image alone for a tag of one
    platform, an Index for a tag of several."""
    by_tag: dict[tuple[str, str], list[Image]] = {}
    for image in images:
        by_tag.setdefault((image.repo, image.tag), []).append(image)
    out = []
    for found in by_tag.values():
        arches = [i.architecture for i in found]
        if len(set(arches)) != len(arches):
            raise ValueError(f"{found[0].repo}:{found[0].tag}: two images of one platform")
        out.append(found[0] if len(found) == 1 else Index(found))
    return out


def host_architecture() -> str:
    import os

    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


LAYOUT = "an OCI image layout"


def check_out(out: Path) -> Path:
    """Refuse, before any work, an output folder that is not an earlier layout (absolute)."""
    return output.check_folder(out, output.is_image_layout, LAYOUT)


def write_layout(images: list[Image], out: Path, cache: Path, referrers=()) -> None:
    """``referrers``: artifact manifests attached to the images (rules.oci.referrers):
    their blobs come from the content-addressed store, and index.json lists them (with their
    artifactType, without a tag); manifest.json, which `docker load` reads, lists only the
    images."""
    out = check_out(out)
    work = output.work_folder(out)
    try:
        blobs = work / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        for image in images:
            for layer in image.layers:
                atomic.link_or_copy(layer.blob(cache),
                                    blobs / layer.digest.removeprefix("sha256:"))
            for data in (image.config_blob(), image.manifest_blob()):
                (blobs / _digest(data).removeprefix("sha256:")).write_bytes(data)
        for ref in referrers:
            for blob in ref.blobs:
                target = blobs / blob["digest"].removeprefix("sha256:")
                if not target.exists():
                    atomic.link_or_copy(cas_path(cache, blob["digest"][7:]), target)
            (blobs / ref.digest.removeprefix("sha256:")).write_bytes(ref.manifest)
        (work / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
        tagged = group(images)
        for item in tagged:
            if isinstance(item, Index):
                data = item.index_blob()
                (blobs / _digest(data).removeprefix("sha256:")).write_bytes(data)
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [
            {"mediaType": INDEX if isinstance(item, Index) else MANIFEST,
             "digest": item.digest,
             "size": len(item.index_blob() if isinstance(item, Index)
                         else item.manifest_blob()),
             "annotations": {"org.opencontainers.image.ref.name": tag,
                             "io.containerd.image.name": f"{item.repo}:{tag}"}}
            for item in tagged for tag in item.tags]
            + [ref.descriptor() for ref in referrers]}
        (work / "index.json").write_bytes(canonical(index))
        host = host_architecture()
        loadable = [i for i in images if len({j.architecture for j in images}) == 1
                    or i.architecture == host]
        docker = [{"Config": "blobs/sha256/" + _digest(image.config_blob())[7:],
                   "RepoTags": [f"{image.repo}:{tag}" for tag in image.tags],
                   "Layers": ["blobs/sha256/" + layer.digest[7:] for layer in image.layers]}
                  for image in loadable]
        (work / "manifest.json").write_bytes(canonical(docker))
        output.publish_folder(work, out, output.is_image_layout, LAYOUT)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def layout_tar(layout: Path):
    """Stream the layout as an uncompressed tar (what `docker load` reads), as chunks."""
    layout = Path(layout)
    buffer = io.BytesIO()
    names = sorted(p.relative_to(layout).as_posix() for p in layout.rglob("*") if p.is_file())
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tar.gettarinfo(layout / name, arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with open(layout / name, "rb") as f:
                tar.addfile(info, f)
            if buffer.tell() > 8 << 20:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


