"""The layer recipes of an image: the Python layers (each big dependency alone, the small ones
in hash buckets, Airflow, the providers), one layer per Runtime module, and the config layer.

What the build (rules.image.build) calls, per layer: a function of named inputs (input name ->
digest or value: the action's key is made of exactly these, and `--explain` names the ones that
changed) and a function that writes the layer.

Policy comes from BUILD, never from here: which distributions are providers from the line's
`provider_set`, the home folder, its owner and mode, and the plugin metadata of a module from
the line's `runtime_image` (rules.image.policy). Each value a layer is made from is one of its
named inputs, so that changing it in BUILD rebuilds that layer.
"""

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from rules.common import scratch
from rules.image import policy
from rules.image.config import config_files, data_dir, passwd_entry, version_metadata
from rules.image.inputs import Inputs
from rules.load.model import Project, RuntimeLine
from rules.lock import requirements_file
from rules.oci import layer
from rules.python import wheel_install


# Dependency layers: a locked file at least this big (as the index gives its size) is a layer
# of its own; the rest go into BUCKETS layers by a hash of their name. Measured on 4.2 (255
# distributions, 171 MB of wheels): 58 files of 200 kB or more hold 161 MB; the other 197 hold
# 10.6 MB, so a bucket holds about 0.3 MB of wheels (a layer of at most about 0.8 MB, with its
# .pyc files). One package bumped in a lock then rewrites its own layer, or its bucket, not a
# shared layer of up to 100 MB; and 1 + 58 + 32 + 2 + the modules + config stays well below the
# about 125 layers an image may have.
OWN_LAYER_BYTES = 200_000
BUCKETS = 32


def python_groups(project: Project, line: RuntimeLine, sizes: dict[str, int] | None = None
                  ) -> list[tuple[str, list[str]]]:
    """Layers of the line's Python packages: each big dependency alone and the small ones in
    hash buckets (``sizes``: name -> bytes of its locked file; without them every dependency
    is small), ordered by the set of Airflow locks that hold the very same file (most shared
    first: Docker keeps a layer for reuse only with all the layers below it), then Airflow, then
    the providers."""
    airflow = line.airflow
    root = Path(project.root)
    entries = {a: {e.name: (e.version, tuple(sorted(e.hashes)))
                   for e in requirements_file.parse((root / lock.lock).read_text())[1]}
               for a, lock in project.locks.items()}
    mine = entries[airflow]
    pset = project.provider_sets[line.providers]
    in_layer = policy.provider_distributions(
        pset, mine, f"the Airflow {airflow} lock ({project.locks[airflow].lock})")
    sizes = sizes or {}
    alone: list[tuple[int, tuple[str, ...], str]] = []
    buckets: dict[int, list[str]] = {}
    airflow_names, providers = [], []
    for name in sorted(mine):
        if name == "apache-airflow":
            airflow_names.append(name)
        elif name in in_layer:
            providers.append(name)
        elif sizes.get(name, 0) >= OWN_LAYER_BYTES:
            sharing = tuple(sorted(a for a, e in entries.items() if e.get(name) == mine[name]))
            alone.append((-len(sharing), sharing, name))
        else:
            buckets.setdefault(bucket(name), []).append(name)
    plan = [(f"python {name}", [name]) for _, _, name in sorted(alone)]
    plan += [(f"python deps (bucket {b:02d})", buckets[b]) for b in sorted(buckets)]
    return plan + [("apache-airflow", airflow_names), ("providers", providers)]


def bucket(name: str) -> int:
    """The small-dependency layer of a distribution: stable for its name, whatever else the
    lock holds."""
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % BUCKETS


def python_layer_job(items, cache: Path, root: Path, epoch: int) -> layer.Layer:
    """In a worker process (rules.graph.workers): unpacking, stripping and tar writing are Python
    code, which in threads of one process contend for the GIL."""
    with wheel_install.image_trees(items, cache, lambda: root) as trees:
        return layer.write_entries(wheel_install.image_entries(trees), cache, epoch,
                                   normalize_modes=True)


def module_files(project: Project, module) -> list[tuple[str, Path]]:
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


