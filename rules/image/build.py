"""`invoke image`: assemble a Runtime line's OCI image from cached, reproducible layers.

Layers, least-changing first: the Debian base; the Python dependencies, split by which Airflow
locks share the exact same files (so lines share those blobs); Airflow itself; the providers;
one layer per Runtime module; the config layer (user, AIRFLOW_HOME, version metadata, pip
constraints). Each layer is an action of one graph (rules.graph), with the actions that make
its inputs (rules.image.inputs); the scheduler runs what the action cache does not hold. A no-op
rebuild reads the records and stats the locked inputs (a changed file is hashed again), and
never needs the Debian root. Nothing here touches the network.

A cold build runs three things at once on its cores: mmdebstrap and then the base layer (the
longest chain, the urgent lane), the Python layers in worker processes (compiled in the small
python root, so they need not wait for the Debian root), and the small layers in threads.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

from rules.common import report
from rules.graph import action_cache, scheduler
from rules.graph.action import Action
from rules.image import layers
from rules.image.config import (config_files, image_of,  # noqa: F401
                                version_metadata)
from rules.image.inputs import LAYER_RECIPE, Inputs, layer_made, layer_of, wheels_for  # noqa: F401
from rules.load.model import Project, RuntimeLine
from rules.lock import debian_lock, pip_lock
from rules.oci import layer, layout as oci
from rules.python import wheel_install


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
    explained: list[str] = field(default_factory=list)  # why each action that ran ran


@dataclass
class LineGraph:
    """The actions of a line's image: ``layers`` in image order, made from ``inputs``."""

    line: RuntimeLine
    inputs: Inputs
    layers: list[Action]

    def all_actions(self) -> list[Action]:
        """Every action, deps before dependents."""
        seen: dict[str, Action] = {}

        def visit(action: Action) -> None:
            if action.key not in seen:
                for dep in action.deps:
                    visit(dep)
                seen[action.key] = action
        for action in self.layers:
            visit(action)
        return list(seen.values())


def shared_epoch(project: Project, line: RuntimeLine) -> int:
    """mtime clamp of the layers lines share (the Debian base, the Python dependencies)."""
    return project.debian.source_date_epoch or line.source_date_epoch


def target(line: RuntimeLine) -> str:
    """The name ``--explain`` finds the previous build of the same image by."""
    return f"image {line.name}"


def line_graph(project: Project, line: RuntimeLine, cache: Path) -> LineGraph:
    epoch = shared_epoch(project, line)
    inputs = Inputs(project, cache, epoch)
    pyroot = inputs.python_root
    wheels = inputs.wheels(line.airflow)
    # an sdist to build needs the Debian root as a tree of the cache: then the base layer is
    # written from that tree rather than from a second root
    tree_needed = any(w.action is not None and w.action.kind == "sdist wheel"
                      and action_cache.get(cache, w.action.key) is None for w in wheels.values())
    actions = [inputs.base_layer(with_tree=tree_needed)]
    for title, names in layers.python_groups(project, line):
        group = [wheels[n] for n in names]
        makers = tuple(w.action for w in group if w.action is not None)
        actions.append(Action(
            "layer", title,
            {"recipe": LAYER_RECIPE, "epoch": str(epoch),
             **{f"wheel {w.name}": w.input for w in group}},
            _python_layer_run(group, pyroot, epoch), deps=(pyroot, *makers), in_worker=True,
            weight=sum(_size(cache, w) for w in group)))
    for label in line.modules:
        module = project.modules[label]
        actions.append(Action(
            "layer", f"module {module.name}",
            {"recipe": LAYER_RECIPE, "epoch": str(line.source_date_epoch),
             **layers.module_inputs(project, line, module)},
            _module_run(project, line, module, pyroot), deps=(pyroot,)))
    lock_text = (Path(project.root) / project.locks[line.airflow].lock).read_text()
    actions.append(Action(
        "layer", "config",
        {"recipe": LAYER_RECIPE,
         **layers.config_inputs(project, line, lock_text, inputs.root.key)},
        _config_run(project, line, lock_text, inputs), deps=(inputs.base,)))
    return LineGraph(line, inputs, actions)


