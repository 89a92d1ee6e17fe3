"""A remote action cache in an OCI registry repository: action records and their blobs,
shared between machines by action key.

Layout in the repository (any OCI distribution registry: docker-registry, Harbor, GHCR...):

- one small OCI artifact per action, tagged ``action-<key>`` (71 characters; a tag may have
  128): an image manifest with ``artifactType`` ``application/vnd.runtime.action.v1+json``,
  whose config blob is the action's record (rules.graph.action_cache, the very JSON of
  ``actions/<key>.json``) and whose layers are the record's output blobs, by digest, in name
  order. Referencing the outputs from the manifest is what keeps a registry's garbage collector
  from deleting them, and what lets `invoke image --push-to` mount them into another repository
  of the same registry without downloading them.
- only actions whose outputs are all blobs are shared (layers, wheels, the file choice); an
  action with a tree output (a Debian root, the python root, a package tree) is local.

Reads: ``lookup(action)`` GETs the artifact by tag; its bytes are checked against the digest
the registry names, the record (config blob) against the manifest's digest for it, and the
record must be the one this action would write: same key, kind and named inputs, no trees,
the manifest's layers exactly its blobs. The record is then a hit whose blobs are downloaded
only when something asks for their bytes (``Record.blob`` calls ``fetch``), each checked
against its sha256 while it streams; bytes that do not match are never used: the key is
dropped from this build's remote hits, a warning names it, and the action runs locally.

Writes (unless read-only): after an action runs, ``store`` HEADs its blobs and uploads the
missing ones, then the record, then PUTs the manifest by tag (the tag moves last: a reader
never finds a record whose blobs are not there). Local hits found while planning are uploaded
too when the remote has no record of them (``backfill``), so a warm machine seeds the cache.

Faults never fail a build: an unreachable registry is one warning and the build goes on
locally (later calls are not tried again); writes refused (401/403: no or wrong credentials,
a read-only token) are one warning and reads go on.

Trust: a record is trusted as far as the registry's write access is. Whoever can push to the
repository can make any key name any bytes (the digests only prove the bytes are the ones the
record names, not that the action made them). ``--remote-cache-read-only`` is for builds of
untrusted code (pull requests): they read what trusted builds wrote and never write, so they
cannot poison what trusted builds read. Give write credentials to trusted builds only.
"""

import json
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rules.common import atomic
from rules.fetch.download import cas_path
from rules.graph import action_cache
from rules.graph.action import Action
from rules.graph.action_cache import Record, RemoteBlobError
from rules.oci.layout import canonical
from rules.oci.registry import Client, RegistryError, Target, parse_target

ARTIFACT_TYPE = "application/vnd.runtime.action.v1+json"
OUTPUT_TYPE = "application/vnd.runtime.output.v1"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TITLE = "org.opencontainers.image.title"
WORKERS = 4  # concurrent lookups, uploads and downloads


def tag(key: str) -> str:
    return f"action-{key}"


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def shareable(record: Record) -> bool:
    return not record.trees and bool(record.blobs)