def module_metadata(project: Project, line: RuntimeLine, module) -> dict[str, str]:
    """Generated files of a module that registers a plugin: a dist-info, so the application
    finds the plugin by its entry point (in the image policy's `plugin_group`), whatever the
    user mounts over its plugins folder. Name and version: the policy's `module_dist` and
    `module_dist_version`."""
    if not module.airflow_plugin:
        return {}
    image = project.image(line)
    dist, version = policy.module_dist(image, module.name), image.module_dist_version
    info = f"site/{dist}-{version}.dist-info"
    return {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\n"
                            f"Version: {version}\nSummary: {module.description}\n",
        f"{info}/entry_points.txt": f"[{image.plugin_group}]\n{module.name} = "
                                    f"{module.airflow_plugin}\n",
        f"{info}/INSTALLER": "runtime\n",
    }


def module_inputs(project: Project, line: RuntimeLine, module) -> dict[str, str]:
    """The named inputs of a module's layer: each source file (repo path -> sha256, with `+x`
    when executable), the module's identity and generated metadata."""
    root = Path(project.root)
    named = {"module": f"{module.name} {module.import_name}"}
    for rel, f in module_files(project, module):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        named[f"{f.relative_to(root).as_posix()} as {rel}"] = \
            digest + ("+x" if f.stat().st_mode & 0o100 else "")
    for rel, text in sorted(module_metadata(project, line, module).items()):
        named[f"generated {rel}"] = hashlib.sha256(text.encode()).hexdigest()
    named["home"] = project.image(line).home
    return named


def module_layer(project: Project, line: RuntimeLine, module, python_root: Path,
                 cache: Path) -> layer.Layer:
    epoch = line.source_date_epoch
    with scratch.folder(cache, "module") as tmp:
        tree = tmp / "trees" / module.name
        for rel, src in module_files(project, module):
            dst = tree / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            dst.chmod(0o755 if rel.startswith("bin/") or src.stat().st_mode & 0o100 else 0o644)
        for rel, text in module_metadata(project, line, module).items():
            dst = tree / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text)
            dst.chmod(0o644)
        wheel_install.compile_trees(python_root, [tree])
        entries = wheel_install.image_entries([tree])
        home = tree / "home"
        home_path = project.image(line).home.strip("/")
        for rel in (layer.walk(home) if home.is_dir() else []):
            entries[f"{home_path}/{rel}"] = home / rel
        # (home itself, owned by the image's user, comes from the config layer, which is last)
        return layer.write_entries(entries, cache, epoch, normalize_modes=True)


CONFIG_RECIPE = 2  # the config layer's own: 2 added the home folders (logs/)


def config_inputs(project: Project, line: RuntimeLine, lock_text: str,
                  rootfs_key: str) -> dict[str, str]:
    """Named inputs of the config layer: what its files are made from (the Debian root's key,
    not the root: a rebuild with every layer cached never needs the root), the image policy's
    user and folders among them."""
    image = project.image(line)
    return {"recipe": str(CONFIG_RECIPE), "epoch": str(line.source_date_epoch),
            "debian root": rootfs_key,
            "version.json": json.dumps(version_metadata(project, line), sort_keys=True),
            "lock": hashlib.sha256(lock_text.encode()).hexdigest(),
            "passwd entry": passwd_entry(project, line).rstrip("\n"),
            "home": image.home, "home owner": f"{image.uid}:{image.gid}",
            "home mode": f"{image.home_mode:#o}", "home dirs": json.dumps(image.home_dirs),
            "data dir": data_dir(project, line)}


def config_layer(project: Project, line: RuntimeLine, lock_text: str, inputs: Inputs,
                 cache: Path) -> layer.Layer:
    files = config_files(project, line, lock_text, inputs)
    epoch = line.source_date_epoch
    image = project.image(line)
    with tempfile.TemporaryDirectory(prefix="runtime-config-") as tmp:
        home = image.home.strip("/")
        # the home_dirs exist, the user's: a volume mounted there (e.g. a logs volume)
        # starts with their owner and mode, so the application can write there
        owned = [home, *(f"{home}/{d.strip('/')}" for d in image.home_dirs)]
        entries: dict[str, Path | None] = dict.fromkeys(owned)
        for name, data in files.items():
            path = Path(tmp) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            entries[name] = path
        return layer.write_entries(
            entries, cache, epoch, normalize_modes=True,
            owner=lambda n: (image.uid, image.gid) if n in owned else (0, 0),
            modes=dict.fromkeys(owned, image.home_mode))
