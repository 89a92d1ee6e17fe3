"""What an image build reads, made once and shared by its layers: the Debian root, the small root
of the image's python3.9, verified blobs of the locked inputs, and the wheel of every locked
distribution (sdists built, Airflow patched)."""

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rules.debian import debian_rootfs, python_root
from rules.fetch import download, pypi_files
from rules.fetch.verified import VerifiedBlobs
from rules.load.model import Project
from rules.lock import debian_lock
from rules.python import patched_wheel, sdist_build


class Inputs:
    """Lazily made inputs shared by several layers (the Debian root, the small root of the
    image's python3.9, verified blobs). Each has its own lock: layers compiled in the python
    root go on while the Debian root is being made. Used as a context manager by an image
    build: a Debian root made for the build lives in a scratch folder until the build ends."""

    def __init__(self, project: Project, cache: Path, epoch: int):
        self.project, self.cache, self.epoch = project, cache, epoch
        self.rootfs_key = debian_rootfs.rootfs_key(project, epoch)
        self.python_key = python_root.key(project)
        self._rootfs: Path | None = None  # the Debian root of this build (cache or scratch)
        self._python_root = None
        self._rootfs_error: BaseException | None = None  # made once: a failure is not retried
        self._verified = VerifiedBlobs(cache)
        self._scratch = contextlib.ExitStack()
        self._lock = threading.Lock()
        self._rootfs_lock = threading.Lock()
        self._python_lock = threading.Lock()

    def __enter__(self) -> "Inputs":
        return self

    def __exit__(self, *exc) -> None:
        self._scratch.close()  # removes a root made in a scratch folder

    def rootfs(self) -> Path:
        """The Debian root in the cache, for what runs in it (sdist builds, the PEX): copied
        there from this build's root, or made."""
        with self._rootfs_lock:
            done = self.cache / "rootfs" / self.rootfs_key
            if not done.is_dir():
                if self._rootfs is not None:
                    debian_rootfs.publish(self._rootfs, done)
                else:
                    self._make_root(lambda: debian_rootfs.build(self.project, self.cache,
                                                                self.epoch))
            self._rootfs = done
            return done

    def base_root(self) -> Path:
        """The Debian root the base layer is written from: the cache's if it is there, else
        one made in a scratch folder for this build only (copying it into the cache would
        cost a cold build about 1.4 s; later builds find the base layer in the action cache
        and the few files they read in the root's facts)."""
        with self._rootfs_lock:
            if self._rootfs is None:
                cached = self.cache / "rootfs" / self.rootfs_key
                self._rootfs = cached if cached.is_dir() else self._make_root(
                    lambda: self._scratch.enter_context(
                        debian_rootfs.made(self.project, self.cache, self.epoch)))
            return self._rootfs

    def root_text(self, rel: str) -> str:
        """A file of the Debian root: from this build's root, else the facts saved when the
        root was made (rules.debian.debian_rootfs.FACTS), else from a root made for it."""
        with self._rootfs_lock:
            root = self._rootfs
        if root is None:
            saved = debian_rootfs.fact(self.cache, self.rootfs_key, rel)
            if saved is not None:
                return saved
            root = self.base_root()
        return (root / rel).read_text(encoding="utf-8")

    def _make_root(self, make) -> Path:
        """(with _rootfs_lock held)"""
        if self._rootfs_error is not None:
            raise self._rootfs_error
        try:
            for pkg in debian_lock.load(self.project)["packages"]:
                self.verify(pkg["sha256"], pkg["filename"])
            return make()
        except BaseException as e:
            self._rootfs_error = e
            raise

    def rootfs_cached(self) -> bool:
        return debian_rootfs.cached(self.cache, self.rootfs_key)

    def python_root(self) -> Path:
        """Where the image's python3.9 byte-compiles (see rules.debian.python_root)."""
        with self._python_lock:
            if self._python_root is None:
                for pkg in python_root.packages(self.project):
                    self.verify(pkg["sha256"], pkg["filename"])
                self._python_root = python_root.build(self.project, self.cache)
            return self._python_root

    def verify_all(self, airflow: str) -> None:
        """Check every locked input of an Airflow version (the Debian packages, the chosen
        wheels and sdists): a missing or changed file stops the build before it starts."""
        for pkg in debian_lock.load(self.project)["packages"]:
            self.verify(pkg["sha256"], pkg["filename"])
        lock = self.project.locks[airflow]
        text = (Path(self.project.root) / lock.lock).read_text(encoding="utf-8")
        for c in pypi_files.load_choices(self.cache, text, lock.lock):
            self.verify(c.sha256, c.filename)

    def verify(self, sha256: str, name: str) -> Path:
        with self._lock:
            return self._verified.check(sha256, name)

    def save(self):
        self._verified.save()


def wheels_for(project: Project, airflow: str, inputs: "Inputs"
               ) -> dict[str, tuple[Path, str, str]]:
    """Package name -> (wheel blob, wheel filename, wheel sha256), sdists built as needed and
    Airflow patched when the project backports fixes to it."""
    lock = project.locks[airflow]
    text = (Path(project.root) / lock.lock).read_text(encoding="utf-8")
    chosen = pypi_files.load_choices(inputs.cache, text, lock.lock)
    out = {}
    sdists = []
    for c in chosen:
        inputs.verify(c.sha256, c.filename)
        if c.kind == "wheel":
            out[c.name] = (download.cas_path(inputs.cache, c.sha256), c.filename, c.sha256)
        else:
            sdists.append(c)
    patchset = project.patches.get(airflow)
    if patchset and "apache-airflow" in out:
        blob, name, sha256 = patched_wheel.patched(project, patchset, *out["apache-airflow"],
                                                   inputs.cache)
        out["apache-airflow"] = (inputs.verify(sha256, name), name, sha256)  # as sdists' wheels
    if not sdists:
        return out
    tools = sdist_build.tools_of(chosen)

    def built(c):
        record = sdist_build.record_path(inputs.cache,
                                         sdist_build.build_key(c, tools, inputs.rootfs_key))
        if not record.exists():  # (built in the Debian root, which is never written)
            sdist_build.built_wheel(c, tools, inputs.base_root(), inputs.rootfs_key,
                                    inputs.cache)
        data = json.loads(record.read_text())
        blob = inputs.verify(data["sha256"], data["wheel"])
        return c.name, (blob, data["wheel"], data["sha256"])

    with ThreadPoolExecutor(2) as pool:
        out.update(pool.map(built, sdists))
    return out
