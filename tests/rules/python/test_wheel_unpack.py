"""rules.python.wheel_unpack: the wheel format's install steps on small wheels made here, bad wheels
refused with the wheel's name, and (slow) every wheel of line 4.2 unpacked to the same files as
pypa's installer gives, RECORD paths outside site-packages aside."""

import base64
import csv
import hashlib
import io
import os
import posixpath
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

from rules.python import wheel_install, wheel_unpack
from rules.common.errors import UserError
from rules.common.cache import default_cache

LAYOUT = {"site": "usr/local/lib/python3.9/dist-packages", "bin": "usr/local/bin",
          "data": "usr/local", "include": "usr/local/include/python3.9"}
INFO = "demo-1.0.dist-info"
WHEEL = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def make(folder: Path, files: dict[str, bytes | str], executable=(), stored=False) -> Path:
    out = folder / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = z.compression
            info.external_attr = (0o755 if path in executable else 0o644) << 16
            z.writestr(info, data)
    return out


def unpack(wheel: Path, tree: Path, strip=None) -> Path:
    wheel_unpack.unpack(wheel, wheel.name, tree, "demo", interpreter=sys.executable,
                        layout=LAYOUT, strip=strip)
    return tree


def record_rows(tree: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO((tree / "site" / INFO / "RECORD").read_text())))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


SAMPLE = {
    "demo/__init__.py": "def main():\n    print('demo main')\n    return 3\n",
    "demo/tool.sh": "#!/bin/sh\necho tool\n",
    "demo/__pycache__/__init__.cpython-39.pyc": b"stale",
    "demo-1.0.data/scripts/run-demo": "#!python -u\nprint('script ran')\n",
    "demo-1.0.data/data/share/demo/notes.txt": "notes\n",
    "demo-1.0.data/headers/demo.h": "int demo;\n",
    "demo-1.0.data/purelib/extra_mod.py": "X = 1\n",
    f"{INFO}/METADATA": "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
    f"{INFO}/WHEEL": WHEEL,
    f"{INFO}/entry_points.txt": "[console_scripts]\ndemo = demo:main\n"
                                "[gui_scripts]\ndemo-gui = demo:main [gui]\n"
                                "[other.group]\nignored = demo:main\n",
    f"{INFO}/RECORD": "demo/__init__.py,,\n",
}


@pytest.mark.parametrize("stored", [False, True], ids=["deflated", "stored"])
def test_schemes_scripts_and_record(tmp_path, stored):
    tree = unpack(make(tmp_path, SAMPLE, executable={"demo/tool.sh"}, stored=stored),
                  tmp_path / "tree")
    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())
    assert files == ["bin/demo", "bin/demo-gui", "bin/run-demo", "data/share/demo/notes.txt",
                     "include/demo/demo.h", f"site/{INFO}/INSTALLER", f"site/{INFO}/METADATA",
                     f"site/{INFO}/RECORD", f"site/{INFO}/WHEEL",
                     f"site/{INFO}/entry_points.txt", "site/demo/__init__.py",
                     "site/demo/tool.sh", "site/extra_mod.py"]
    mode = lambda rel: (tree / rel).stat().st_mode & 0o777
    assert [mode(f) for f in ("bin/demo", "bin/run-demo", "site/demo/tool.sh")] == [0o755] * 3
    assert mode("site/demo/__init__.py") == mode(f"site/{INFO}/RECORD") == 0o644
    assert (tree / "bin/run-demo").read_text() == f"#!{sys.executable}\nprint('script ran')\n"
    assert (tree / f"site/{INFO}/INSTALLER").read_bytes() == b"runtime\n"
    # The launchers run the entry point with the interpreter given, from site-packages.
    for script in ("demo", "demo-gui"):
        proc = subprocess.run([tree / "bin" / script], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(tree / "site")})
        assert (proc.returncode, proc.stdout) == (3, "demo main\n")
    rows = record_rows(tree)
    assert rows == sorted(rows)
    by_path = {r[0]: r for r in rows}
    assert set(by_path) == {
        "../../../bin/demo", "../../../bin/demo-gui", "../../../bin/run-demo",
        "../../../share/demo/notes.txt", "../../../include/python3.9/demo/demo.h",
        f"{INFO}/INSTALLER", f"{INFO}/METADATA", f"{INFO}/RECORD", f"{INFO}/WHEEL",
        f"{INFO}/entry_points.txt", "demo/__init__.py", "demo/tool.sh", "extra_mod.py"}
    assert by_path[f"{INFO}/RECORD"] == [f"{INFO}/RECORD", "", ""]
    for path, digest, size in rows:
        if path == f"{INFO}/RECORD":
            continue
        data = tree_file(tree, posixpath.normpath(f"{LAYOUT['site']}/{path}")).read_bytes()
        assert digest == f"sha256={b64(data)}" and size == str(len(data))


def tree_file(tree: Path, image_path: str) -> Path:
    """The file of the tree that goes to ``image_path`` (the most specific folder wins)."""
    for folder in ("site", "include", "bin", "data"):
        if image_path.startswith(LAYOUT[folder] + "/"):
            return tree / folder / image_path[len(LAYOUT[folder]) + 1:]
    raise AssertionError(image_path)


