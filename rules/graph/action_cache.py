"""The action cache: action key (digest of every input) -> the layer it produced.

A hit needs both the record and the blob it names; records are written atomically after the
blob, so a build killed at any point leaves either a complete entry or none.
"""

import hashlib
import json
from pathlib import Path

from rules.common import atomic
from rules.oci.layer import Layer


def key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def get(cache: Path, action: str) -> Layer | None:
    record = Path(cache) / "actions" / f"{action}.json"
    if not record.exists():
        return None
    layer = Layer.from_json(json.loads(record.read_text()))
    return layer if layer.blob(cache).exists() else None


def put(cache: Path, action: str, layer: Layer) -> None:
    atomic.write_text(Path(cache) / "actions" / f"{action}.json",
                      json.dumps(layer.to_json(), sort_keys=True) + "\n")
