"""Load a project: evaluate WORKSPACE and every BUILD file, then check targets against each
other."""

from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

import dataclasses

from rules.load import model
from rules.release import support
from rules.defs import Collector
from rules.common.errors import UserError
from rules.load.starlark_eval import evaluate


def find_root(start: Path | None = None) -> Path:
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "WORKSPACE").is_file():
            return candidate
    raise UserError(f"no WORKSPACE file in {here} or any parent folder")


def build_packages(root: Path) -> list[str]:
    """The root package ("") and every folder below it that holds a BUILD file, sorted."""
    found = []
    for build in sorted(root.rglob("BUILD")):
        rel = build.parent.relative_to(root).as_posix()
        if any(part.startswith(".") or part in {"out", "node_modules"}
               for part in build.parent.relative_to(root).parts):
            continue
        found.append("" if rel == "." else rel)
    return found


def load(root: Path | None = None) -> model.Project:
    root = Path(root).resolve() if root else find_root()
    c = Collector()
    evaluate(root / "WORKSPACE", "WORKSPACE", c.workspace_functions())
    for package in build_packages(root):
        name = f"{package}/BUILD" if package else "BUILD"
        evaluate(root / name, name, c.build_functions(package))
    return _link(root, c)


def _unique(kind: str, items, key) -> dict:
    out = {}
    for item in items:
        k = key(item)
        if k in out:
            raise UserError(f"{kind} '{k}' is declared twice")
        out[k] = item
    return out


def _link(root: Path, c: Collector) -> model.Project:
    if len(c.debian) != 1:
        raise UserError(f"WORKSPACE: expected one debian_source, found {len(c.debian)}")
    if len(c.python) != 1:
        raise UserError(f"WORKSPACE: expected one python_toolchain, found {len(c.python)}")
    locks = _unique("python_lock for Airflow", c.locks, lambda lock: lock.airflow)
    lines = _unique("runtime_line", c.lines, lambda line: line.name)
    sets = _unique("provider_set", c.provider_sets, lambda s: s.label)
    modules = _unique("runtime_module", c.modules, lambda m: m.label)
    patches = _unique("airflow_patches for Airflow", c.patches, lambda p: p.airflow)
    images = _unique("runtime_image", c.images, lambda i: i.label)
    python, debian = c.python[0], c.debian[0]

    for line in lines.values():
        where = f'BUILD: runtime_line "{line.name}"'
        if line.airflow not in locks:
            raise UserError(f"{where}: field 'airflow': no python_lock for Airflow {line.airflow} "
                            f"in WORKSPACE (locks: {', '.join(locks) or 'none'})")
        if line.python != python.version:
            raise UserError(f"{where}: field 'python': {line.python!r}, but the WORKSPACE "
                            f"toolchain is Python {python.version}")
        if line.debian != debian.name:
            raise UserError(f"{where}: field 'debian': {line.debian!r}, but the WORKSPACE "
                            f"debian_source is {debian.name!r}")
        if line.providers not in sets:
            raise UserError(f"{where}: field 'providers': no provider_set {line.providers} "
                            f"(known: {', '.join(sets) or 'none'})")
        needs = sets[line.providers].requires_airflow
        if needs and Version(line.airflow) not in SpecifierSet(needs):
            raise UserError(f"{where}: field 'providers': {line.providers} needs "
                            f"apache-airflow{needs}, but the line is on Airflow {line.airflow}")
        for label in line.modules:
            if label not in modules:
                raise UserError(f"{where}: field 'modules': no runtime_module {label} "
                                f"(known: {', '.join(modules) or 'none'})")
        if line.image not in images:
            raise UserError(f"{where}: field 'image': no runtime_image {line.image} "
                            f"(known: {', '.join(images) or 'none'})")
        plugins = [label for label in line.modules if modules[label].airflow_plugin]
        if plugins and not images[line.image].plugin_group:
            raise UserError(f"{where}: {plugins[0]} registers a plugin, but "
                            f"{line.image} has no plugin_group (the entry point group)")

    policy = support.load(root)
    for name in lines:
        if name not in policy:
            raise UserError(f"{support.POLICY}: no entry for line {name} (LTS or not, and "
                            "supported until when)")
        lines[name] = dataclasses.replace(lines[name], lts=policy[name].lts)
    for name in policy:
        if name not in lines:
            raise UserError(f"{support.POLICY}: line {name} is not a runtime_line in BUILD")

    for airflow in locks:
        on = [line for line in lines.values() if line.airflow == airflow]
        for other in on[1:]:
            for fld in ("pypi_cutoff", "pypi_cutoff_overrides"):
                if getattr(other, fld) != getattr(on[0], fld):
                    raise UserError(
                        f'BUILD: runtime_line "{other.name}": field \'{fld}\' differs from line '
                        f'"{on[0].name}", and both share the Airflow {airflow} lock')
    for module in modules.values():
        for src in (*module.srcs, *(s for _, s in module.scripts)):
            if not (root / src).exists():
                raise UserError(f"{module.label}: field 'srcs': {src} does not exist")

    for patchset in patches.values():
        where = f"{patchset.label}"
        if patchset.airflow not in locks:
            raise UserError(f"{where}: field 'airflow': no python_lock for Airflow "
                            f"{patchset.airflow} in WORKSPACE (locks: {', '.join(locks)})")
        for path in patchset.patches:
            if not (root / path).is_file():
                raise UserError(f"{where}: field 'patches': {path} does not exist")

    return model.Project(root=str(root), debian=debian, python=python, locks=locks,
                         lines=lines, provider_sets=sets, modules=modules,
                         workspace_name=c.workspace_name or "runtime", patches=patches,
                         images=images, remote_cache=c.remote_cache)
