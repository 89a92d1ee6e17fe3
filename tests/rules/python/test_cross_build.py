"""Cross-compiled arm64 wheels (rules/python/cross_build.py, rules/debian/cross_root.py)."""

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from rules.common.cache import default_cache
from rules.common.errors import UserError
from rules.debian import cross_root
from rules.fetch import download, pypi_files
from rules.graph import scheduler
from rules.graph.action import file_digest
from rules.load import project
from rules.lock import cross_lock, debian_lock, requirements_file
from rules.python import cross_build, sdist_build
from tests.fixtures import REPO, fetched

AIRFLOW = "2.2.4"  # the lock with the most C sdists (docs/arm64.md)


def _elf(machine: int, text: bytes = b"") -> bytes:
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    header[18:20] = machine.to_bytes(2, "little")
    return bytes(header) + text


def test_check_elf_names_foreign_machines_and_too_new_glibc(tmp_path):
    wheel = tmp_path / "x-1-cp39-cp39-linux_aarch64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("x/ok.so", _elf(183, b"\0GLIBC_2.17\0GLIBC_2.31\0"))
        z.writestr("x/amd64.so", _elf(62))
        z.writestr("x/new.so", _elf(183, b"\0GLIBC_2.34\0"))
        z.writestr("x/__init__.py", "")
    problems = cross_build.check_elf(wheel, "arm64")
    assert len(problems) == 2
    assert "x/amd64.so is for ELF machine 62" in problems[0] + problems[1]
    assert "x/new.so needs GLIBC_2.34" in problems[0] + problems[1]


def test_check_tag_takes_the_target_or_pure_wheels_only():
    cross_build.check_tag("psutil-5.9.0-cp39-cp39-linux_aarch64.whl", "arm64")
    cross_build.check_tag("pycryptodomex-3.14.1-cp35-abi3-linux_aarch64.whl", "arm64")
    cross_build.check_tag("snowflake_connector_python-2.7.1-py3-none-any.whl", "arm64")
    with pytest.raises(UserError, match="linux_x86_64"):
        cross_build.check_tag("psutil-5.9.0-cp39-cp39-linux_x86_64.whl", "arm64")


def test_only_sdists_are_cross_compiled():
    wheel = pypi_files.Chosen("wrapt", "1.14.1", "wrapt-1.14.1-cp39-cp39-manylinux_2_17_aarch64"
                              ".whl", "0" * 64, "https://x", "wheel")
    with pytest.raises(UserError, match="not an sdist"):
        cross_build.action(wheel, [], None)


def test_pendulum_poetry_build_becomes_setuptools(tmp_path):
    folder = tmp_path / "pendulum-2.1.2"
    folder.mkdir()
    (folder / "build.py").write_text(
        'extensions = [\n    Extension("pendulum._extensions._helpers", '
        '["pendulum/_extensions/_helpers.c"]),\n    Extension("pendulum.parsing._iso8601", '
        '["pendulum/parsing/_iso8601.c"]),\n]\n')
    (folder / "PKG-INFO").write_text(
        "Name: pendulum\nVersion: 2.1.2\nRequires-Python: >=2.7\n"
        "Requires-Dist: python-dateutil (>=2.6,<3.0)\nRequires-Dist: pytzdata (>=2020.1)\n")
    cross_build.shim_poetry(folder, "pendulum-2.1.2.tar.gz")
    setup = (folder / "setup.py").read_text()
    compile(setup, "setup.py", "exec")
    assert "'pendulum.parsing._iso8601', 'pendulum/parsing/_iso8601.c'" in setup
    assert "'pytzdata (>=2020.1)'" in setup
    assert "__legacy__" in (folder / "pyproject.toml").read_text()
    (folder / "build.py").write_text('Extension("other._x", ["other/_x.c"])\n')
    with pytest.raises(UserError, match="build backend is not locked"):
        cross_build.shim_poetry(folder, "pendulum-2.1.2.tar.gz")


# The build itself --------------------------------------------------------------------------

def _sdist(name: str):
    """The lock's sdist of ``name`` (the file an aarch64 build chooses), in the shared CAS."""
    text = (REPO / f"constraints/constraints-{AIRFLOW}.txt").read_text()
    entry = {e.name: e for e in requirements_file.parse(text)[1]}[name]
    files = pypi_files.index_files("https://pypi.org/simple", name, entry.version)
    chosen = pypi_files.choose(name, entry.version, files, entry.hashes,
                               pypi_files.target_tags("3.9", "aarch64-manylinux_2_31"))
    assert chosen.kind == "sdist", chosen.filename  # (no aarch64 wheel: why it is built)
    download.fetch_verified(chosen.url, chosen.sha256, default_cache(), what=chosen.filename)
    return chosen


