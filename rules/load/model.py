"""Targets: what WORKSPACE and BUILD files declare, as plain immutable records."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DebianSource:
    """A Debian archive and the package set the images need from it."""

    name: str
    archives: tuple[tuple[str, str], ...]  # (mirror URL, suite), searched in order
    components: tuple[str, ...]
    arch: str
    packages: tuple[str, ...]
    lock: str  # repo-relative path of the JSON lock
    keyring: str  # OpenPGP keyring that signs the suites' InRelease files
    source_date_epoch: int = 0  # mtime clamp of the layers lines share
    # how the Debian root is made: "mmdebstrap" (runs the maintainer scripts) or "extract"
    # (rules.debian.extract_root: unpacks, writes dpkg's database, runs no package code)
    root_builder: str = "mmdebstrap"
    # the cross toolchain (rules.lock.cross_lock, rules.debian.cross_root): packages of ``arch``
    # whose closure builds for another architecture, and packages of that target
    # architecture's archive unpacked for their headers and sysconfig data only (no closure)
    cross_packages: tuple[str, ...] = ()
    cross_target_packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class PythonToolchain:
    version: str  # "3.9"
    platform: str  # the resolver's target platform, e.g. "x86_64-manylinux_2_31"
    tools: tuple[str, ...] = ()  # packages locked into every environment (e.g. pip)
    tools_cutoff: str = ""  # the PyPI cut-off for the tools, instead of the line's


@dataclass(frozen=True)
class PythonLock:
    """One pip-compile lock per Airflow version, shared by the lines on that version."""

    airflow: str
    lock: str  # repo-relative path of the lock (requirements.txt format)
    requirements_in: str  # repo-relative path of the generated input file
    constraints: tuple[str, ...] = ()  # the explicit bounds that still matter
    index_url: str = "https://pypi.org/simple"
    find_links: tuple[str, ...] = ()  # repo-relative folders (tests use local wheels)


@dataclass(frozen=True)
class ProviderSet:
    """What a line installs beside Airflow, and which of it is the image's providers layer."""

    label: str
    airflow_extras: tuple[str, ...]
    packages: tuple[str, ...]  # requirements; each named distribution is a provider
    requires_airflow: str  # a PEP 440 specifier the line's Airflow must satisfy, or ""
    tools: tuple[str, ...] = ()  # requirements installed too, but not providers
    extra_provider: str = ""  # "{extra}" template: the provider distribution of an extra
    layer_includes: tuple[str, ...] = ()  # more distribution names of the providers layer


@dataclass(frozen=True)
class RemoteCacheConfig:
    """WORKSPACE's remote_cache(): the registry repository builds share action results in
    (rules.graph.remote). `invoke image --remote-cache` overrides it."""

    url: str  # HOST[:PORT]/REPO
    read_only: bool = False


@dataclass(frozen=True)
class RuntimeModule:
    label: str
    name: str
    import_name: str
    srcs: tuple[str, ...]  # repo-relative paths
    description: str
    scripts: tuple[tuple[str, str], ...] = ()  # (name in /usr/local/bin, repo-relative source)
    airflow_plugin: str = ""  # "module:Class", an entry point in the image's plugin_group
    env: tuple[tuple[str, str], ...] = ()  # (name, value) added to the image's environment
    airflow_home: tuple[tuple[str, str], ...] = ()  # (name in AIRFLOW_HOME, repo-relative source)


@dataclass(frozen=True)
class AirflowPatches:
    """Backported fixes applied to one Airflow version's upstream wheel."""

    label: str
    airflow: str  # the upstream version the patches apply to
    revision: int  # N in the patched wheel's version, AIRFLOW+runtime.N
    patches: tuple[str, ...]  # repo-relative .patch files, applied in this order

    @property
    def version(self) -> str:
        return f"{self.airflow}+runtime.{self.revision}"


@dataclass(frozen=True)
class RuntimeLine:
    name: str  # "4.2"
    version: str  # "4.2.0"
    lts: bool  # from the support policy (runtime/support.json)
    airflow: str
    python: str
    debian: str
    pypi_cutoff: str  # YYYY-MM-DD: newest upload the resolver may take
    pypi_cutoff_overrides: tuple[tuple[str, str], ...]  # (package, date) exceptions
    source_date_epoch: int
    providers: str  # label of a provider_set
    modules: tuple[str, ...]  # labels of runtime_module targets
    image: str = ""  # label of the runtime_image policy its images follow


@dataclass(frozen=True)
class ImageFlavor:
    """One image of a line: its tag suffix and ONBUILD triggers (none: no `OnBuild`)."""

    name: str
    tag_suffix: str
    onbuild: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuntimeImage:
    """The image policy (a runtime_image target): who the image runs as, where its home is,
    its config, names and flavors. Strings may be templates (rules.image.policy fills them)."""

    label: str
    repository: str
    tag: str  # template of a flavor's tag
    floating_tags: tuple[str, ...]  # templates of more tags on the same manifest
    flavors: tuple[ImageFlavor, ...]  # in build order; the first is the default image
    user: str
    uid: int
    gid: int
    shell: str
    home: str  # absolute
    home_mode: int
    home_dirs: tuple[str, ...]  # folders under home, owned like home
    data_dir: str  # absolute: constraints.txt and version.json
    workdir: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # in the order written
    exposed_ports: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    plugin_group: str  # entry point group of a module's `airflow_plugin`
    module_dist: str  # template ("{module}") of a plugin module's distribution name
    module_dist_version: str

    def flavor(self, name: str) -> ImageFlavor:
        for flavor in self.flavors:
            if flavor.name == name:
                return flavor
        from rules.common.errors import UserError

        known = ", ".join(f.name for f in self.flavors)
        raise UserError(f"{self.label}: unknown flavor {name!r}; flavors: {known}")


@dataclass(frozen=True)
class Project:
    root: str
    debian: DebianSource
    python: PythonToolchain
    locks: dict[str, PythonLock]  # by Airflow version
    lines: dict[str, RuntimeLine]  # by line name, in BUILD order
    provider_sets: dict[str, ProviderSet]
    modules: dict[str, RuntimeModule]
    workspace_name: str = field(default="runtime")
    patches: dict[str, AirflowPatches] = field(default_factory=dict)  # by Airflow version
    images: dict[str, RuntimeImage] = field(default_factory=dict)  # by label
    remote_cache: RemoteCacheConfig | None = None  # WORKSPACE's remote_cache(), if any

    def image(self, line: RuntimeLine) -> RuntimeImage:
        """The image policy of a line."""
        return self.images[line.image]

    def line(self, name: str) -> RuntimeLine:
        from rules.common.errors import UserError

        if name not in self.lines:
            known = ", ".join(self.lines)
            raise UserError(f"unknown runtime line '{name}'; known lines: {known}")
        return self.lines[name]

    def airflow_version(self, airflow: str) -> str:
        """The version the image's Airflow reports: upstream's, or the patched wheel's."""
        patches = self.patches.get(airflow)
        return patches.version if patches else airflow

    def lines_on(self, airflow: str) -> list[RuntimeLine]:
        return [line for line in self.lines.values() if line.airflow == airflow]
