"""`invoke verify` on a layout of several platforms (rules.attest.verify.Layout): the images of
an image index are each checked, and an index that gives an image another platform than its
config's, or two images one platform, is refused (a pull would run the wrong one)."""

import hashlib
import json

import pytest

from rules.attest import verify
from rules.common.errors import UserError
from rules.oci.layout import INDEX, Image, canonical, write_layout
from tests.fixtures import cas_layer


def _layout(tmp_path):
    cache = tmp_path / "cache"
    images = [Image("runtime", "1.0.0", [cas_layer(cache, bytes([i + 1]))], ["made"], {}, 0,
                    {},
                    architecture=arch) for i, arch in enumerate(("amd64", "arm64"))]
    out = tmp_path / "layout"
    write_layout(images, out, cache)
    return out, images


def _replace_index(out, edit) -> None:
    """Rewrite the tag's index blob with ``edit`` applied, and point index.json at it."""
    top = json.loads((out / "index.json").read_text())
    entry = next(m for m in top["manifests"] if m["mediaType"] == INDEX)
    index = json.loads((out / "blobs/sha256" / entry["digest"][7:]).read_text())
    edit(index["manifests"])
    data = canonical(index)
    digest = hashlib.sha256(data).hexdigest()
    (out / "blobs/sha256" / digest).write_bytes(data)
    entry.update(digest=f"sha256:{digest}", size=len(data))
    (out / "index.json").write_text(json.dumps(top))


def test_each_image_of_an_index_carries_its_tags(tmp_path):
    out, images = _layout(tmp_path)
    assert verify.Layout(out).images() == [(i.digest, ["1.0.0"]) for i in images]


def test_swapped_platforms_are_refused(tmp_path):
    out, _ = _layout(tmp_path)

    def swap(manifests):
        manifests[0]["platform"], manifests[1]["platform"] = (manifests[1]["platform"],
                                                              manifests[0]["platform"])
    _replace_index(out, swap)
    with pytest.raises(UserError, match="says platform"):
        verify.Layout(out).images()


def test_an_extra_entry_for_another_platform_is_refused(tmp_path):
    out, _ = _layout(tmp_path)
    _replace_index(out, lambda m: m.append(dict(m[0], platform={
        "architecture": "arm", "os": "linux", "variant": "v7"})))
    with pytest.raises(UserError, match="says platform"):
        verify.Layout(out).images()


def test_a_digest_outside_the_layout_is_refused(tmp_path):
    out, _ = _layout(tmp_path)
    _replace_index(out, lambda m: m[0].update(digest="sha256:../../../etc/hostname"))
    with pytest.raises(UserError, match="not a sha256 digest"):
        verify.Layout(out).images()
