"""Layer tars are byte-identical for the same tree, whatever umask, clock or location."""

import gzip
import io
import os
import tarfile
import time

from rules.oci import layer

EPOCH = 1646179200


def make_tree(root, umask):
    old = os.umask(umask)
    try:
        (root / "pkg" / "sub").mkdir(parents=True)
        (root / "pkg" / "__init__.py").write_text("x = 1\n")
        (root / "pkg" / "sub" / "tool").write_text("#!/bin/sh\necho hi\n")
        os.chmod(root / "pkg" / "sub" / "tool", 0o777 & ~umask)
        (root / "pkg" / "b.txt").write_text("b\n")
        os.link(root / "pkg" / "b.txt", root / "pkg" / "a-hardlink.txt")
        os.symlink("b.txt", root / "pkg" / "link")
    finally:
        os.umask(old)


def test_same_tree_same_digest_across_umask_time_and_path(tmp_path):
    a, b = tmp_path / "one" / "tree", tmp_path / "two" / "deeper" / "tree"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    make_tree(a, 0o022)
    time.sleep(1.1)
    make_tree(b, 0o077)
    la = layer.write_tree(a, tmp_path / "c1", EPOCH, normalize_modes=True, prefix="usr/lib")
    lb = layer.write_tree(b, tmp_path / "c2", EPOCH, normalize_modes=True, prefix="usr/lib")
    assert la == lb
    assert la.blob(tmp_path / "c1").read_bytes() == lb.blob(tmp_path / "c2").read_bytes()


def test_tar_contents_are_normalised(tmp_path):
    tree = tmp_path / "t"
    tree.mkdir()
    make_tree(tree, 0o077)
    result = layer.write_tree(tree, tmp_path / "c", EPOCH, normalize_modes=True, prefix="opt",
                              owner=lambda name: (50000, 0) if name.endswith("tool") else (0, 0))
    raw = gzip.decompress(result.blob(tmp_path / "c").read_bytes())
    assert result.diff_id == "sha256:" + __import__("hashlib").sha256(raw).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == ["opt", "opt/pkg", "opt/pkg/__init__.py", "opt/pkg/a-hardlink.txt",
                     "opt/pkg/b.txt", "opt/pkg/link", "opt/pkg/sub", "opt/pkg/sub/tool"]
    by = {m.name: m for m in members}
    assert all(m.mtime <= EPOCH and m.uname == "" and m.gname == "" for m in members)
    assert by["opt/pkg/__init__.py"].mode == 0o644 and by["opt/pkg/sub/tool"].mode == 0o755
    assert (by["opt/pkg/sub/tool"].uid, by["opt/pkg/__init__.py"].uid) == (50000, 0)
    assert by["opt/pkg/b.txt"].islnk() and by["opt/pkg/b.txt"].linkname == \
        "opt/pkg/a-hardlink.txt"
    assert by["opt/pkg/link"].issym() and by["opt/pkg/link"].linkname == "b.txt"
    assert all("atime" not in m.pax_headers and "ctime" not in m.pax_headers for m in members)


def test_gzip_header_has_no_time_or_name(tmp_path):
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "f").write_text("x")
    blob = layer.write_tree(tree, tmp_path / "c", EPOCH).blob(tmp_path / "c").read_bytes()
    assert blob[:3] == b"\x1f\x8b\x08" and blob[3] == 0  # no FNAME flag
    assert blob[4:8] == b"\0\0\0\0"  # mtime 0


def test_special_top_level_folders_keep_only_themselves(tmp_path):
    tree = tmp_path / "t"
    (tree / "tmp" / "junk").mkdir(parents=True)
    (tree / "etc").mkdir()
    (tree / "etc" / "hostname").write_text("x")
    assert layer.walk(tree) == ["etc", "etc/hostname", "tmp"]


def test_tar_bytes_are_tarfiles_own(tmp_path):
    """The layer writer emits exactly what tarfile.TarFile writes for the same members: long
    and non-ASCII names (PAX headers), block-sized and empty files, links, a big file, a setuid
    file and other owners. (rules.oci.layer writes the common headers itself.)"""
    tree = tmp_path / "t"
    make_tree(tree, 0o022)
    deep = tree / ("d" * 90) / ("e" * 90)
    deep.mkdir(parents=True)
    (deep / "ünïcode-名前.py").write_bytes(b"u" * 512)
    (deep / "empty").write_bytes(b"")
    (tree / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    os.symlink("x" * 150, tree / "long-link")
    (tree / "setuid").write_bytes(b"#!/bin/sh\n")
    (tree / "setuid").chmod(0o4755)
    owner = lambda name: (50000, 0) if name.endswith(("empty", "setuid")) else (0, 0)
    result = layer.write_tree(tree, tmp_path / "c", EPOCH, prefix="opt", owner=owner)
    ours = gzip.decompress(result.blob(tmp_path / "c").read_bytes())

    entries = layer.tree_entries(tree, "opt")
    names = dict(entries, opt=None)
    expected = io.BytesIO()
    with tarfile.TarFile(fileobj=expected, mode="w", format=tarfile.PAX_FORMAT,
                         encoding="utf-8") as tar:
        seen = {}
        for name in sorted(names, key=lambda n: n.encode()):
            info, path = layer._entry(name, names[name], EPOCH, False, owner, seen)
            with open(path, "rb") if info.isreg() else io.BytesIO() as data:
                tar.addfile(info, data if info.isreg() else None)
    assert ours == expected.getvalue()
    assert result.entries == len(names)


def test_own_headers_are_tarfiles_headers():
    """rules.oci.layer writes common headers itself: byte for byte what TarInfo.tobuf gives, at the
    edges of ustar's fields too (there it hands over to tarfile)."""
    infos = []
    for name in ("a", "x" * 99, "y" * 100, "z" * 101, "dir", "ünï", "sub/dir/"):
        for kind in (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
                     tarfile.CHRTYPE):
            info = tarfile.TarInfo(name)
            info.type, info.uname, info.gname = kind, "", ""
            info.linkname = "t" * len(name) if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            infos.append(info)
    for mode, uid, size, mtime in ((0o107755, 50000, 0, 0), (0o4755, 0o7777777, 1, EPOCH),
                                   (0o644, 0o10000000, 8 ** 11 - 1, 8 ** 11),
                                   (0o600, 5, 2 ** 40, 1.5)):
        info = tarfile.TarInfo("file")
        info.mode, info.uid, info.gid, info.size, info.mtime = mode, uid, uid, size, mtime
        info.uname = info.gname = ""
        infos.append(info)
    named = tarfile.TarInfo("owned")
    named.uname = "astro"
    infos.append(named)
    for info in infos:
        assert layer._header(info) == info.tobuf(tarfile.PAX_FORMAT, "utf-8",
                                                 "surrogateescape"), info