def _size(cache: Path, wheel) -> int:
    try:
        return wheel.resolve(cache, {})[0].stat().st_size if wheel.sha256 else 0
    except OSError:
        return 0


def _python_layer_run(group, pyroot: Action, epoch: int):
    def run(ctx):
        items = []
        for w in group:
            blob, filename, sha = w.resolve(ctx.cache, ctx.records)
            items.append((blob, filename, wheel_install.tree_key(sha, pyroot.key), w.name))
        root = ctx.dep(pyroot).tree(ctx.cache, "root")
        return layer_made(ctx.worker(layers.python_layer_job, items, ctx.cache, root, epoch))
    return run


def _module_run(project: Project, line: RuntimeLine, module, pyroot: Action):
    def run(ctx):
        root = ctx.dep(pyroot).tree(ctx.cache, "root")
        return layer_made(layers.module_layer(project, line, module, root, ctx.cache))
    return run


def _config_run(project: Project, line: RuntimeLine, lock_text: str, inputs: Inputs):
    def run(ctx):
        return layer_made(layers.config_layer(project, line, lock_text, inputs, ctx.cache))
    return run


def build(project: Project, line_name: str, flavors: tuple[str, ...], out: Path,
          cache: Path) -> BuildResult:
    started = time.monotonic()
    line = project.line(line_name)
    out = oci.check_out(out)  # before any work: never replace a folder of the user's
    pip_lock.check_all(project, [line.airflow])
    debian_lock.check(project)
    graph = line_graph(project, line, cache)
    graph.inputs.verify_all(line.airflow)  # every locked input, before any work starts
    graph.inputs.save()
    result = BuildResult(line, Path(out))
    with report.progress(f"Runtime {line.version}: layers", total=len(graph.layers)) as advance:
        outcomes = scheduler.run(graph.layers, cache, advance)
    result.steps = [Step(a.label, layer_of(outcomes[a].record), outcomes[a].hit,
                         outcomes[a].seconds) for a in graph.layers]
    result.explained = explain(cache, target(line), graph, outcomes)
    made = [s.layer for s in result.steps]
    history = [f"runtime: {s.name}" for s in result.steps]
    for flavor in flavors:
        result.images.append(image_of(project, line, flavor, made, history))
    oci.write_layout(result.images, out, cache)
    result.seconds = time.monotonic() - started
    return result


def title(action: Action) -> str:
    """How --explain names an action: a layer by its label ("module ui"), others with their
    kind ("sdist wheel psycopg2 (psycopg2-2.9.1.tar.gz)")."""
    return action.label if action.kind == "layer" else f"{action.kind} {action.label}"


def explain(cache: Path, name: str, graph: LineGraph, outcomes) -> list[str]:
    """For each action that ran, what changed since the last build of ``name``: the inputs
    whose digests differ, appeared or went ("module ui: ui/runtime_ui/footer.py changed").
    Then this build becomes the last one."""
    previous = action_cache.last_build(cache, name)
    lines = []
    for action in graph.all_actions():
        outcome = outcomes.get(action)
        if outcome is None or outcome.hit:
            continue
        old_key = previous.get(f"{action.kind}: {action.label}")
        old = action_cache.read(cache, old_key) if old_key else None
        if old is None:
            lines.append(f"{title(action)}: " + ("its earlier record is gone" if old_key
                                                 else "no earlier build of it"))
            continue
        new = action.named_inputs()
        changes = [f"{n} changed" for n in sorted(new)
                   if n in old.inputs and new[n] != old.inputs[n]]
        changes += [f"{n} added" for n in sorted(new) if n not in old.inputs]
        changes += [f"{n} removed" for n in sorted(old.inputs) if n not in new]
        if not changes:
            changes = ["inputs unchanged: its outputs were missing from the cache"]
        lines.append(f"{title(action)}: " + "; ".join(changes))
    action_cache.save_build(cache, name, {f"{a.kind}: {a.label}": a.key
                                          for a in graph.all_actions()})
    return lines
