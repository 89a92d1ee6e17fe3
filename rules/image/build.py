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

With a remote cache (rules.graph.remote, `--remote-cache`), actions missing here are looked up
there; the locked inputs are then checked only for the actions that really run (a build whose
every action is a remote hit reads none, and needs no `invoke fetch`), and layer blobs are
downloaded only to write the OCI layout. With ``push_to`` and no ``out``, no layout is written:
the images go straight to the registry, their layers mounted from the remote cache's repository
(rules.oci.push.push_images), so a publish reads no layer bytes at all.
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
from rules.common.errors import UserError
from rules.lock import debian_lock, pip_lock
from rules.oci import layer, layout as oci
from rules.python import wheel_install
from rules.graph.action_cache import Record, RemoteBlobError


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
    layout: bool = True  # False: --push-to without --out, no layout was written
    remote: object = None  # the RemoteCache used, if any
    push: object = None  # rules.oci.push.PushResult of --push-to
    fetched: tuple[int, int] = (0, 0)  # locked inputs downloaded for actions that ran: n, bytes
    attestations: list = field(default_factory=list)  # rules.attest.attach.Attested per image


@dataclass
class LineGraph:
    """The actions of a line's image: ``layers`` in image order, made from ``inputs``, and
    each flavor's SBOMs (``sboms``: flavor -> its ``sbom`` action, rules.attest.sbom)."""

    line: RuntimeLine
    inputs: Inputs
    layers: list[Action]
    sboms: dict[str, Action] = field(default_factory=dict)

    def all_actions(self) -> list[Action]:
        """Every action, deps before dependents."""
        seen: dict[str, Action] = {}

        def visit(action: Action) -> None:
            if action.key not in seen:
                for dep in action.deps:
                    visit(dep)
                seen[action.key] = action
        for action in [*self.layers, *self.sboms.values()]:
            visit(action)
        return list(seen.values())


def shared_epoch(project: Project, line: RuntimeLine) -> int:
    """mtime clamp of the layers lines share (the Debian base, the Python dependencies)."""
    return project.debian.source_date_epoch or line.source_date_epoch


def target(line: RuntimeLine) -> str:
    """The name ``--explain`` finds the previous build of the same image by."""
    return f"image {line.name}"


def line_graph(project: Project, line: RuntimeLine, cache: Path, remote=None,
               arch: str | None = None) -> LineGraph:
    """The actions of a line's images for ``arch`` (a Debian architecture; the main lock's
    by default)."""
    epoch = shared_epoch(project, line)
    inputs = Inputs(project, cache, epoch, remote, arch)
    pyroot = inputs.python_root
    wheels = inputs.wheels(line.airflow)
    # an sdist to build needs the Debian root as a tree of the cache: then the base layer is
    # written from that tree rather than from a second root
    tree_needed = any(w.action is not None and w.action.kind == "sdist wheel"
                      and action_cache.get(cache, w.action.key) is None
                      and not (remote is not None and remote.has(w.action))
                      for w in wheels.values())
    actions = [inputs.base_layer(with_tree=tree_needed)]
    sizes = {name: w.size for name, w in wheels.items()}
    for title, names in layers.python_groups(project, line, sizes):
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
    return LineGraph(line, inputs, actions, _sbom_actions(project, line, actions[0], wheels,
                                                          lock_text, inputs))


def _sbom_actions(project: Project, line: RuntimeLine, base: Action, wheels,
                  lock_text: str, inputs: Inputs) -> dict[str, Action]:
    """flavor -> the action making its SBOMs; the facts they are made from are one action."""
    from rules.attest import sbom
    from rules.image import policy
    from rules.image.config import flavors as flavors_of

    facts = sbom.facts_action(project, line, base, wheels, inputs.choice_action(line.airflow),
                              lock_text, inputs.arch if inputs.foreign else None)
    image = project.image(line)
    return {f: sbom.sbom_action(facts, line, f, policy.reference(
        image, policy.tag(image, line.version, f)), line.source_date_epoch)
        for f in flavors_of(project, line)}


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


