"""`invoke image`: assemble a Runtime line's OCI image from cached, reproducible layers.

Layers, least-changing first: the Debian base; the Python dependencies, split by which Airflow
locks share the exact same files (so lines share those blobs); Airflow itself; the providers;
one layer per Runtime module; the config layer (user, AIRFLOW_HOME, version metadata, pip
constraints). Every layer is an action keyed by the digest of its inputs: a no-op rebuild
reads the action records and stats the cached inputs (a changed file is hashed again), and never
needs the Debian root. Nothing here touches the network.

A cold build runs three things at once on its cores: mmdebstrap and then the base layer (the
longest chain), the Python layers in worker processes (compiled in the small python root, so
they need not wait for the Debian root), and the small layers in threads.
"""

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from rules import (action_cache, debian_lock, debian_rootfs, download, layer, oci,
                   patched_wheel, pip_lock, pypi_files, python_root, report, requirements_file,
                   scratch, sdist_build, wheel_install, workers)
from rules.errors import DigestMismatchError, UserError
from rules.model import Project, RuntimeLine

# In every action key: bump the number when a layer recipe changes; the layer format (the
# compressor and its version) changes the keys by itself.
RECIPE = (1, layer.FORMAT)
CONFIG_RECIPE = 2  # the config layer's own: 2 added AIRFLOW_HOME/logs
REPO = "runtime"
AIRFLOW_HOME = "/usr/local/airflow"
SHARE = "usr/local/share/runtime"
ASTRO_UID = 50000
FLAVORS = ("onbuild", "base")
LAYER_WORKERS = 2
YIELDING_NICE = 10  # layer workers' niceness while mmdebstrap runs
MODULE_DIST_VERSION = "1.0.0"  # of the dist-info a module with an Airflow plugin gets
PROVIDER_PREFIXES = ("apache-airflow-providers-", "astronomer-providers", "openlineage-")


@dataclass
class Step:
    name: str
    layer: layer.Layer
    hit: bool
    seconds: float


@dataclass
class BuildResult:
    line: RuntimeLine
    out: Path
    steps: list[Step] = field(default_factory=list)
    images: list[oci.Image] = field(default_factory=list)
    seconds: float = 0.0


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
        self._verified = _VerifiedBlobs(cache)
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
        root was made (rules.debian_rootfs.FACTS), else from a root made for it."""
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
        """Where the image's python3.9 byte-compiles (see rules.python_root)."""
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


class _VerifiedBlobs:
    """sha256 checks of cached inputs, remembered by (size, mtime, inode) so that a file is
    hashed again only when it may have changed."""

    def __init__(self, cache: Path):
        self.path = Path(cache) / "verified.json"
        try:
            self.seen = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.seen = {}
        self.dirty = False

    def check(self, sha256: str, name: str) -> Path:
        blob = download.cas_path(self.path.parent, sha256)
        try:
            st = blob.stat()
        except FileNotFoundError:
            raise UserError(f"{name} is not in the cache {self.path.parent}: "
                            "run `invoke fetch` (it needs the network once)") from None
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        if self.seen.get(sha256) != stamp:
            actual = _sha256(blob)
            if actual != sha256:
                raise DigestMismatchError(f"{name} ({blob})", sha256, actual)
            self.seen[sha256] = stamp
            self.dirty = True
        return blob

    def save(self):
        if self.dirty:
            from rules import atomic

            atomic.write_text(self.path, json.dumps(self.seen, sort_keys=True))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shared_epoch(project: Project, line: RuntimeLine) -> int:
    """mtime clamp of the layers lines share (the Debian base, the Python dependencies)."""
    return project.debian.source_date_epoch or line.source_date_epoch


