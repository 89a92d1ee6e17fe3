"""The public face: the only functions WORKSPACE and BUILD files can call.

Each function validates its fields and records a target in a ``Collector``; cross-target checks
(labels that resolve, lines that agree on their lock) happen in ``rules.load.project``.
"""

import re
from datetime import date

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.requirements import InvalidRequirement, Requirement

from rules.image import policy
from rules.load import model
from rules.load.schema import Field, Records, validate
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


def _registry_repository(value: str) -> str | None:
    from rules.common.errors import UserError
    from rules.oci.registry import parse_target

    try:
        parse_target(value)
    except UserError:
        return f"expected HOST[:PORT]/REPO (a registry repository, no tag), got {value!r}"
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
        self.images: list[model.RuntimeImage] = []
        self.remote_cache: model.RemoteCacheConfig | None = None

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
                "root_builder": Field(str, "mmdebstrap", lambda v: None if v in (
                    "mmdebstrap", "extract") else "must be 'mmdebstrap' or 'extract'"),
                "cross_packages": Field(list, []),
                "cross_target_packages": Field(list, []),
            }, kw)
            self.debian.append(model.DebianSource(
                name=a["name"], archives=tuple(tuple(e.split()) for e in a["archives"]),
                components=tuple(a["components"]), arch=a["arch"],
                packages=tuple(a["packages"]), lock=a["lock"], keyring=a["keyring"],
                source_date_epoch=a["source_date_epoch"], root_builder=a["root_builder"],
                cross_packages=tuple(a["cross_packages"]),
                cross_target_packages=tuple(a["cross_target_packages"])))

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

        def remote_cache(**kw):
            a = validate("remote_cache", {
                "url": Field(str, check=_registry_repository),
                "read_only": Field(bool, False),
            }, kw)
            if self.remote_cache is not None:
                raise RuleError("remote_cache: declared twice (one remote cache per workspace)")
            self.remote_cache = model.RemoteCacheConfig(a["url"], a["read_only"])

        return {f.__name__: f for f in (workspace, debian_source, python_toolchain, python_lock,
                                        remote_cache)}

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
                "image": Field(str),
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
                "tools": Field(list, [], _requirements),
                "extra_provider": Field(str, "", _extra_template),
                "layer_includes": Field(list, [], _distribution_names),
            }, kw)
            named = {_dist(p) for p in a["packages"]} | {_dist(p) for p in a["layer_includes"]}
            both = sorted(named & {_dist(t) for t in a["tools"]})
            if both:
                raise RuleError(f'provider_set "{a["name"]}": field \'tools\': {both[0]} is '
                                "also a provider (packages or layer_includes)")
            self.provider_sets.append(model.ProviderSet(
                label=label(a["name"]), airflow_extras=tuple(a["airflow_extras"]),
                packages=tuple(a["packages"]), requires_airflow=a["requires_airflow"],
                tools=tuple(a["tools"]), extra_provider=a["extra_provider"],
                layer_includes=tuple(a["layer_includes"])))

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

        def runtime_image(**kw):
            self.images.append(image_policy(label, kw))

        return {f.__name__: f for f in (runtime_line, provider_set, runtime_module,
                                        airflow_patches, runtime_image)}