def build(project: Project, line_name: str, flavors: tuple[str, ...], out: Path | None,
          cache: Path, remote=None, push_to=None, signing_key=None,
          arches: tuple[str, ...] | None = None) -> BuildResult:
    """Build a line's images into the layout ``out``. ``remote``: a RemoteCache to read (and
    write) action results. ``push_to``: a registry Client to publish the images to (then
    ``out`` may be None: no layout, no layer bytes needed). Every image gets its SBOMs and
    provenance as OCI referrers (rules.attest), the provenance signed with ``signing_key``
    (rules.attest.provenance.SigningKey) when there is one. ``arches``: the Debian
    architectures to build for (the main lock's alone by default); with several, each
    flavor's tag names an image index of them (rules.oci.layout.Index), their actions running
    as one graph."""
    started = time.monotonic()
    line = project.line(line_name)
    arches = tuple(arches or (project.debian.arch,))
    if out is None and push_to is None:
        raise ValueError("build: an output layout or a registry to push to is needed")
    foreign = [a for a in arches if a != project.debian.arch]
    if foreign and (remote is not None or push_to is not None):
        raise UserError(f"linux/{foreign[0]} images are built into a layout only, for now: "
                        f"--remote-cache and --push-to build linux/{project.debian.arch} "
                        "alone (`invoke push --from LAYOUT` publishes a layout of several "
                        "platforms, each tag naming its image index)")
    if out is not None:
        out = oci.check_out(out)  # before any work: never replace a folder of the user's
    pip_lock.check_all(project, [line.airflow])
    debian_lock.check(project)
    for arch in foreign:
        debian_lock.load_arch(project, arch)
    graphs = [line_graph(project, line, cache, remote, arch) for arch in arches]
    graph = graphs[0]
    prepare = None
    if remote is None:
        for g in graphs:
            g.inputs.verify_all(line.airflow)  # every locked input, before any work starts
    else:
        prepare = graph.inputs.prepare  # only those of the actions that run, when they run
    for g in graphs:
        g.inputs.save()
    result = BuildResult(line, Path(out) if out is not None else None, remote=remote,
                         layout=out is not None)
    every_layer = [a for g in graphs for a in g.layers]
    sboms = [g.sboms[f] for g in graphs for f in flavors]
    title = f"Runtime {line.version}" + (f" ({', '.join(arches)})" if foreign else "")
    with report.progress(f"{title}: layers", total=len(every_layer) + len(sboms)) as advance:
        outcomes = scheduler.run([*every_layer, *sboms], cache, advance, remote=remote,
                                 prepare=prepare)
    records = {a.key: outcomes[a].record for a in every_layer}

    def local(action: Action) -> Record:
        """The layer's record with its blob here: downloaded from the remote cache, or, if
        its bytes are unusable, made here after all."""
        record = records[action.key]
        if record.remote is not None:
            try:
                record.remote.ensure(record, cache)
            except RemoteBlobError:
                record = scheduler.run([action], cache, remote=remote, prepare=prepare
                                       )[action].record
                if layer_of(record).digest != layer_of(records[action.key]).digest:
                    raise RuntimeError(f"layer {action.label}: made here as "
                                       f"{layer_of(record).digest}, the remote cache's record "
                                       f"says {layer_of(records[action.key]).digest}") from None
                records[action.key] = record
        return record

    if out is not None and remote is not None:
        from concurrent.futures import ThreadPoolExecutor

        with report.status("downloading the layers the layout needs"), \
                ThreadPoolExecutor(4) as pool:
            list(pool.map(local, graph.layers))
    from rules.attest import attach

    for g in graphs:
        arch = g.inputs.arch
        steps = [Step(a.label if not g.inputs.foreign else f"{a.label} ({arch})",
                      layer_of(records[a.key]), outcomes[a].hit, outcomes[a].seconds)
                 for a in g.layers]
        result.steps += steps
        name = target(line) if not g.inputs.foreign else f"{target(line)} {arch}"
        result.explained += explain(cache, name, g, outcomes)
        made = [s.layer for s in steps]
        history = [f"runtime: {a.label}" for a in g.layers]
        images = [image_of(project, line, flavor, made, history, arch) for flavor in flavors]
        result.images += images
        result.attestations += attach.attestations(
            project, line, dict(zip(flavors, images)),
            {f: outcomes[g.sboms[f]].record for f in flavors}, cache, signing_key, remote,
            arch if g.inputs.foreign else None)
    referrers = [r for a in result.attestations for r in a.referrers]
    if out is not None:
        oci.write_layout(result.images, out, cache, referrers)
    if push_to is not None:
        from rules.oci import push as pushing

        by_digest = {layer_of(records[a.key]).digest: a for a in graph.layers}
        mount_from = remote.repo if remote is not None and remote.enabled and \
            remote.host == push_to.target.host else None
        result.push = pushing.push_images(
            result.images, push_to, cache,
            lambda digest: layer_of(local(by_digest[digest])).blob(cache), mount_from,
            referrers=referrers)
    result.fetched = tuple(graph.inputs.fetched)
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
