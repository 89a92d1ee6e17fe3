"""The public face: the only functions WORKSPACE and BUILD files can call.

Each function validates its fields and records a target in a ``Collector``; cross-target checks
(labels that resolve, lines that agree on their lock) happen in ``rules.load.project``.
"""

import re
from datetime import date

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.requirements import InvalidRequirement, Requirement

from rules.load import model
from rules.load.schema import Field, validate
from rules.load.starlark_eval import RuleError

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


def _date(value: str) -> str | None:
    try:
        date.fromisoformat(value)
    except ValueError:
        return f"expected a date YYYY-MM-DD, got {value!r}"
    return None


def _dates(value: dict) -> str | None:
    return next(filter(None, map(_date, value.values())), None)


def _requirements(value: list) -> str | None:
    for text in value:
        try:
            Requirement(text)
        except InvalidRequirement as e:
            return f"invalid requirement {text!r}: {e}"
    return None


def _specifier(value: str) -> str | None:
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        return f"invalid version specifier {value!r}"
    return None


def _semver(value: str) -> str | None:
    return None if _SEMVER.match(value) else f"expected MAJOR.MINOR.PATCH, got {value!r}"


def _archives(value: list) -> str | None:
    for entry in value:
        parts = entry.split()
        if len(parts) != 2 or not parts[0].startswith(("http://", "https://", "file://")):
            return f"expected 'MIRROR_URL SUITE', got {entry!r}"
    return None


def _nonempty(value) -> str | None:
    return None if value else "must not be empty"