def image_policy(label, kw: dict) -> model.RuntimeImage:
    """`runtime_image`: the image policy the lines that name it follow (`runtime_line(image =
    "//runtime:image")`), in the spirit of rules_oci's `oci_image` attributes. Every string
    marked *template* is a Python format string filled per line and flavor by
    rules.image.policy; `{{` and `}}` are literal braces.

    Names:
      repository: str, required. The image's repository (`runtime` in `runtime:4.2.1`).
      tag: template over {version} {major_minor} {flavor} {tag_suffix}, default
        "{version}{tag_suffix}". A flavor's tag.
      floating_tags: list of templates (fields as tag), default []. More tags of the same
        manifest, which each new release of the line moves ("{major_minor}{tag_suffix}").
      flavors: dict, required, non-empty: flavor name -> {"tag_suffix": str (default ""),
        "onbuild": list of templates (default [], no `OnBuild` in the config)}. One image per
        flavor, built in this order; the first is the default image (version.json's
        `image`). The tags of two flavors must differ.
    The user and the file system (the config layer):
      user: str, required. The user of /etc/passwd and the config's `User`.
      uid, gid: int, required, 0..2147483647. Its ids; `home` and `home_dirs` are owned by them.
      shell: str, default "/bin/bash". Its login shell, in /etc/passwd.
      home: absolute path, required. Its home folder (made by the config layer); a
        runtime_module's `airflow_home` files go there.
      home_mode: int, default 0o755. The mode of `home` and `home_dirs`.
      home_dirs: list of relative paths, default []. Folders made under `home`, owned and
        moded like it (a volume mounted there starts with that owner and mode).
      data_dir: absolute path, required. Where constraints.txt (the pip constraints, also
        named by /etc/pip.conf) and version.json are written.
    The image config (every string a template over the fields of rules.image.policy):
      workdir: template, default "{home}". `WorkingDir`.
      entrypoint, cmd: lists of templates, default []. `Entrypoint`, `Cmd`.
      env: dict of templates, default {}. `Env`, in the order written, before the modules'
        env; names are A-Z, 0-9, _.
      exposed_ports: list, default []. `ExposedPorts`: "PORT/tcp" or "PORT/udp".
      labels: dict of templates, default {}. `Labels`.
      annotations: dict of templates, default {}. The manifest's annotations; the build adds
        org.opencontainers.image.created (the line's source_date_epoch), .revision (the git
        commit) and .ref.name (the tag), which BUILD may not set.
    Runtime modules:
      plugin_group: str, default "". The entry point group a runtime_module's
        `airflow_plugin` is registered in; required when a module has one.
      module_dist: template over {module}, default "runtime_{module}". The distribution name
        of a plugin module's generated dist-info.
      module_dist_version: str, default "1.0.0". Its version.
    """
    a = validate("runtime_image", {
        "name": Field(str),
        "repository": Field(str, check=_repository),
        "tag": Field(str, "{version}{tag_suffix}", _template(policy.TAG_FIELDS)),
        "floating_tags": Field(list, [], _templates(policy.TAG_FIELDS)),
        "flavors": Field(Records("flavor", {
            "tag_suffix": Field(str, "", _tag_chars),
            "onbuild": Field(list, [], _templates(policy.LINE_FIELDS)),
        }), check=_flavors),
        "user": Field(str, check=_user_name),
        "uid": Field(int, check=_id),
        "gid": Field(int, check=_id),
        "shell": Field(str, "/bin/bash", _absolute),
        "home": Field(str, check=lambda v: _absolute(v) or (
            None if v.strip("/") else "must not be /")),
        "home_mode": Field(int, 0o755, lambda v: None if 0 <= v <= 0o7777 else
                           f"expected a mode from 0o0 to 0o7777, got {v:#o}"),
        "home_dirs": Field(list, [], _relative_paths),
        "data_dir": Field(str, check=_absolute),
        "workdir": Field(str, "{home}", _template(policy.LINE_FIELDS)),
        "entrypoint": Field(list, [], _templates(policy.LINE_FIELDS)),
        "cmd": Field(list, [], _templates(policy.LINE_FIELDS)),
        "env": Field(dict, {}, lambda v: _env_names(v) or _templates(policy.LINE_FIELDS)(
            list(v.values()))),
        "exposed_ports": Field(list, [], _ports),
        "labels": Field(dict, {}, lambda v: _templates(policy.LINE_FIELDS)(list(v.values()))),
        "annotations": Field(dict, {}, _annotations),
        "plugin_group": Field(str, ""),
        "module_dist": Field(str, "runtime_{module}", _template(policy.MODULE_FIELDS)),
        "module_dist_version": Field(str, "1.0.0", _nonempty),
    }, kw)
    flavors = tuple(model.ImageFlavor(n, f["tag_suffix"], tuple(f["onbuild"]))
                    for n, f in a["flavors"].items())
    tags = {n: a["tag"].format_map({"version": "1.2.3", "major_minor": "1.2", "flavor": n,
                                    "tag_suffix": f.tag_suffix})
            for n, f in zip(a["flavors"], flavors)}
    if len(set(tags.values())) != len(tags):
        raise RuleError(f'runtime_image "{a["name"]}": field \'flavors\': two flavors get the '
                        f"same tag ({', '.join(f'{n}: {t}' for n, t in tags.items())})")
    return model.RuntimeImage(
        label=label(a["name"]), repository=a["repository"], tag=a["tag"],
        floating_tags=tuple(a["floating_tags"]), flavors=flavors, user=a["user"],
        uid=a["uid"], gid=a["gid"], shell=a["shell"], home=a["home"].rstrip("/") or "/",
        home_mode=a["home_mode"], home_dirs=tuple(a["home_dirs"]),
        data_dir=a["data_dir"].rstrip("/") or "/", workdir=a["workdir"],
        entrypoint=tuple(a["entrypoint"]), cmd=tuple(a["cmd"]), env=tuple(a["env"].items()),
        exposed_ports=tuple(a["exposed_ports"]), labels=tuple(a["labels"].items()),
        annotations=tuple(a["annotations"].items()), plugin_group=a["plugin_group"],
        module_dist=a["module_dist"], module_dist_version=a["module_dist_version"])