def _choices():
    """The lock's files as the amd64 build chooses them (`invoke fetch`'s record)."""
    text = (REPO / f"constraints/constraints-{AIRFLOW}.txt").read_text()
    fetched("arm64", AIRFLOW)  # (the lock's files, the arm64 and cross toolchain .debs)
    return pypi_files.load_choices(default_cache(), text,
                                   f"constraints/constraints-{AIRFLOW}.txt")


def _tools():
    return sdist_build.tools_of(_choices())


def _empty_cache(path: Path, sha256s) -> Path:
    """A new cache holding only these blobs of the shared CAS (hard links, else copies)."""
    for sha in sha256s:
        src, dst = download.cas_path(default_cache(), sha), download.cas_path(path, sha)
        assert src.exists(), f"{sha[:12]} is not fetched, though fetched() ran"
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    return path


def _build(cache: Path, sdist, tools) -> tuple[Path, str]:
    proj = project.load(REPO)
    root = cross_root.action(proj)
    debs = [p["sha256"] for p in debian_lock.load(proj)["packages"]] + [
        p["sha256"] for p in cross_lock.load(proj, "arm64")["packages"]]
    _empty_cache(cache, {*debs, sdist.sha256, *(t.sha256 for t in tools)})
    made = cross_build.action(sdist, tools, root)
    record = scheduler.run([made], cache)[made].record
    return record.blob(cache, "wheel"), record.values["filename"]


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chroot)")
def test_psutil_cross_builds_reproducibly_and_runs_under_qemu(tmp_path):
    """psutil twice (two empty caches), pendulum, a pure sdist; psutil run under qemu."""
    sdist, tools = _sdist("psutil"), _tools()
    first, name = _build(tmp_path / "cache1", sdist, tools)
    second, name2 = _build(tmp_path / "cache2", sdist, tools)
    assert name == name2 and name.endswith("-cp39-cp39-linux_aarch64.whl")
    assert file_digest(first) == file_digest(second)  # bit-reproducible
    assert cross_build.check_elf(first, "arm64") == []
    with zipfile.ZipFile(first) as z:
        shared = [n for n in z.namelist() if n.endswith(".so")]
    assert sorted(shared) == ["psutil/_psutil_linux.cpython-39-aarch64-linux-gnu.so",
                              "psutil/_psutil_posix.cpython-39-aarch64-linux-gnu.so"]

    # pendulum: poetry's build, shimmed; its two extensions are built
    pendulum = _sdist("pendulum")
    _empty_cache(tmp_path / "cache1", [pendulum.sha256])
    made = cross_build.action(pendulum, tools, cross_root.action(project.load(REPO)))
    wheel = scheduler.run([made], tmp_path / "cache1")[made].record.blob(
        tmp_path / "cache1", "wheel")
    assert cross_build.check_elf(wheel, "arm64") == []
    with zipfile.ZipFile(wheel) as z:
        assert sorted(n for n in z.namelist() if n.endswith(".so")) == [
            "pendulum/_extensions/_helpers.cpython-39-aarch64-linux-gnu.so",
            "pendulum/parsing/_iso8601.cpython-39-aarch64-linux-gnu.so"]

    # a pure sdist: the very wheel sdist_build makes for amd64 (here in the same root)
    pure = next(c for c in _choices() if c.kind == "sdist" and c.name == "termcolor")
    _empty_cache(tmp_path / "cache1", [pure.sha256])
    proj = project.load(REPO)
    made = [cross_build.action(pure, tools, cross_root.action(proj)),
            sdist_build.action(pure, tools, cross_root.action(proj))]
    outcomes = scheduler.run(made, tmp_path / "cache1")
    records = [outcomes[a].record for a in made]
    assert records[0].values["filename"].endswith("-py3-none-any.whl")
    assert records[0].blobs == records[1].blobs

    qemu = shutil.which("qemu-aarch64-static")
    assert qemu, "apt-get install qemu-user-static (the test task installs it)"
    from rules.debian import debian_rootfs, extract_root

    root, compiler = tmp_path / "arm64", tmp_path / "compiler"
    root.mkdir()
    compiler.mkdir()
    epoch, sources = proj.debian.source_date_epoch, debian_rootfs.sources_list(proj)
    extract_root.make(debian_lock.packages_for(proj), default_cache(), compiler,
                      extract_root.host_arch(), epoch, sources)
    extract_root.make(debian_lock.packages_for(proj, "arm64"), default_cache(), root, "arm64",
                      epoch, sources, compiler)
    with zipfile.ZipFile(first) as z:  # installed as pip would put it (no .pyc needed)
        z.extractall(root / "usr/local/lib/python3.9/dist-packages")
    out = subprocess.run(
        [qemu, "-L", str(root), str(root / "usr/bin/python3.9"), "-c",
         "import psutil; print(psutil.__file__, psutil.cpu_count() > 0, "
         "psutil.virtual_memory().total > 0)"],
        capture_output=True, text=True, check=True).stdout
    where, *checks = out.split()
    assert where.endswith("/usr/local/lib/python3.9/dist-packages/psutil/__init__.py"), out
    assert checks == ["True", "True"], out
