"""Build a lock's sdist into an arm64 wheel on amd64, cross-compiled, without emulation.

The shape of rules.python.sdist_build: an action of the build graph (kind "cross wheel") keyed
by the sdist's sha256, the cross root's key (rules.debian.cross_root: every .deb by sha256),
the lock's pip/setuptools/wheel package trees and RECIPE, giving ``Made(blobs={"wheel": ...},
values={"filename": ...})``. It runs chrooted into the cross root, with the image's own amd64
python3.9 and the lock's build tools on PYTHONPATH: ``pip wheel --no-deps --no-build-isolation
--no-index``, with

- ``_PYTHON_SYSCONFIGDATA_NAME=_sysconfigdata__aarch64-linux-gnu``: distutils and sysconfig
  read the arm64 python3.9's configuration (EXT_SUFFIX ``.cpython-39-aarch64-linux-gnu.so``,
  its CFLAGS and LDSHARED);
- ``_PYTHON_HOST_PLATFORM=linux-aarch64``: bdist_wheel tags the wheel ``linux_aarch64``
  (``cp39-cp39-linux_aarch64``; ``cp36-abi3-linux_aarch64`` for pycryptodomex), a pure one
  ``py3-none-any``;
- CC and LDSHARED the arm64 python's own (``aarch64-linux-gnu-gcc -pthread``, its LDSHARED
  verbatim), which name bullseye's cross gcc 10 of the root; CFLAGS adds the arm64 Python
  headers (below the cross gcc's include folder, see cross_root). The arm64 glibc headers and
  crt files are bullseye's 2.31: no symbol newer than GLIBC_2.31 can be linked;
- fixed paths: the sdist is unpacked (by this module, on the host) to /mnt/src/<its folder>
  and built in place (pip builds a local folder in its tree), so the compiler's debug info
  (DW_AT_comp_dir, file names) holds /mnt/src/..., never a temporary name; its files get the
  modes pip's own unpacking gives (644, 755 when executable; grpc-google-iam-v1's sdist holds
  0640 files, which the wheel would otherwise keep). So a pure sdist gives the very wheel
  sdist_build gives for amd64: all 13 of the 2.2.4 lock, byte for byte;
  SOURCE_DATE_EPOCH is sdist_build.WHEEL_EPOCH; the environment is chroot.CLEAN_ENV's.

Two builds in two empty caches give the same bytes (tests/rules/python/test_cross_build.py).

Two sdists need more than that:

- pendulum 2.1.2 builds with poetry-core (``build-backend = "poetry.core.masonry.api"``),
  which no lock holds, and ships no setup.py. Its ``build.py`` declares the two speed-ups
  (``pendulum._extensions._helpers`` and ``pendulum.parsing._iso8601``, one C file each).
  This module writes a setup.py (PENDULUM_SETUP below: the packages, those two extensions,
  and the metadata poetry wrote into the sdist's PKG-INFO: summary, requirements,
  classifiers, URLs, description) and a pyproject.toml whose backend is setuptools' legacy
  one, so the lock's setuptools builds it. The wheel holds the same files as its amd64
  wheel from PyPI (the two .c files too), plus setuptools' top_level.txt, with the extensions
  compiled (poetry's build.py catches a failed build; this one does not: a failed compile
  fails the build).
  Only a pendulum sdist whose build.py names exactly those two extensions is shimmed.
- snowflake-connector-python 2.7.1 builds its Arrow result iterator only when pyarrow imports
  at build time; pyarrow is not on the build's path, so the wheel has no Arrow extension (as
  on amd64 its wheel would have one): the connector then fetches results as JSON
  (``CAN_USE_ARROW_RESULT_FORMAT = False``) and the pandas fetch API is unavailable. Kept so
  on purpose; building it needs pyarrow's aarch64 headers and libarrow (docs/arm64.md).
"""

import ast
import email.parser
import re
import tarfile
import tempfile
import zipfile
from pathlib import Path

from rules.common.errors import UserError
from rules.debian import chroot
from rules.debian.cross_root import triplet
from rules.fetch import download
from rules.fetch.pypi_files import Chosen
from rules.graph.action import Action, Made
from rules.python import sdist_build, wheel_install

RECIPE = 3  # bump when the way the wheel is built changes (2: pip's file modes,
#             3: pendulum's full metadata and C sources, as poetry builds it)
PLATFORMS = {"arm64": "linux-aarch64"}  # Debian architecture -> _PYTHON_HOST_PLATFORM
MACHINES = {"arm64": 183}  # Debian architecture -> ELF e_machine (EM_AARCH64)
GLIBC = (2, 31)  # bullseye's: the newest symbol version a wheel may need