def _template(fields):
    return lambda value: policy.template_problem(value, fields)


def _templates(fields):
    return lambda values: next(filter(None, (policy.template_problem(v, fields)
                                             for v in values)), None)


def _flavors(value: dict) -> str | None:
    if not value:
        return "must not be empty"
    for name in value:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            return f"flavor {name!r}: expected a lower-case name (a-z, 0-9, _, -)"
    return None


def _tag_chars(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Za-z0-9_.-]*", value) else \
        f"{value!r} has characters a tag cannot hold (A-Z a-z 0-9 _ . -)"


def _repository(value: str) -> str | None:
    return None if re.fullmatch(r"[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*",
                                value) else f"{value!r} is not an image repository name"


def _user_name(value: str) -> str | None:
    return None if re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value) else \
        f"{value!r} is not a user name (a-z, 0-9, _, -; at most 32)"


def _id(value: int) -> str | None:
    return None if 0 <= value <= 2147483647 else f"expected 0..2147483647, got {value}"


def _absolute(value: str) -> str | None:
    if not value.startswith("/") or any(p in (".", "..") for p in value.split("/")):
        return f"expected an absolute path without . or .., got {value!r}"
    return None


def _relative_paths(value: list) -> str | None:
    for path in value:
        if not path or path.startswith("/") or any(p in ("", ".", "..")
                                                   for p in path.rstrip("/").split("/")):
            return f"expected a relative path below home, got {path!r}"
    return None


def _ports(value: list) -> str | None:
    for port in value:
        number, _, proto = port.partition("/")
        if not (number.isdigit() and 0 < int(number) < 65536 and proto in ("tcp", "udp")):
            return f"expected 'PORT/tcp' or 'PORT/udp', got {port!r}"
    return None


_MADE_ANNOTATIONS = ("org.opencontainers.image.created", "org.opencontainers.image.revision",
                     "org.opencontainers.image.ref.name")


def _annotations(value: dict) -> str | None:
    for key in value:
        if key in _MADE_ANNOTATIONS:
            return f"{key} is set by the build"
    return _templates(policy.LINE_FIELDS)(list(value.values()))


def _extra_template(value: str) -> str | None:
    if value and "{extra}" not in value:
        return f"{value!r} does not name {{extra}}"
    return policy.template_problem(value, {"extra": ""})


def _distribution_names(value: list) -> str | None:
    for name in value:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
            return f"{name!r} is not a distribution name"
    return None


def _dist(requirement: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(Requirement(requirement).name)


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