class Collector:
    """Targets recorded while the files of one project are evaluated."""

    def __init__(self):
        self.workspace_name = None
        self.debian: list[model.DebianSource] = []
        self.python: list[model.PythonToolchain] = []
        self.locks: list[model.PythonLock] = []
        self.lines: list[model.RuntimeLine] = []
        self.provider_sets: list[model.ProviderSet] = []
        self.modules: list[model.RuntimeModule] = []
        self.patches: list[model.AirflowPatches] = []

    # WORKSPACE ---------------------------------------------------------------------------
    def workspace_functions(self) -> dict:
        def workspace(**kw):
            a = validate("workspace", {"name": Field(str)}, kw)
            self.workspace_name = a["name"]

        def debian_source(**kw):
            a = validate("debian_source", {
                "name": Field(str),
                "archives": Field(list, check=lambda v: _nonempty(v) or _archives(v)),
                "components": Field(list, ["main"]),
                "arch": Field(str, "amd64"),
                "packages": Field(list, check=_nonempty),
                "lock": Field(str),
                "keyring": Field(str, "/usr/share/keyrings/debian-archive-keyring.gpg"),
                "source_date_epoch": Field(int, 0),
            }, kw)
            self.debian.append(model.DebianSource(
                name=a["name"], archives=tuple(tuple(e.split()) for e in a["archives"]),
                components=tuple(a["components"]), arch=a["arch"],
                packages=tuple(a["packages"]), lock=a["lock"], keyring=a["keyring"],
                source_date_epoch=a["source_date_epoch"]))

        def python_toolchain(**kw):
            a = validate("python_toolchain", {
                "name": Field(str), "version": Field(str), "platform": Field(str),
                "tools": Field(list, [], _requirements),
                "tools_cutoff": Field(str, "", lambda v: _date(v) if v else None),
            }, kw)
            self.python.append(model.PythonToolchain(a["version"], a["platform"],
                                                     tuple(a["tools"]), a["tools_cutoff"]))

        def python_lock(**kw):
            a = validate("python_lock", {
                "name": Field(str),
                "airflow": Field(str),
                "lock": Field(str),
                "requirements_in": Field(str),
                "constraints": Field(list, [], _requirements),
                "index_url": Field(str, "https://pypi.org/simple"),
                "find_links": Field(list, []),
            }, kw)
            self.locks.append(model.PythonLock(
                airflow=a["airflow"], lock=a["lock"], requirements_in=a["requirements_in"],
                constraints=tuple(a["constraints"]), index_url=a["index_url"],
                find_links=tuple(a["find_links"])))

        return {f.__name__: f for f in (workspace, debian_source, python_toolchain, python_lock)}

    # BUILD -------------------------------------------------------------------------------
    def build_functions(self, package: str) -> dict:
        """Functions for the BUILD file of ``package`` ("" for the root)."""

        def label(name: str) -> str:
            return f"//{package}:{name}"

        def runtime_line(**kw):
            a = validate("runtime_line", {
                "name": Field(str),
                "version": Field(str, check=_semver),
                "airflow": Field(str),
                "python": Field(str),
                "debian": Field(str),
                "pypi_cutoff": Field(str, check=_date),
                "pypi_cutoff_overrides": Field(dict, {}, _dates),
                "source_date_epoch": Field(int, check=lambda v: None if v > 0 else "must be > 0"),
                "providers": Field(str),
                "modules": Field(list, []),
            }, kw)
            if not a["version"].startswith(a["name"] + "."):
                raise RuleError(f'runtime_line "{a["name"]}": field \'version\': '
                                f'{a["version"]!r} is not a release of line {a["name"]}')
            a["pypi_cutoff_overrides"] = tuple(sorted(a["pypi_cutoff_overrides"].items()))
            a["modules"] = tuple(a["modules"])
            self.lines.append(model.RuntimeLine(lts=False, **a))  # lts: from the support policy

        def provider_set(**kw):
            a = validate("provider_set", {
                "name": Field(str),
                "airflow_extras": Field(list, []),
                "packages": Field(list, [], _requirements),
                "requires_airflow": Field(str, "", _specifier),
            }, kw)
            self.provider_sets.append(model.ProviderSet(
                label=label(a["name"]), airflow_extras=tuple(a["airflow_extras"]),
                packages=tuple(a["packages"]), requires_airflow=a["requires_airflow"]))

        def runtime_module(**kw):
            a = validate("runtime_module", {
                "name": Field(str),
                "import_name": Field(str, check=_import_name),
                "srcs": Field(list, []),
                "scripts": Field(dict, {}),
                "description": Field(str, ""),
                "airflow_plugin": Field(str, "", _entry_point),
                "env": Field(dict, {}, _env_names),
                "airflow_home": Field(dict, {}),
            }, kw)
            rel = (lambda s: f"{package}/{s}" if package else s)
            self.modules.append(model.RuntimeModule(
                label=label(a["name"]), name=a["name"], import_name=a["import_name"],
                srcs=tuple(rel(s) for s in a["srcs"]), description=a["description"],
                scripts=tuple(sorted((k, rel(v)) for k, v in a["scripts"].items())),
                airflow_plugin=a["airflow_plugin"], env=tuple(sorted(a["env"].items())),
                airflow_home=tuple(sorted((k, rel(v)) for k, v in a["airflow_home"].items()))))

        def airflow_patches(**kw):
            a = validate("airflow_patches", {
                "name": Field(str),
                "airflow": Field(str, check=_semver),
                "revision": Field(int, check=lambda v: None if v >= 1 else "must be >= 1"),
                "patches": Field(list, check=lambda v: _nonempty(v) or _patch_names(v)),
            }, kw)
            rel = (lambda s: f"{package}/{s}" if package else s)
            self.patches.append(model.AirflowPatches(
                label=label(a["name"]), airflow=a["airflow"], revision=a["revision"],
                patches=tuple(rel(p) for p in a["patches"])))

        return {f.__name__: f for f in (runtime_line, provider_set, runtime_module,
                                        airflow_patches)}


def _patch_names(value: list) -> str | None:
    for name in value:
        if not isinstance(name, str) or not name.endswith(".patch"):
            return f"expected paths of .patch files, got {name!r}"
    if len(set(value)) != len(value):
        return "a patch is listed twice"
    return None


def _env_names(env: dict) -> str | None:
    for name in env:
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
            return f"'{name}' is not an environment variable name (A-Z, 0-9, _)"
    return None


_STDLIB_SHADOWS = {"logging", "json", "typing", "types", "email", "http", "io", "os", "sys",
                   "string", "random", "test", "runtime_test"}


def _entry_point(value: str) -> str | None:
    module, _, attr = value.partition(":")
    if value and not (all(p.isidentifier() for p in module.split(".")) and attr.isidentifier()):
        return f"{value!r} is not 'package.module:Class'"
    return None


def _import_name(value: str) -> str | None:
    import sys

    if not value.isidentifier():
        return f"{value!r} is not a Python identifier"
    if value in sys.stdlib_module_names or value in _STDLIB_SHADOWS:
        return f"{value!r} would shadow the standard library module of that name"
    return None
