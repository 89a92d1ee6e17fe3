"""The actions an image's layers take their inputs from, and the checks of the locked files.

- the Debian root (kind "debian root", a tree: for sdist builds and the PEX) and the base layer,
  which is written from that root when the cache has it and otherwise from a root made in a
  scratch folder for this build only (copying it into the cache would cost a cold build about
  1.4 s); the base layer's record keeps the root's /etc/passwd, which the config layer reads;
- the small root of the image's python3.9 (kind "python root"), where layers are byte-compiled;
- the wheel of every locked distribution: a locked wheel is a file of the content-addressed
  store; an sdist's wheel is made by a "sdist wheel" action, the patched Airflow by a "patched
  wheel" action.

Every locked input is checked against its sha256 before a build starts (rules.fetch.verified).
With a remote cache, only the locked files of the actions that really run are needed: each is
checked (and downloaded from its locked URL if this cache lacks it) just before its action
runs (``prepare``), so a build whose every action is a remote hit reads no locked file at all.
"""

import threading

from dataclasses import dataclass
from pathlib import Path

from rules.debian import arch_root, debian_rootfs, python_root
from rules.fetch import download, pypi_files
from rules.fetch.verified import VerifiedBlobs
from rules.graph import action_cache, scheduler
from rules.graph.action import Action, Made
from rules.graph.action_cache import Record
from rules.load.model import Project
from rules.common.errors import UserError
from rules.lock import debian_lock
from rules.oci import layer
from rules.python import patched_wheel, sdist_build

# In every layer action's inputs: bump when a layer recipe changes; the layer format (the
# compressor and its version) changes the keys by itself.
LAYER_RECIPE = f"1 {layer.FORMAT}"


@dataclass(frozen=True)
class Wheel:
    """A locked distribution's wheel: a file of the store (``sha256``, ``filename``) or the
    output of ``action``."""

    name: str
    sha256: str | None = None
    filename: str | None = None
    action: Action | None = None
    size: int = 0  # bytes of the locked file (the sdist's, or the upstream wheel's), per index

    @property
    def input(self) -> str:
        """What names it in a key: the file's sha256, or the key of the action making it."""
        return self.sha256 or f"action {self.action.key}"

    def resolve(self, cache: Path, records: dict[Action, Record]) -> tuple[Path, str, str]:
        """(blob, filename, sha256), once ``action`` has run."""
        if self.action is None:
            return download.cas_path(cache, self.sha256), self.filename, self.sha256
        record = records[self.action.key]
        return record.blob(cache, "wheel"), record.values["filename"], record.blobs["wheel"][0]


def layer_made(written: layer.Layer, **values) -> Made:
    return Made(blobs={"layer": (written.digest.removeprefix("sha256:"), written.size)},
                values={"diff_id": written.diff_id, "entries": written.entries, **values})


def layer_of(record: Record) -> layer.Layer:
    sha, size = record.blobs["layer"]
    return layer.Layer(f"sha256:{sha}", record.values["diff_id"], size, record.values["entries"])