class RemoteCache:
    """One registry repository used as an action cache (see the module docstring)."""

    def __init__(self, client: Client, read_only: bool = False, warn=_warn):
        self.client = client
        self.url = str(client.target)
        self.read_only = read_only
        self.enabled = True  # False once the registry failed: the build goes on locally
        self.writable = not read_only
        self.warn = warn
        self.bad: set[str] = set()  # keys whose remote record or blobs were not usable
        self._found: dict[str, Record | None] = {}
        self._lock = threading.Lock()
        self._blob_locks: dict[str, threading.Lock] = {}
        # what this build moved, for reports and the bench
        self.hits = self.blobs_downloaded = self.bytes_downloaded = 0
        self.records_uploaded = self.blobs_uploaded = self.bytes_uploaded = 0

    @property
    def repo(self) -> str:
        return self.client.target.repo

    @property
    def host(self) -> str:
        return self.client.target.host

    # --- faults ------------------------------------------------------------------------

    def _failed(self, error: RegistryError, doing: str) -> None:
        """A registry failure: writes refused stop the writes; anything else stops using the
        remote cache for the rest of the build. One warning each."""
        with self._lock:
            if error.denied and doing != "read":
                if self.writable:
                    self.writable = False
                    self.warn(f"remote cache {self.url}: writing refused ({error}); results are "
                              f"not shared, the build goes on (give write credentials: docker "
                              f"login, or --username and --password-stdin)")
                return
            if self.enabled:
                self.enabled = False
                self.warn(f"remote cache {self.url}: {error}; the build goes on without it")

    def _invalid(self, key: str, why: str) -> None:
        with self._lock:
            self.bad.add(key)
            self._found[key] = None
        self.warn(f"remote cache {self.url}: action {key} not used: {why}; it runs locally")

    # --- reads -------------------------------------------------------------------------

    def lookup(self, action: Action) -> Record | None:
        """The remote record of ``action``, checked (see the module docstring), or None."""
        key = action.key
        with self._lock:
            if not self.enabled or key in self.bad:
                return None
            if key in self._found:
                return self._found[key]
        record = self._lookup(action)
        with self._lock:
            self._found[key] = record
            self.hits += record is not None
        return record

    def _lookup(self, action: Action) -> Record | None:
        key = action.key
        try:
            got = self.client.get_manifest_checked(tag(key))
            if got is None:
                return None
            manifest = json.loads(got[0])
            config = manifest["config"]
            if config.get("mediaType") != ARTIFACT_TYPE:
                self._invalid(key, f"its manifest {got[1]} is not an action record")
                return None
            record = Record.from_json(json.loads(self.client.get_blob(config["digest"])))
        except RegistryError as e:
            if "has other bytes" in str(e) or "is named" in str(e):
                self._invalid(key, str(e))
            else:
                self._failed(e, "read")
            return None
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
            self._invalid(key, f"its record is not readable ({type(e).__name__}: {e})")
            return None
        layers = sorted((d.get("digest"), d.get("size")) for d in manifest.get("layers", []))
        blobs = sorted((f"sha256:{sha}", size) for sha, size in record.blobs.values())
        if (record.key != key or record.kind != action.kind
                or record.inputs != action.named_inputs()):
            self._invalid(key, "its record is not this action's (key, kind or inputs differ)")
            return None
        if record.trees or layers != blobs:
            self._invalid(key, "its manifest does not reference exactly its record's blobs")
            return None
        record.label = action.label
        record.remote = self
        return record

    def has(self, action: Action) -> bool:
        return self.lookup(action) is not None

    def fetch(self, record: Record, name: str, cache: Path) -> Path:
        """Download one blob of a remote record into the cache's store (checked against its
        sha256 while it streams; written by rename). Raises RemoteBlobError if it cannot."""
        sha, size = record.blobs[name]
        path = cas_path(cache, sha)
        with self._lock:
            lock = self._blob_locks.setdefault(sha, threading.Lock())
        with lock:
            if not path.exists():
                if record.key in self.bad or not self.enabled:
                    raise RemoteBlobError(record.key, f"remote blob {sha[:12]} not usable")
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".remote-")
                os.close(fd)
                os.unlink(tmp)
                try:
                    got = self.client.download_blob(f"sha256:{sha}", Path(tmp), self.repo)
                except RegistryError as e:
                    if "has other bytes" in str(e):
                        self._invalid(record.key, f"{record.kind} {record.label}: output "
                                      f"{name}: {e}")
                    else:
                        self._failed(e, "read")
                    raise RemoteBlobError(record.key, str(e)) from None
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
                with self._lock:
                    self.blobs_downloaded += 1
                    self.bytes_downloaded += got
        if record.local(cache) and action_cache.read(cache, record.key) is None:
            action_cache.put_record(cache, record)
        return path

    def ensure(self, record: Record, cache: Path) -> Record:
        """All of a record's blobs in the local store (downloaded as needed)."""
        for name in sorted(record.blobs):
            record.blob(cache, name)
        return record

    # --- writes ------------------------------------------------------------------------

    def store(self, record: Record, cache: Path) -> bool:
        """Share a local record and its blobs (not if read-only, or it has trees). True if
        it was written."""
        if not (self.enabled and self.writable) or not shareable(record):
            return False
        try:
            self._store(record, cache)
        except RegistryError as e:
            self._failed(e, "write")
            return False
        return True

    def _store(self, record: Record, cache: Path) -> None:
        layers = []
        for name in sorted(record.blobs):
            sha, size = record.blobs[name]
            digest = f"sha256:{sha}"
            if not self.client.blob_exists(digest):
                self.client.upload_blob(cas_path(cache, sha), digest, size)
                with self._lock:
                    self.blobs_uploaded += 1
                    self.bytes_uploaded += size
            layers.append({"mediaType": OUTPUT_TYPE, "digest": digest, "size": size,
                           "annotations": {TITLE: name}})
        data = (json.dumps(record.to_json(), sort_keys=True) + "\n").encode()
        config = _digest(data)
        if not self.client.blob_exists(config):
            path = cas_path(cache, config.removeprefix("sha256:"))
            if not path.exists():
                atomic.write_bytes(path, data)
            self.client.upload_blob(path, config, len(data))
        manifest = canonical({
            "schemaVersion": 2, "mediaType": MANIFEST, "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": ARTIFACT_TYPE, "digest": config, "size": len(data)},
            "layers": layers,
            "annotations": {"org.opencontainers.image.title": f"{record.kind}: {record.label}"}})
        self.client.put_manifest(tag(record.key), manifest, MANIFEST)
        with self._lock:
            self.records_uploaded += 1
            self.bytes_uploaded += len(data) + len(manifest)

    def backfill(self, records: list[Record], cache: Path) -> None:
        """Upload the local records (hits of this build) the remote cache has no record of."""
        todo = [r for r in records if r.remote is None and shareable(r)]
        if not todo or not (self.enabled and self.writable):
            return

        def one(record: Record) -> None:
            if not (self.enabled and self.writable):
                return
            try:
                if self.client.manifest_digest(tag(record.key)) is None:
                    self._store(record, cache)
            except RegistryError as e:
                self._failed(e, "write")
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(one, todo))

    def summary(self) -> str:
        mode = "read-only" if self.read_only else ("read/write" if self.writable
                                                   else "read (writes refused)")
        if not self.enabled:
            return f"remote cache {self.url}: not used (it failed)"
        return (f"remote cache {self.url} ({mode}): {self.hits} hit(s); downloaded "
                f"{self.blobs_downloaded} blob(s), {self.bytes_downloaded:,} bytes; uploaded "
                f"{self.records_uploaded} record(s), {self.blobs_uploaded} blob(s), "
                f"{self.bytes_uploaded:,} bytes")


def _digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def open_cache(url: str, read_only: bool = False, ca_cert=None, username=None, password=None,
               warn=_warn) -> RemoteCache | None:
    """Connect to the remote cache at ``url`` (HOST[:PORT]/REPO); None, after one warning,
    if it cannot be used (unreachable, credentials refused): the build goes on locally."""
    target: Target = parse_target(url)  # a malformed URL is the user's error, raised
    client = Client(target, ca_cert, username, password)
    try:
        client.connect()
    except RegistryError as e:
        why = "credentials refused" if e.denied else "unreachable"
        warn(f"remote cache {target}: {why} ({e}); the build goes on locally without it")
        return None
    return RemoteCache(client, read_only, warn)
