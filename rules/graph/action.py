"""An action: one step of a build that produces outputs from declared inputs.

Every step that makes something (a Debian root, the python root, a package tree of a build
tool, a wheel built from an sdist, the patched Airflow wheel, a layer) is an ``Action``:

- ``inputs`` names each input and gives its digest or value: a locked file's sha256, a source
  file's sha256, a recipe number, a parameter. An input made by another action is named by that
  action's key (``deps``), so every key of a graph is known before anything runs: `invoke graph`
  prints them all, and a remote cache can be asked for a whole image by keys alone. (Keys are
  input-addressed, as Nix's are; Bazel keys an action by the content of its inputs instead, which
  would let a rebuilt identical wheel stop a rebuild below it, at the price of keys unknown
  until the actions above have run. None of our rebuilt inputs is cheap to make twice.)
- ``key`` is the sha256 of exactly the kind, the engine's action format and those inputs.
- ``run(deps)`` makes the outputs and returns a ``Made``: blobs already in the content-addressed
  store (rules.fetch.download.cas_path), local trees (folders of the cache named by key), and
  small JSON values. It gets the records of its ``deps``.

The record of a run (rules.graph.action_cache) is the one format every step's result is kept in.
"""

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

# Part of every key: bump when the record or key format changes.
FORMAT = 1


@dataclass
class Made:
    """What an action's run produced."""

    blobs: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (sha256, size)
    trees: dict[str, str] = field(default_factory=dict)  # name -> folder, relative to the cache
    values: dict = field(default_factory=dict)  # small JSON facts (a file name, a diff_id)


@dataclass(eq=False)
class Action:
    kind: str  # what sort of step: "layer", "debian root", "sdist wheel", ...
    label: str  # which one, for people: "module ui", "psycopg2 2.9.1"
    inputs: dict[str, str]  # input name -> digest or value
    run: Callable[[dict], Made] = field(repr=False)  # deps' records (by label) -> Made
    deps: tuple["Action", ...] = ()
    in_worker: bool = False  # Python-heavy: the scheduler runs it in a worker process
    weight: int = 0  # bytes of input, to start the largest first
    urgent: bool = False  # on the longest chain of a cold build: started first
    _key: str | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        if self._key is None:
            named = dict(self.inputs)
            for dep in self.deps:
                named[f"{dep.kind}: {dep.label}"] = dep.key
            self._key = digest({"format": FORMAT, "kind": self.kind, "inputs": named})
        return self._key

    def named_inputs(self) -> dict[str, str]:
        """The inputs the key is made of, those made by other actions included."""
        return {**self.inputs, **{f"{d.kind}: {d.label}": d.key for d in self.deps}}


def digest(value) -> str:
    """sha256 of the canonical JSON of ``value``."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
