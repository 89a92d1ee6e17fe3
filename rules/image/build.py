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

import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from rules.common import report
from rules.debian import debian_rootfs
from rules.graph import action_cache, workers
from rules.image import inputs as inputs_mod  # noqa: F401
from rules.image import layers
from rules.image.config import (config_files, image_of,  # noqa: F401
                                version_metadata)
from rules.image.inputs import Inputs, wheels_for  # noqa: F401
from rules.load.model import Project, RuntimeLine
from rules.lock import debian_lock, pip_lock
from rules.oci import layer, layout as oci
from rules.python import wheel_install

# In every action key: bump the number when a layer recipe changes; the layer format (the
# compressor and its version) changes the keys by itself.
RECIPE = (1, layer.FORMAT)
LAYER_WORKERS = 2
YIELDING_NICE = 10  # layer workers' niceness while mmdebstrap runs


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
    plan = layers.python_groups(project, line)
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
                 lambda names=names: layers.python_layer(names, wheels, inputs, epoch, in_worker),
                 sum(wheels[n][0].stat().st_size for n in names))
        for label in line.modules:
            module = project.modules[label]
            named = layers.module_inputs(project, line, module)
            step(f"module {module.name}",
                 action_cache.key("module", RECIPE, named, line.source_date_epoch,
                                  inputs.python_key),
                 lambda module=module: layers.module_layer(project, line, module,
                                                           inputs.python_root(), cache))
        # Keyed by what the files are made from (the root's key, not the root itself), so that
        # a rebuild with every layer cached never needs the Debian root.
        lock_text = (Path(project.root) / project.locks[line.airflow].lock).read_text()
        step("config", action_cache.key("config", RECIPE, layers.config_inputs(
                project, line, lock_text, inputs.rootfs_key)),
             lambda: layers.config_layer(project, line, lock_text, inputs, cache))
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
    made = [s.layer for s in result.steps]
    history = [f"runtime: {s.name}" for s in result.steps]
    for flavor in flavors:
        result.images.append(image_of(project, line, flavor, made, history))
    oci.write_layout(result.images, out, cache)
    result.seconds = time.monotonic() - started
    return result


def _yield_cpu() -> None:
    """Lower this worker thread's priority (and its children's: the compiling chroots)."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), YIELDING_NICE)