def build(project: Project, line_name: str, flavors: tuple[str, ...], out: Path,
          cache: Path) -> BuildResult:
    started = time.monotonic()
    line = project.line(line_name)
    out = oci.check_out(out)  # before any work: never replace a folder of the user's
    pip_lock.check_all(project, [line.airflow])
    debian_lock.check(project)
    epoch = shared_epoch(project, line)
    inputs = Inputs(project, cache, epoch)
    result = BuildResult(line, Path(out))
    plan = _python_groups(project, line.airflow)
    total = 1 + len(plan) + len(line.modules) + 1
    planned: list[tuple[str, str, object]] = []
    weights: dict[int, int] = {}  # step index -> bytes of input, to start the largest first
    layer_workers: workers.Pool | None = None  # where Python layers are made (set below)

    def in_worker(fn, *args):
        return layer_workers.call(fn, *args)

    def step(name, action, make, weight=0):
        weights[len(planned)] = weight
        planned.append((name, action, make))

    inputs.verify_all(line.airflow)  # every locked input, before any work starts
    # (exits in reverse order: the threads and processes end before a scratch root goes)
    with inputs, report.progress(f"Runtime {line.version}: layers", total=total) as advance, \
            ThreadPoolExecutor(1) as background:
        def run(name, action, make):
            t = time.monotonic()
            found = action_cache.get(cache, action)
            made = found or make()
            if not found:
                action_cache.put(cache, action, made)
            advance(1)
            return Step(name, made, bool(found), time.monotonic() - t)

        step("debian base", action_cache.key("base", RECIPE, inputs.rootfs_key),
             lambda: layer.write_tree(inputs.base_root(), cache, epoch))
        # The Debian root, then the base layer: the longest chain of a cold build (mmdebstrap),
        # started first, in a thread of its own, at the normal priority.
        futures = {0: background.submit(run, *planned[0])}
        wheels = wheels_for(project, line.airflow, inputs)
        for title, names in plan:
            keys = sorted(wheel_install.tree_key(wheels[n][2], inputs.python_key) for n in names)
            step(title, action_cache.key("python", RECIPE, keys, epoch),
                 lambda names=names: _python_layer(names, wheels, inputs, epoch, in_worker),
                 sum(wheels[n][0].stat().st_size for n in names))
        for label in line.modules:
            module = project.modules[label]
            digest = _module_digest(project, module)
            step(f"module {module.name}",
                 action_cache.key("module", RECIPE, digest, line.source_date_epoch,
                                  inputs.python_key),
                 lambda module=module: _module_layer(project, module, inputs,
                                                     line.source_date_epoch))
        # Keyed by what the files are made from (the root's key, not the root itself), so that
        # a rebuild with every layer cached never needs the Debian root.
        lock_text = (Path(project.root) / project.locks[line.airflow].lock).read_text()
        step("config", action_cache.key("config", RECIPE, CONFIG_RECIPE, line.source_date_epoch,
                                        inputs.rootfs_key, _version_metadata(project, line),
                                        hashlib.sha256(lock_text.encode()).hexdigest()),
             lambda: _config_layer(_config_files(project, line, lock_text, inputs), cache,
                                   line.source_date_epoch))
        # Meanwhile the other layers are compiled (in the python root) and written, the
        # largest first, at a lower priority while mmdebstrap runs; the config layer, which
        # reads a file of the Debian root, comes last.
        last = len(planned) - 1
        making_root = not inputs.rootfs_cached() and (
            action_cache.get(cache, planned[0][1]) is None
            or (action_cache.get(cache, planned[last][1]) is None
                and debian_rootfs.fact(cache, inputs.rootfs_key, "etc/passwd") is None))
        order = [*sorted(range(1, last), key=lambda i: -weights.get(i, 0)), last]
        with ThreadPoolExecutor(LAYER_WORKERS,
                                initializer=_yield_cpu if making_root else None) as pool, \
                workers.Pool(LAYER_WORKERS, YIELDING_NICE if making_root else 0) as layer_workers:
            futures.update({i: pool.submit(run, *planned[i]) for i in order})
            # The first failure stops the build: queued steps are dropped, the workers killed
            # (what runs in threads ends by itself: mmdebstrap may take its time).
            wait(futures.values(), return_when=FIRST_EXCEPTION)
            failed = [i for i in range(len(planned)) if futures[i].done()
                      and not futures[i].cancelled() and futures[i].exception() is not None]
            if failed:
                pool.shutdown(wait=False, cancel_futures=True)
                layer_workers.kill()
                raise futures[failed[0]].exception()
            result.steps = [futures[i].result() for i in range(len(planned))]
    inputs.save()
    layers = [s.layer for s in result.steps]
    history = [f"runtime: {s.name}" for s in result.steps]
    for flavor in flavors:
        result.images.append(_image(project, line, flavor, layers, history))
    oci.write_layout(result.images, out, cache)
    result.seconds = time.monotonic() - started
    return result