class Inputs:
    """The input actions of the images of one Debian root clamp (``epoch``) and architecture
    (``arch``: the main lock's by default; another one (arm64) takes its Debian root from
    rules.debian.arch_root, the wheels of its own platform from the same pins, and its sdists
    cross-built by rules.python.cross_build; its .pyc are compiled by the same python root as
    the build's own, as bytecode does not depend on the architecture)."""

    def __init__(self, project: Project, cache: Path, epoch: int, remote=None,
                 arch: str | None = None):
        self.project, self.cache, self.epoch = project, Path(cache), epoch
        self.remote = remote  # a rules.graph.remote.RemoteCache, or None
        self.arch = arch or project.debian.arch
        self.foreign = self.arch != project.debian.arch
        self._locked: dict[str, tuple[str, str]] | None = None  # sha256 -> (file, URL)
        self._prepare_lock = threading.Lock()
        self.fetched = [0, 0]  # locked files downloaded by ``prepare``: count, bytes
        self.host_root = debian_rootfs.root_action(project, epoch)
        self.root = (arch_root.action(project, self.arch, epoch, self.host_root)
                     if self.foreign else self.host_root)
        # the wheel platform of ``arch`` (None: the toolchain's own, as the keys always were)
        self.platform = (pypi_files.platform_for(project.python.platform, self.arch)
                         if self.foreign else None)
        self.python_root = python_root.action(project)
        self.base = self.base_layer(with_tree=False)
        self._verified = VerifiedBlobs(cache)

    # (used as a context manager by older callers; nothing to clean up any more)
    def __enter__(self) -> "Inputs":
        return self

    def __exit__(self, *exc) -> None:
        self.save()

    def base_layer(self, with_tree: bool) -> Action:
        """The base layer's action. ``with_tree``: the build makes the root's tree anyway (an
        sdist is built in it), so the layer waits for it and is written from it; otherwise
        it makes a root of its own in a scratch folder when the cache has none. Its key is the
        same either way: its input is the root action's key, under the same name. Another
        architecture's root is always a tree of the cache (rules.debian.arch_root)."""
        root, epoch, project = self.root, self.epoch, self.project
        with_tree = with_tree or self.foreign

        def run(ctx) -> Made:
            cached = action_cache.get(ctx.cache, root.key)
            if cached is not None:
                tree = cached.tree(ctx.cache, "root")
                return layer_made(layer.write_tree(tree, ctx.cache, epoch), **cached.values)
            with debian_rootfs.made(project, ctx.cache, epoch) as tree:
                return layer_made(layer.write_tree(tree, ctx.cache, epoch),
                                  **debian_rootfs.facts(tree))

        self.base = Action("layer", "debian base",
                           {f"{root.kind}: {root.label}": root.key, "recipe": LAYER_RECIPE},
                           run, deps=(root,) if with_tree else (), urgent=True)
        return self.base

    def root_text(self, rel: str) -> str:
        """A file of the Debian root the base layer was written from (from its record)."""
        record = action_cache.get(self.cache, self.base.key)
        if record is None:
            record = scheduler.run([self.base], self.cache, remote=self.remote,
                                   prepare=self.prepare if self.remote else None
                                   )[self.base].record
        return record.values[rel]

    def rootfs(self) -> Path:
        """The Debian root as a tree of the cache (made if missing)."""
        return scheduler.run([self.root], self.cache)[self.root].record.tree(self.cache, "root")

    def wheels(self, airflow: str) -> dict[str, Wheel]:
        """Package name -> its wheel (a file, or an action that makes it)."""
        chosen = self.choices(airflow)
        out = {c.name: Wheel(c.name, c.sha256, c.filename, size=c.size)
               for c in chosen if c.kind == "wheel"}
        sdists = [c for c in chosen if c.kind != "wheel"]
        if sdists:
            tools = sdist_build.tools_of(chosen)
            if self.foreign:  # every sdist, pure ones too (they give the same any wheel)
                from rules.debian import cross_root
                from rules.python import cross_build

                toolchain = cross_root.action(self.project, self.arch)
                for c in sdists:
                    out[c.name] = Wheel(c.name, action=cross_build.action(
                        c, tools, toolchain, self.arch), size=c.size)
            else:
                for c in sdists:
                    out[c.name] = Wheel(c.name, action=sdist_build.action(c, tools, self.root),
                                        size=c.size)
        patchset = self.project.patches.get(airflow)
        if patchset and "apache-airflow" in out and out["apache-airflow"].sha256:
            upstream = out["apache-airflow"]
            out["apache-airflow"] = Wheel("apache-airflow", action=patched_wheel.action(
                self.project, patchset, upstream.filename, upstream.sha256), size=upstream.size)
        return out

    def choices(self, airflow: str) -> list:
        """The lock's chosen files (rules.fetch.pypi_files.Chosen) for this architecture."""
        lock = self.project.locks[airflow]
        text = (Path(self.project.root) / lock.lock).read_text(encoding="utf-8")
        if self.platform and not pypi_files.choices_fetched(self.cache, text, self.platform) \
                and self.remote is None:
            raise UserError(f"{lock.lock} has no file choice for linux/{self.arch} in "
                            f"{self.cache}: run `invoke fetch --platform linux/{self.arch}`")
        return pypi_files.load_choices(self.cache, text, lock.lock, remote=self.remote,
                                       platform=self.platform)

    def choice_action(self, airflow: str) -> Action:
        lock = self.project.locks[airflow]
        text = (Path(self.project.root) / lock.lock).read_text(encoding="utf-8")
        return pypi_files.choice_action(text, lock.lock, platform=self.platform)

    def wheel_files(self, airflow: str) -> dict[str, tuple[Path, str, str]]:
        """Package name -> (blob, filename, sha256), running the actions that make wheels."""
        wheels = self.wheels(airflow)
        makers = [w.action for w in wheels.values() if w.action is not None]
        outcomes = scheduler.run(makers, self.cache) if makers else {}
        records = {a.key: o.record for a, o in outcomes.items()}
        return {n: w.resolve(self.cache, records) for n, w in wheels.items()}

    def verify_all(self, airflow: str) -> None:
        """Check every locked input of an Airflow version (the Debian packages, the chosen
        wheels and sdists): a missing or changed file stops the build before it starts."""
        packages = debian_lock.load(self.project)["packages"]
        if self.foreign:  # (the host root too: it compiles the foreign one's standard
            # library; and the cross toolchain, which builds its sdists)
            from rules.debian import cross_root

            whole, target = cross_root.packages(self.project, self.arch)
            packages = [*packages, *debian_lock.packages_for(self.project, self.arch), *whole,
                        *target]
        for pkg in packages:
            self.verify(pkg["sha256"], pkg["filename"])
        for c in self.choices(airflow):
            self.verify(c.sha256, c.filename)

    def prepare(self, action: Action) -> None:
        """Before ``action`` runs (builds with a remote cache): the locked files it reads are
        here and match their sha256, downloaded from their locked URLs if missing. They are
        the locked files its inputs name by sha256 (a layer's wheels, the python root's
        .debs...), and every .deb when the base layer makes a Debian root of its own."""
        with self._prepare_lock:
            locked = self.locked_files()
            wanted = {v for v in action.inputs.values() if v in locked}
            if (action.key == self.base.key
                    and action_cache.get(self.cache, self.root.key) is None):
                wanted |= {p["sha256"] for p in debian_lock.load(self.project)["packages"]}
            for sha in sorted(wanted):
                name, url = locked[sha]
                if not download.cas_path(self.cache, sha).exists():
                    path = download.fetch_verified(url, sha, self.cache, what=name)
                    self.fetched[0] += 1
                    self.fetched[1] += path.stat().st_size
                self.verify(sha, name)
            self.save()

    def locked_files(self) -> dict[str, tuple[str, str]]:
        """sha256 -> (file name, URL) of every locked input: the .debs, and the chosen
        Python files of every lock whose file choice is known."""
        if self._locked is None:
            found = {p["sha256"]: (p["filename"], p["url"])
                     for p in debian_lock.load(self.project)["packages"]}
            for lock in self.project.locks.values():
                text = (Path(self.project.root) / lock.lock).read_text(encoding="utf-8")
                action = pypi_files.choice_action(text, lock.lock)
                record = action_cache.get(self.cache, action.key)
                if record is None and self.remote is not None:
                    record = self.remote.lookup(action)
                if record is None:
                    continue
                for c in pypi_files.load_choices(self.cache, text, lock.lock,
                                                 remote=self.remote):
                    found[c.sha256] = (c.filename, c.url)
            self._locked = found
        return self._locked

    def verify(self, sha256: str, name: str) -> Path:
        try:
            return self._verified.check(sha256, name)
        except UserError as e:  # (another platform's inputs: its own fetch brings them)
            if self.foreign and "run `invoke fetch`" in str(e):
                raise UserError(str(e).replace(
                    "run `invoke fetch`", f"run `invoke fetch --platform linux/{self.arch}` "
                    "(and `invoke fetch`: the build's own platform's inputs are needed too)"
                )) from None
            raise

    def save(self) -> None:
        self._verified.save()


def wheels_for(project: Project, airflow: str, inputs: Inputs
               ) -> dict[str, tuple[Path, str, str]]:
    """Package name -> (wheel blob, wheel filename, wheel sha256), sdists built as needed and
    Airflow patched when the project backports fixes to it."""
    return inputs.wheel_files(airflow)
