"""The action cache: one record per action key, in one format, for every kind of step.

``<cache>/actions/<key>.json``::

    {"format": 1, "kind": "layer", "label": "module ui", "key": "<sha256>",
     "inputs": {"ui/runtime_ui/footer.py as site/runtime_ui/footer.py": "<sha256>", ...},
     "blobs": {"layer": ["<sha256>", 12345]},         # in the content-addressed store
     "trees": {"root": "trees/<key>"},                # folders of this cache
     "values": {"diff_id": "sha256:...", ...}}

A hit needs the record and everything it names: each blob in the content-addressed store
(``cas/sha256/``) and each tree folder. Outputs are written before the record, each atomically
(a blob by rename, a tree by rename of a finished folder), and the record last, by rename: a
build killed at any point leaves either a complete entry or none, and two builds sharing one
cache at once write the same bytes under the same names. Blobs are what a remote cache can share
(rules.graph.remote); trees are local.

A record found in a remote cache has ``remote`` set: its blobs are not here yet, and
``Record.blob`` downloads one (checked against its digest) the first time an action asks for
its path, so a build reads only the bytes it really uses. Once all its blobs are here, the
record is written into this cache too (``put_record``).

``<cache>/targets/<digest of target>.json`` maps each action label of a target's last build to
its key, which is how ``--explain`` finds what the previous build of the same target used.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from rules.common import atomic
from rules.fetch.download import cas_path
from rules.graph.action import FORMAT, Action, Made, digest


class RemoteBlobError(Exception):
    """A remote record's blob could not be used (bytes not matching its digest, or the
    registry failed): the action of ``key`` must run locally."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass
class Record:
    kind: str
    label: str
    key: str
    inputs: dict[str, str]
    blobs: dict[str, tuple[str, int]] = field(default_factory=dict)
    trees: dict[str, str] = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    remote: object = field(default=None, compare=False, repr=False)  # a RemoteCache it is from

    def blob(self, cache: Path, name: str) -> Path:
        """The blob's path; a remote record's blob is downloaded first if it is not here."""
        path = cas_path(cache, self.blobs[name][0])
        if self.remote is not None and not path.exists():
            self.remote.fetch(self, name, cache)
        return path

    def local(self, cache: Path) -> bool:
        """All its blobs are in this cache's store."""
        return all(cas_path(cache, sha).exists() for sha, _ in self.blobs.values())

    def tree(self, cache: Path, name: str) -> Path:
        return Path(cache) / self.trees[name]

    def to_json(self) -> dict:
        return {"format": FORMAT, "kind": self.kind, "label": self.label, "key": self.key,
                "inputs": self.inputs, "blobs": {k: list(v) for k, v in self.blobs.items()},
                "trees": self.trees, "values": self.values}

    @classmethod
    def from_json(cls, data: dict) -> "Record":
        if data.get("format") != FORMAT:
            raise ValueError(f"record format {data.get('format')!r}")
        return cls(data["kind"], data["label"], data["key"], dict(data["inputs"]),
                   {k: (v[0], int(v[1])) for k, v in data["blobs"].items()},
                   dict(data["trees"]), dict(data["values"]))


def record_path(cache: Path, key: str) -> Path:
    return Path(cache) / "actions" / f"{key}.json"


def tree_path(cache: Path, kind: str, key: str) -> Path:
    """Where an action's tree output goes: ``trees/<kind>/<key>``."""
    return Path(cache) / "trees" / kind.replace(" ", "-") / key


def read(cache: Path, key: str) -> Record | None:
    """The record of ``key``, whether or not its outputs are still there."""
    try:
        return Record.from_json(json.loads(record_path(cache, key).read_text()))
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None  # none, or not ours (an older format, a torn file): a miss


def get(cache: Path, key: str) -> Record | None:
    """A hit: the record and all it names."""
    record = read(cache, key)
    if record is None:
        return None
    if not all(record.blob(cache, n).exists() for n in record.blobs):
        return None
    if not all(record.tree(cache, n).is_dir() for n in record.trees):
        return None
    return record


def put(cache: Path, action: Action, made: Made) -> Record:
    """Record what ``action`` made (its outputs are already in place)."""
    record = Record(action.kind, action.label, action.key, action.named_inputs(),
                    dict(made.blobs), dict(made.trees), dict(made.values))
    atomic.write_text(record_path(cache, action.key),
                      json.dumps(record.to_json(), sort_keys=True) + "\n")
    return record


def put_record(cache: Path, record: Record) -> None:
    """Keep a record made elsewhere (a remote cache's) whose outputs are now all here."""
    atomic.write_text(record_path(cache, record.key),
                      json.dumps(record.to_json(), sort_keys=True) + "\n")


def target_path(cache: Path, target: str) -> Path:
    return Path(cache) / "targets" / f"{digest(target)}.json"


def last_build(cache: Path, target: str) -> dict[str, str]:
    """Action label -> key, of the last build of ``target``."""
    try:
        return json.loads(target_path(cache, target).read_text())["actions"]
    except (OSError, ValueError, KeyError):
        return {}


def save_build(cache: Path, target: str, keys: dict[str, str]) -> None:
    atomic.write_if_changed(target_path(cache, target),
                            json.dumps({"target": target, "actions": keys},
                                       indent=1, sort_keys=True) + "\n")