def _yield_cpu() -> None:
    """Lower this worker thread's priority (and its children's: the compiling chroots)."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), YIELDING_NICE)


def _python_groups(project: Project, airflow: str) -> list[tuple[str, list[str]]]:
    """Layers of the line's Python packages: dependencies grouped by the set of Airflow locks
    that hold the very same files (most shared first), then Airflow, then the providers."""
    root = Path(project.root)
    entries = {a: {e.name: (e.version, tuple(sorted(e.hashes)))
                   for e in requirements_file.parse((root / lock.lock).read_text())[1]}
               for a, lock in project.locks.items()}
    mine = entries[airflow]
    groups: dict[tuple[str, ...], list[str]] = {}
    airflow_names, providers = [], []
    for name in sorted(mine):
        if name == "apache-airflow":
            airflow_names.append(name)
        elif name.startswith(PROVIDER_PREFIXES):
            providers.append(name)
        else:
            sharing = tuple(sorted(a for a, e in entries.items() if e.get(name) == mine[name]))
            groups.setdefault(sharing, []).append(name)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[0]), kv[0]))
    plan = [(f"python deps (Airflow {'+'.join(sharing)})", names) for sharing, names in ordered]
    return plan + [("apache-airflow", airflow_names), ("providers", providers)]


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


def _tree_item(name: str, wheels, inputs: Inputs) -> tuple[Path, str, str, str]:
    blob, filename, sha256 = wheels[name]
    return blob, filename, wheel_install.tree_key(sha256, inputs.python_key), name


def _python_layer(names, wheels, inputs: Inputs, epoch: int, in_worker) -> layer.Layer:
    items = [_tree_item(n, wheels, inputs) for n in names]
    root = inputs.python_root()
    return in_worker(_python_layer_job, items, inputs.cache, root, epoch)


def _python_layer_job(items, cache: Path, root: Path, epoch: int) -> layer.Layer:
    """In a worker process (rules.workers): unpacking, stripping and tar writing are Python
    code, which in threads of one process contend for the GIL."""
    with wheel_install.image_trees(items, cache, lambda: root) as trees:
        return layer.write_entries(wheel_install.image_entries(trees), cache, epoch,
                                   normalize_modes=True)


def _module_files(project: Project, module) -> list[tuple[str, Path]]:
    """(path inside the package tree, source file) for a module's sources and scripts."""
    root = Path(project.root)
    files = []
    for src in module.srcs:
        path = root / src
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                    rel = f.relative_to(path).as_posix()
                    files.append((f"site/{module.import_name}/{rel}", f))
        else:
            files.append((f"site/{path.name}", path))
    for name, src in module.scripts:
        files.append((f"bin/{name}", root / src))
    for name, src in module.airflow_home:
        files.append((f"home/{name}", root / src))
    return files


def _module_metadata(module) -> dict[str, str]:
    """Generated files of a module that registers an Airflow plugin: a dist-info, so Airflow
    finds the plugin by its entry point (whatever the user mounts over plugins/)."""
    if not module.airflow_plugin:
        return {}
    dist = f"runtime_{module.name}"
    info = f"site/{dist}-{MODULE_DIST_VERSION}.dist-info"
    return {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\n"
                            f"Version: {MODULE_DIST_VERSION}\nSummary: {module.description}\n",
        f"{info}/entry_points.txt": f"[airflow.plugins]\n{module.name} = "
                                    f"{module.airflow_plugin}\n",
        f"{info}/INSTALLER": "runtime\n",
    }


def _module_digest(project: Project, module) -> list:
    return [module.name, module.import_name,
            [(rel, hashlib.sha256(f.read_bytes()).hexdigest(), bool(f.stat().st_mode & 0o100))
             for rel, f in _module_files(project, module)],
            sorted(_module_metadata(module).items())]


def _module_layer(project: Project, module, inputs: Inputs, epoch: int) -> layer.Layer:
    with scratch.folder(inputs.cache, "module") as tmp:
        tree = tmp / "trees" / module.name
        for rel, src in _module_files(project, module):
            dst = tree / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            dst.chmod(0o755 if rel.startswith("bin/") or src.stat().st_mode & 0o100 else 0o644)
        for rel, text in _module_metadata(module).items():
            dst = tree / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text)
            dst.chmod(0o644)
        wheel_install.compile_trees(inputs.python_root(), [tree])
        entries = wheel_install.image_entries([tree])
        home = tree / "home"
        for rel in (layer.walk(home) if home.is_dir() else []):
            entries[f"{AIRFLOW_HOME.strip('/')}/{rel}"] = home / rel
        # (AIRFLOW_HOME itself, owned by astro, comes from the config layer, which is last)
        return layer.write_entries(entries, inputs.cache, epoch, normalize_modes=True)