def test_files_are_written_with_fixed_modes_whatever_the_umask(tmp_path):
    wheel = make(tmp_path, SAMPLE, executable={"demo/tool.sh"})
    old = os.umask(0o077)
    try:
        tree = unpack(wheel, tmp_path / "tree")
    finally:
        os.umask(old)
    assert (tree / "site/demo/__init__.py").stat().st_mode & 0o777 == 0o644
    assert (tree / "site/demo/tool.sh").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("path", ["../evil.py", "/etc/evil", "demo/../../evil.py",
                                  "demo-1.0.data/unknown/x.py", "demo-1.0.data/scripts"])
def test_paths_outside_the_tree_are_refused(tmp_path, path):
    wheel = make(tmp_path, {**SAMPLE, path: "x = 1\n"})
    with pytest.raises(UserError, match=f"cannot install {wheel.name}: .*"):
        unpack(wheel, tmp_path / "tree")
    assert not (tmp_path / "evil.py").exists() and not (tmp_path.parent / "evil.py").exists()


def test_a_corrupted_member_is_refused(tmp_path):
    wheel = make(tmp_path, {**SAMPLE, "demo/big.py": "x = 1\n" * 1000}, stored=True)
    data = bytearray(wheel.read_bytes())
    at = data.index(b"x = 1\n" * 10) + 3
    data[at] ^= 0x20
    wheel.write_bytes(bytes(data))
    with pytest.raises(UserError, match="demo/big.py: size or CRC does not match"):
        unpack(wheel, tmp_path / "tree")


@pytest.mark.parametrize("change, message", [
    ({f"{INFO}/WHEEL": WHEEL.replace("1.0", "2.0", 1)}, "Wheel-Version 2.0"),
    ({f"{INFO}/entry_points.txt": "[console_scripts]\nbad = not a target\n"}, "not module:attr"),
    ({"other-1.0.dist-info/METADATA": "x"}, "2 .dist-info folders"),
])
def test_bad_metadata_is_refused(tmp_path, change, message):
    with pytest.raises(UserError, match=message):
        unpack(make(tmp_path, {**SAMPLE, **change}), tmp_path / "tree")


def test_strip_replaces_elf_files_before_record(tmp_path):
    elf = b"\x7fELF" + b"\x00" * 60
    tree = unpack(make(tmp_path, {**SAMPLE, "demo/_native.so": elf}), tmp_path / "tree",
                  strip=lambda data: data[:10])
    assert (tree / "site/demo/_native.so").read_bytes() == elf[:10]
    row = next(r for r in record_rows(tree) if r[0] == "demo/_native.so")
    assert row[1:] == [f"sha256={b64(elf[:10])}", "10"]
    assert (tree / "site/demo/__init__.py").read_text() == SAMPLE["demo/__init__.py"]


@pytest.mark.slow
def test_every_wheel_of_a_line_unpacks_as_installer_does(tmp_path):
    """The reference is pypa's installer (a dev dependency, used only here): same files, same
    bytes, same executable bits, same RECORD rows but for the paths outside site-packages,
    which installer writes relative to the tree (../bin/x) instead of the image (../../../bin/x).
    """
    installer = pytest.importorskip("installer")
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    from rules.image import build as image
    from rules.load import project
    from tests.fixtures import REPO, run_invoke

    proj = project.load(REPO)
    cache = default_cache()
    fetched = run_invoke(REPO, "fetch", "--runtime", "4.2")  # (a no-op once fetched)
    assert fetched.returncode == 0, fetched.stderr
    wheels = image.wheels_for(proj, proj.lines["4.2"].airflow, image.Inputs(proj, cache, 0))
    compared = 0
    for name, (blob, filename, _) in sorted(wheels.items()):
        ours = wheel_install._unpack(blob, filename, tmp_path, "ours", name)
        theirs = tmp_path / "theirs"
        scheme = {"purelib": theirs / "site", "platlib": theirs / "site",
                  "scripts": theirs / "bin", "data": theirs / "data",
                  "headers": theirs / "include" / name}
        destination = SchemeDictionaryDestination({k: str(v) for k, v in scheme.items()},
                                                  interpreter=wheel_install.PYTHON,
                                                  script_kind="posix")
        named = tmp_path / filename
        named.symlink_to(blob)
        with WheelFile.open(named) as source, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (stray __pycache__ files, skipped by both)
            installer.install(source, destination, {"INSTALLER": b"runtime\n"})
        assert _snapshot(ours) == _snapshot(theirs), filename
        compared += 1
        for tree in (ours, theirs, named):
            shutil.rmtree(tree) if tree.is_dir() else tree.unlink()
    assert compared > 200


def _snapshot(tree: Path) -> dict:
    out = {}
    for path in sorted(tree.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(tree))
        data = path.read_bytes()
        if rel.endswith(".dist-info/RECORD"):
            rows = {tuple(r) for r in csv.reader(io.StringIO(data.decode()))}
            # installer's ../bin/x is ../../../bin/x in the image (the same file)
            data = {(_image_relative(r[0]), *r[1:]) for r in rows}
        out[rel] = (data, bool(path.stat().st_mode & 0o100))
    return out


def _image_relative(path: str) -> str:
    if path.startswith("../") and not path.startswith("../../"):
        folder, _, rest = path[3:].partition("/")
        return posixpath.relpath(
            f"{LAYOUT[folder]}/{rest}", LAYOUT["site"])
    return path