def action(sdist: Chosen, tools: list[Chosen], cross_root: Action, arch: str = "arm64"
           ) -> Action:
    """The action that builds ``sdist`` into a wheel for ``arch`` in the cross root of
    ``cross_root`` (a rules.debian.cross_root action), with the lock's build ``tools``."""
    tri = _triplet(arch)
    if sdist.kind != "sdist":
        raise UserError(f"{sdist.filename} is not an sdist: only sdists are cross-compiled")
    trees = [wheel_install.tool_tree_action(t) for t in tools]

    def run(ctx) -> Made:
        rootfs = ctx.dep(cross_root).tree(ctx.cache, "root")
        binds = {tool.name: ctx.dep(tree).tree(ctx.cache, "tree")
                 for tool, tree in zip(tools, trees)}
        path = ":".join(f"/mnt/{name}/site" for name in sorted(binds))
        src = download.cas_path(ctx.cache, sdist.sha256)
        if not src.exists():
            raise UserError(f"{sdist.filename} is not in the cache: run `invoke fetch`")
        with tempfile.TemporaryDirectory(prefix="runtime-cross-") as tmp:
            folder = unpack(src, sdist.filename, Path(tmp) / "src")
            (Path(tmp) / "out").mkdir()
            binds.update({"src": Path(tmp) / "src", "out": Path(tmp) / "out"})
            chroot.run(rootfs, ["python3.9", "-m", "pip", "wheel", "--no-deps",
                                "--no-build-isolation", "--no-index", "-q", "-w", "/mnt/out",
                                f"/mnt/src/{folder.name}"],
                       binds=binds, env={"PYTHONPATH": path, **environment(rootfs, tri, arch)},
                       what=f"cross-compiling {sdist.filename} for {arch}")
            wheel = sdist_build.one_wheel(Path(tmp) / "out",
                                          f"building {sdist.filename} for {arch}")
            check_tag(wheel.name, arch)
            problems = check_elf(wheel, arch)
            if problems:
                raise UserError(f"cross-compiling {sdist.filename} for {arch} gave "
                                f"{wheel.name}, which does not fit: {'; '.join(problems)}")
            return sdist_build.stored(ctx.cache, wheel)

    return Action("cross wheel", f"{sdist.name} ({sdist.filename}) for {arch}",
                  {"sdist": sdist.sha256, "recipe": str(RECIPE), "arch": arch,
                   "epoch": str(sdist_build.WHEEL_EPOCH)},
                  run, deps=(cross_root, *trees))


def _triplet(arch: str) -> str:
    if arch not in PLATFORMS:
        raise UserError(f"no cross build for {arch!r} (known: {', '.join(PLATFORMS)})")
    return triplet(arch)


def environment(rootfs: Path, tri: str, arch: str) -> dict[str, str]:
    """The build's variables: the target python's sysconfig data, compiler and platform."""
    name = f"_sysconfigdata__{tri}"
    data = Path(rootfs) / "usr/lib/python3.9" / f"{name}.py"
    tree = ast.parse(data.read_text(encoding="utf-8"))
    values = next(ast.literal_eval(node.value) for node in tree.body
                  if isinstance(node, ast.Assign) and node.targets[0].id == "build_time_vars")
    cc, ldshared = values["CC"], values["LDSHARED"]
    if not (cc.split()[0] == ldshared.split()[0] == f"{tri}-gcc"):
        raise UserError(f"{name}: CC {cc!r} and LDSHARED are not the cross gcc {tri}-gcc")
    return {"_PYTHON_SYSCONFIGDATA_NAME": name, "_PYTHON_HOST_PLATFORM": PLATFORMS[arch],
            "CC": cc, "LDSHARED": " ".join(ldshared.split()),
            "CFLAGS": f"-I/usr/{tri}/include/python3.9",
            "SOURCE_DATE_EPOCH": str(sdist_build.WHEEL_EPOCH)}


def check_tag(filename: str, arch: str) -> None:
    """A wheel for ``arch``: linux_<machine>, or pure."""
    machine = PLATFORMS[arch].split("-", 1)[1]
    platform = filename.removesuffix(".whl").rsplit("-", 1)[1]
    if platform not in ("any", f"linux_{machine}"):
        raise UserError(f"cross build gave {filename}: not a linux_{machine} or pure wheel")