def _version_metadata(project: Project, line: RuntimeLine) -> dict:
    patchset = project.patches.get(line.airflow)
    return {"runtime_version": line.version, "line": line.name, "lts": line.lts,
            "airflow_version": project.airflow_version(line.airflow),
            "airflow_patches": [Path(p).name for p in patchset.patches] if patchset else [],
            "python": line.python, "debian": line.debian,
            "image": f"{REPO}:{line.version}"}


def _config_files(project: Project, line: RuntimeLine, lock_text: str,
                  inputs: Inputs) -> dict[str, bytes]:
    airflow = project.airflow_version(line.airflow)
    pins = [f"{e.name}=={airflow if e.name == 'apache-airflow' else e.version}"
            for e in requirements_file.parse(lock_text)[1]]
    passwd = inputs.root_text("etc/passwd")
    version = _version_metadata(project, line)
    return {
        "etc/passwd": (passwd + f"astro:x:{ASTRO_UID}:0:astro:{AIRFLOW_HOME}:/bin/bash\n"
                       ).encode(),
        "etc/pip.conf": b"[install]\nconstraint = /" + SHARE.encode() + b"/constraints.txt\n",
        f"{SHARE}/constraints.txt": (
            f"# The Runtime {line.version} environment: pip may add packages, never change"
            " these.\n" + "\n".join(pins) + "\n").encode(),
        f"{SHARE}/version.json": (json.dumps(version, indent=2, sort_keys=True) + "\n").encode(),
    }


def _config_layer(files: dict[str, bytes], cache: Path, epoch: int) -> layer.Layer:
    with tempfile.TemporaryDirectory(prefix="runtime-config-") as tmp:
        home = AIRFLOW_HOME.strip("/")
        # logs/ exists, astro's: a volume mounted there (the Astro CLI's airflow_logs) starts
        # with its owner and mode, so Airflow can write its logs
        entries: dict[str, Path | None] = {home: None, f"{home}/logs": None}
        for name, data in files.items():
            path = Path(tmp) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            entries[name] = path
        owned = {home, f"{home}/logs"}
        return layer.write_entries(
            entries, cache, epoch, normalize_modes=True,
            owner=lambda n: (ASTRO_UID, 0) if n in owned else (0, 0),
            modes=dict.fromkeys(owned, 0o775))


def revision(project: Project) -> str:
    try:
        return subprocess.run(["git", "-C", project.root, "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _image(project: Project, line: RuntimeLine, flavor: str, layers, history) -> oci.Image:
    tag = line.version if flavor == "onbuild" else f"{line.version}-base"
    labels = {"io.astronomer.docker.runtime.version": line.version,
              "io.astronomer.docker.airflow.version": project.airflow_version(line.airflow),
              "io.astronomer.docker.runtime.lts": "true" if line.lts else "false",
              "org.opencontainers.image.version": line.version}
    config = {
        "User": "astro",
        "WorkingDir": AIRFLOW_HOME,
        "Env": [
            "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"AIRFLOW_HOME={AIRFLOW_HOME}",
            f"ASTRONOMER_RUNTIME_VERSION={line.version}",
            f"RUNTIME_VERSION={line.version}",
            f"AIRFLOW_VERSION={project.airflow_version(line.airflow)}",
            f"PIP_CONSTRAINT=/{SHARE}/constraints.txt",
            "PIP_DISABLE_PIP_VERSION_CHECK=1",
            "PYTHONUNBUFFERED=1",
            "LANG=C.UTF-8",
            *(f"{k}={v}" for label in line.modules for k, v in project.modules[label].env),
        ],
        "Entrypoint": ["/usr/bin/dumb-init", "--", "/usr/local/bin/runtime-entrypoint"],
        "Cmd": [],
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": labels,
    }
    if flavor == "onbuild":
        config["OnBuild"] = [
            "USER root",
            "COPY packages.txt .",
            "RUN /usr/local/bin/runtime-install-packages packages.txt",
            "COPY requirements.txt .",
            "RUN /usr/local/bin/runtime-install-requirements requirements.txt",
            "USER astro",
            "COPY --chown=astro:0 . .",
        ]
    annotations = {"org.opencontainers.image.version": line.version,
                   "org.opencontainers.image.created": oci.rfc3339(line.source_date_epoch),
                   "org.opencontainers.image.revision": revision(project),
                   "org.opencontainers.image.title": f"Runtime {line.version} ({flavor})",
                   "org.opencontainers.image.ref.name": tag}
    floating = ".".join(line.version.split(".")[:2]) + ("" if flavor == "onbuild" else "-base")
    return oci.Image(REPO, tag, list(layers), list(history), config, line.source_date_epoch,
                     annotations, aliases=(floating,))
