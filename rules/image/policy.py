"""The image policy of a line, applied: templates filled, tags named, providers found.

What the image is (its user, home, config, names, flavors) is declared in Starlark by a
`runtime_image` target (rules/defs.py documents every attribute) and referenced by each
`runtime_line` (`image = "//runtime:image"`); which distributions make the providers layer is
declared by the line's `provider_set`. This module is the only place that turns those
declarations into values, so that the build, the release notes, the tasks, the tests and the
tools name an image the same way (`tag`, `floating_tags`, `reference`), and so that the engine
holds no constant of its own about Airflow or Astronomer.

Templates are Python format strings over the fields below (`{{` and `}}` for a literal brace);
`rules.defs` refuses, with the file:line:col of the call, a template that names another field.
"""

import string

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from rules.common.errors import UserError
from rules.load.model import Project, ProviderSet, RuntimeImage, RuntimeLine

# Fields of a tag template (`tag`, `floating_tags`): a release names the tags of a version
# the BUILD file does not hold yet, so these depend on the version and the flavor only.
TAG_FIELDS = {
    "version": "the Runtime version, 4.2.1",
    "major_minor": "its MAJOR.MINOR, 4.2",
    "flavor": "the flavor's name, onbuild",
    "tag_suffix": "the flavor's tag_suffix, -base",
}

# Fields of every other template: workdir, entrypoint, cmd, env, labels, annotations, the
# flavors' onbuild triggers.
LINE_FIELDS = {
    **TAG_FIELDS,
    "line": "the line's name, 4.2",
    "airflow_version": "the Airflow version the image reports, 2.2.4+runtime.1",
    "lts": "true or false (runtime/support.json)",
    "python": "the line's Python, 3.9",
    "debian": "the line's Debian suite, bullseye",
    "repository": "the image's repository, runtime",
    "tag": "the flavor's tag, 4.2.1-base",
    "user": "the image's user", "uid": "its uid", "gid": "its gid",
    "home": "the user's home folder", "data_dir": "where constraints.txt and version.json are",
}

MODULE_FIELDS = {"module": "the runtime_module's name"}


def template_problem(text: str, fields) -> str | None:
    """Why ``text`` is not a template over ``fields``, or None."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        return f"{text!r} is not a template ({e}; write {{{{ and }}}} for a literal brace)"
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in fields:
            return (f"{text!r}: unknown template field {{{name}}} (fields: "
                    f"{', '.join('{' + f + '}' for f in fields)})")
        if spec or conversion:
            return f"{text!r}: {{{name}}} takes no conversion or format spec"
    return None


def major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _tag_values(image: RuntimeImage, version: str, flavor: str) -> dict[str, str]:
    return {"version": version, "major_minor": major_minor(version), "flavor": flavor,
            "tag_suffix": image.flavor(flavor).tag_suffix}


# Tag naming: written here once, for the build, releases, tasks, tests and tools.
def tag(image: RuntimeImage, version: str, flavor: str) -> str:
    """The tag of ``flavor``'s image of Runtime ``version`` (4.2.1, 4.2.1-base)."""
    return image.tag.format_map(_tag_values(image, version, flavor))


def floating_tags(image: RuntimeImage, version: str, flavor: str) -> tuple[str, ...]:
    """The tags that move to each new release of the line (4.2, 4.2-base)."""
    values = _tag_values(image, version, flavor)
    return tuple(t.format_map(values) for t in image.floating_tags)


def reference(image: RuntimeImage, tag_: str) -> str:
    """repository:tag."""
    return f"{image.repository}:{tag_}"


def flavors(image: RuntimeImage) -> tuple[str, ...]:
    """The flavors' names, in build order (the first is the default image)."""
    return tuple(f.name for f in image.flavors)


def values(project: Project, line: RuntimeLine, flavor: str) -> dict[str, str]:
    """What the line's templates are filled with, for one flavor."""
    image = project.image(line)
    return {**_tag_values(image, line.version, flavor),
            "line": line.name, "airflow_version": project.airflow_version(line.airflow),
            "lts": "true" if line.lts else "false", "python": line.python,
            "debian": line.debian, "repository": image.repository,
            "tag": tag(image, line.version, flavor), "user": image.user,
            "uid": str(image.uid), "gid": str(image.gid), "home": image.home,
            "data_dir": image.data_dir}


def fill(text: str, values_: dict[str, str]) -> str:
    return text.format_map(values_)


def module_dist(image: RuntimeImage, module_name: str) -> str:
    return image.module_dist.format_map({"module": module_name})


# The providers layer ----------------------------------------------------------------------
def provider_distributions(pset: ProviderSet, locked, where: str) -> set[str]:
    """The locked distributions (canonical names) of ``pset``'s providers layer: its named
    `packages`, the provider distribution of each of its `airflow_extras` (its
    `extra_provider` template; an extra with no such distribution in the lock, such as
    `password`, brings none) and its `layer_includes`, which must be locked. Its `tools` are
    installed but are not providers: they stay in the dependency layers."""
    locked = set(locked)
    found = {canonicalize_name(Requirement(p).name) for p in pset.packages}
    if pset.extra_provider:
        found |= {canonicalize_name(pset.extra_provider.format_map({"extra": e}))
                  for e in pset.airflow_extras} & locked
    for name in pset.layer_includes:
        if canonicalize_name(name) not in locked:
            raise UserError(f"{pset.label}: field 'layer_includes': {name} is not in {where}")
        found.add(canonicalize_name(name))
    return found & locked