def check_elf(wheel: Path, arch: str) -> list[str]:
    """What is wrong with the ELF files of ``wheel``: not ``arch``'s machine, or needing a
    GLIBC symbol version newer than GLIBC (the version names an ELF file needs are strings of
    its .dynstr, so a byte search finds them all)."""
    problems = []
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            with z.open(info) as f:
                if f.read(4) != b"\x7fELF":
                    continue
            data = z.read(info)
            machine = int.from_bytes(data[18:20], "little" if data[5] == 1 else "big")
            if machine != MACHINES[arch]:
                problems.append(f"{info.filename} is for ELF machine {machine}, not {arch}'s")
            for found in set(re.findall(rb"GLIBC_(\d+)\.(\d+)", data)):
                if tuple(int(x) for x in found) > GLIBC:
                    problems.append(f"{info.filename} needs GLIBC_{found[0].decode()}."
                                    f"{found[1].decode()} (> {GLIBC[0]}.{GLIBC[1]})")
    return problems


def unpack(sdist: Path, filename: str, into: Path) -> Path:
    """Unpack the sdist below ``into``; return its one top folder (shimmed if pendulum)."""
    into.mkdir()
    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(sdist) as z:
                z.extractall(into)
        else:
            with tarfile.open(sdist) as t:
                t.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile) as e:
        raise UserError(f"{filename}: cannot be unpacked as an sdist ({e})") from None
    for path in [into, *into.rglob("*")]:  # pip's modes: the sdist's own would go in the wheel
        if not path.is_symlink():
            executable = path.is_dir() or path.stat().st_mode & 0o111
            path.chmod(0o755 if executable else 0o644)
    folders = [p for p in into.iterdir() if p.is_dir()]
    if len(folders) != 1:
        raise UserError(f"{filename}: expected one top folder, found {len(folders)}")
    folder = folders[0]
    if not (folder / "setup.py").exists() and (folder / "build.py").exists():
        shim_poetry(folder, filename)
    return folder


PENDULUM_EXTENSIONS = {"pendulum._extensions._helpers": "pendulum/_extensions/_helpers.c",
                       "pendulum.parsing._iso8601": "pendulum/parsing/_iso8601.c"}
PENDULUM_SETUP = '''\
# Written by rules/python/cross_build.py: pendulum's build backend (poetry-core) is not locked.
from setuptools import Extension, find_packages, setup

setup(
    packages=find_packages(include=["pendulum", "pendulum.*"]),
    package_data={{"": ["py.typed", "*.pyi", "*.c"]}},
    ext_modules=[Extension(name, [source]) for name, source in {extensions!r}],
    **{metadata!r},
)
'''


def shim_poetry(folder: Path, filename: str) -> None:
    """pendulum's poetry build as setuptools (see the module docstring), or a UserError."""
    build = (folder / "build.py").read_text(encoding="utf-8")
    declared = dict(re.findall(r'Extension\(\s*"([\w.]+)",\s*\["([\w/.]+)"\]', build))
    if not filename.startswith("pendulum-") or declared != PENDULUM_EXTENSIONS:
        raise UserError(f"{filename} has no setup.py and its build backend is not locked: "
                        "only pendulum 2's poetry build (two extensions) is built by a shim")
    (folder / "setup.py").write_text(PENDULUM_SETUP.format(
        extensions=sorted(declared.items()), metadata=metadata(folder / "PKG-INFO")),
        encoding="utf-8")
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools", "wheel"]\n'
        'build-backend = "setuptools.build_meta:__legacy__"\n')


def metadata(pkg_info: Path) -> dict:
    """setup()'s metadata arguments from an sdist's PKG-INFO (what poetry wrote there)."""
    info = email.parser.Parser().parsestr(pkg_info.read_text(encoding="utf-8"))
    one = {"name": "Name", "version": "Version", "description": "Summary",
           "url": "Home-page", "license": "License", "author": "Author",
           "author_email": "Author-email", "python_requires": "Requires-Python",
           "long_description_content_type": "Description-Content-Type"}
    out = {key: info[field] for key, field in one.items() if info[field] is not None}
    if info["Keywords"]:
        out["keywords"] = info["Keywords"].split(",")
    out["classifiers"] = info.get_all("Classifier") or []
    out["install_requires"] = info.get_all("Requires-Dist") or []
    out["project_urls"] = dict(u.split(", ", 1) for u in info.get_all("Project-URL") or [])
    body = info.get_payload()
    if body and body.strip():
        out["long_description"] = body
    return out
