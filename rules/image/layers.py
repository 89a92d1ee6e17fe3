"""The layer recipes of an image: the Python layers (dependencies grouped by the Airflow locks
that share them, Airflow, the providers), one layer per Runtime module, and the config layer.

What the build (rules.image.build) calls, per layer: a function of named inputs (input name ->
digest or value: the action's key is made of exactly these, and `--explain` names the ones that
changed) and a function that writes the layer.
"""

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from rules.common import scratch
from rules.image.config import (AIRFLOW_HOME, ASTRO_UID, MODULE_DIST_VERSION, PROVIDER_PREFIXES,
                                config_files, version_metadata)
from rules.image.inputs import Inputs
from rules.load.model import Project, RuntimeLine
from rules.lock import requirements_file
from rules.oci import layer
from rules.python import wheel_install


def python_groups(project: Project, line: RuntimeLine) -> list[tuple[str, list[str]]]:
    """Layers of the line's Python packages: dependencies grouped by the set of Airflow locks
    that hold the very same files (most shared first), then Airflow, then the providers."""
    airflow = line.airflow
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


def module_metadata(module) -> dict[str, str]:
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


def module_inputs(project: Project, line: RuntimeLine, module) -> dict[str, str]:
    """The named inputs of a module's layer: each source file (repo path -> sha256, with `+x`
    when executable), the module's identity and generated metadata."""
    root = Path(project.root)
    named = {"module": f"{module.name} {module.import_name}"}
    for rel, f in module_files(project, module):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        named[f"{f.relative_to(root).as_posix()} as {rel}"] = \
            digest + ("+x" if f.stat().st_mode & 0o100 else "")
    for rel, text in sorted(module_metadata(module).items()):
        named[f"generated {rel}"] = hashlib.sha256(text.encode()).hexdigest()
    named["airflow_home"] = AIRFLOW_HOME
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
        for rel, text in module_metadata(module).items():
            dst = tree / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text)
            dst.chmod(0o644)
        wheel_install.compile_trees(python_root, [tree])
        entries = wheel_install.image_entries([tree])
        home = tree / "home"
        for rel in (layer.walk(home) if home.is_dir() else []):
            entries[f"{AIRFLOW_HOME.strip('/')}/{rel}"] = home / rel
        # (AIRFLOW_HOME itself, owned by astro, comes from the config layer, which is last)
        return layer.write_entries(entries, cache, epoch, normalize_modes=True)


CONFIG_RECIPE = 2  # the config layer's own: 2 added AIRFLOW_HOME/logs


def config_inputs(project: Project, line: RuntimeLine, lock_text: str,
                  rootfs_key: str) -> dict[str, str]:
    """Named inputs of the config layer: what its files are made from (the Debian root's key,
    not the root: a rebuild with every layer cached never needs the root)."""
    return {"recipe": str(CONFIG_RECIPE), "epoch": str(line.source_date_epoch),
            "debian root": rootfs_key,
            "version.json": json.dumps(version_metadata(project, line), sort_keys=True),
            "lock": hashlib.sha256(lock_text.encode()).hexdigest()}


def config_layer(project: Project, line: RuntimeLine, lock_text: str, inputs: Inputs,
                 cache: Path) -> layer.Layer:
    files = config_files(project, line, lock_text, inputs)
    epoch = line.source_date_epoch
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
