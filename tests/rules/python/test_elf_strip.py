"""rules.python.elf_strip on a real shared library built here with gcc -g, checked with readelf
and by loading it; and the shared objects of unpacked wheels stripped, RECORD included."""

import base64
import ctypes
import csv
import hashlib
import struct
import subprocess
import zipfile

import pytest

from rules.python import elf_strip, wheel_install

# gcc and readelf: installed by `invoke test` (tasks.system_deps) and .ci/run, never skipped
SOURCE = """
static int table[64];
int runtime_add(int a, int b) { table[a & 63] = b; return a + b + table[a & 63] - b; }
const char *runtime_name(void) { return "runtime"; }
"""


@pytest.fixture
def library(tmp_path):
    (tmp_path / "lib.c").write_text(SOURCE)
    out = tmp_path / "libruntime.so"
    subprocess.run(["gcc", "-g", "-O1", "-shared", "-fPIC", "-o", out, tmp_path / "lib.c"],
                   check=True)
    return out


def readelf(*args):
    proc = subprocess.run(["readelf", "-W", *map(str, args)], capture_output=True, text=True,
                          check=True)
    assert proc.stderr == ""
    return proc.stdout


def section_names(path):
    return {line.split("]", 1)[1].split()[0] for line in readelf("-S", path).splitlines()
            if line.strip().startswith("[") and "]" in line and "Nr]" not in line}


def test_drops_symbols_and_debug_keeps_what_the_loader_needs(library, tmp_path):
    before = library.read_bytes()
    assert {".symtab", ".strtab", ".debug_info"} <= section_names(library)
    out = elf_strip.strip_bytes(before)
    stripped = tmp_path / "stripped.so"
    stripped.write_bytes(out)
    names = section_names(stripped)
    assert not {".symtab", ".strtab"} & names and not any(n.startswith(".debug") for n in names)
    assert {".dynsym", ".dynstr", ".text", ".shstrtab"} <= names
    assert len(out) < len(before)
    for what in ("--dyn-syms", "-d", "-l", "-r"):
        assert readelf(what, stripped).replace(str(stripped), "F") == \
            readelf(what, library).replace(str(library), "F")
    lib = ctypes.CDLL(str(stripped))
    assert lib.runtime_add(40, 2) == 42
    lib.runtime_name.restype = ctypes.c_char_p
    assert lib.runtime_name() == b"runtime"


def test_same_bytes_every_time_and_nothing_left_to_strip(library):
    once = elf_strip.strip_bytes(library.read_bytes())
    assert once == elf_strip.strip_bytes(library.read_bytes())
    assert elf_strip.strip_bytes(once) is None
    assert elf_strip.strip_bytes(b"#!/bin/sh\necho not elf\n") is None


def test_unusual_layout_is_left_alone(library):
    """Debug data before the mapped part (as some patchelf edits leave): not touched."""
    data = bytearray(library.read_bytes())
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    for i in range(1, shnum):
        at = shoff + i * 64
        flags = struct.unpack_from("<Q", data, at + 8)[0]
        if not flags & 0x2 and i != shstrndx:  # debug and symbols "before" the mapped part
            struct.pack_into("<Q", data, at + 24, 0x40)
    assert elf_strip.strip_bytes(bytes(data)) is None
    assert elf_strip.strip_bytes(library.read_bytes()) is not None  # (the control)


def test_unpacked_wheels_are_stripped_and_recorded(library, tmp_path):
    """Image trees get stripped shared objects, and RECORD has the stripped bytes' hash."""
    wheel = tmp_path / "pkg-1.0-cp39-cp39-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("pkg/__init__.py", "")
        z.write(library, "pkg/_native.so")
        z.writestr("pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pkg\n"
                                                 "Version: 1.0\n")
        z.writestr("pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n")
        z.writestr("pkg-1.0.dist-info/RECORD", "")
    tree = wheel_install._unpack(wheel, wheel.name, tmp_path, "key", "pkg", strip=True)
    data = (tree / "site" / "pkg" / "_native.so").read_bytes()
    assert 0 < len(data) < library.stat().st_size
    assert data == elf_strip.strip_bytes(library.read_bytes())
    rows = list(csv.reader((tree / "site" / "pkg-1.0.dist-info" / "RECORD").read_text()
                           .splitlines()))
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert ["pkg/_native.so", f"sha256={digest}", str(len(data))] in rows
    ctypes.CDLL(str(tree / "site" / "pkg" / "_native.so"))
    unstripped = wheel_install._unpack(wheel, wheel.name, tmp_path, "key", "pkg")
    assert (unstripped / "site" / "pkg" / "_native.so").read_bytes() == library.read_bytes()
