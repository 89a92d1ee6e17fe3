"""The extraction-based Debian root (rules/debian/extract_root.py)."""

import hashlib
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from rules.common.cache import default_cache
from rules.debian import extract_root
from rules.fetch import download
from rules.load import project
from rules.lock import debian_lock
from tests.fixtures import REPO, fetched


def test_status_fields_in_dpkg_order_values_kept_as_written():
    fields = extract_root.parse_control(
        "Package: dash\nVersion: 1\nArchitecture: amd64\nEssential: yes\nHomepage: h\n"
        "Description: a shell \n more\n .\n end\nDepends: libc6\n")
    fields += [("Conffiles", "\n /etc/x 0123"), ("Status", "install ok installed")]
    assert extract_root._status_stanza(fields) == (
        "Package: dash\nEssential: yes\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 1\nDepends: libc6\nConffiles:\n /etc/x 0123\n"
        "Description: a shell \n more\n .\n end\nHomepage: h\n")


def test_info_names_and_listed_paths():
    assert extract_root.info_name({"Package": "libc6", "Multi-Arch": "same",
                                   "Architecture": "arm64"}, "arm64") == "libc6:arm64"
    assert extract_root.info_name({"Package": "dash", "Multi-Arch": "foreign"}, "arm64") == "dash"
    assert [extract_root._listed(p) for p in ("./", "./usr/", "./usr/bin/x")] == [
        "/.", "/usr", "/usr/bin/x"]


def _deb(tmp_path: Path, name: str, multi_arch: str = "same") -> Path:
    pkg = tmp_path / name
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "etc").mkdir()
    (pkg / "etc" / f"{name}.conf").write_text("setting = 1\n")
    (pkg / "usr/share/doc" / name).mkdir(parents=True)
    (pkg / "usr/share/doc" / name / "copyright").write_text("MIT\n")
    (pkg / "usr/share/doc" / name / "changelog.gz").write_bytes(b"x")
    (pkg / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: 1.0-1\nArchitecture: arm64\nMulti-Arch: {multi_arch}\n"
        "Maintainer: x <x@y>\nDescription: a sample\n")
    (pkg / "DEBIAN/conffiles").write_text(f"/etc/{name}.conf\n")
    (pkg / "DEBIAN/postinst").write_text("#!/bin/sh\nexit 1\n")  # never run
    (pkg / "DEBIAN/postinst").chmod(0o755)
    md5 = subprocess.run(["md5sum", f"etc/{name}.conf", f"usr/share/doc/{name}/copyright",
                          f"usr/share/doc/{name}/changelog.gz"], cwd=pkg, capture_output=True,
                         text=True, check=True).stdout
    (pkg / "DEBIAN/md5sums").write_text(md5)
    deb = tmp_path / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(deb)],
                   check=True, capture_output=True)
    return deb


def test_unpacked_packages_are_installed_for_dpkg_and_slimmed(tmp_path):
    cache, root = tmp_path / "cache", tmp_path / "root"
    root.mkdir()
    packages = []
    for name in ("sample-a", "sample-b"):
        deb = _deb(tmp_path, name)
        sha = subprocess.run(["sha256sum", str(deb)], capture_output=True, text=True,
                             check=True).stdout.split()[0]
        download.cas_path(cache, sha).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(deb, download.cas_path(cache, sha))
        packages.append({"name": name, "sha256": sha, "filename": deb.name})
    unpacked = extract_root.unpack(packages, cache, root)
    extract_root.slim(root)
    extract_root.write_database(root, unpacked, "arm64")
    admin = f"--admindir={root}/var/lib/dpkg"
    listed = subprocess.run(["dpkg-query", admin, "-W", "-f",
                             "${Package} ${db:Status-Abbrev} ${Architecture}\n"],
                            capture_output=True, text=True, check=True).stdout
    assert listed == "sample-a ii  arm64\nsample-b ii  arm64\n"
    assert (root / "usr/share/doc/sample-a/copyright").exists()
    assert not (root / "usr/share/doc/sample-a/changelog.gz").exists()
    info = root / "var/lib/dpkg/info"
    assert (info / "sample-a:arm64.postinst").read_text().endswith("exit 1\n")
    assert "/etc/sample-a.conf" in (info / "sample-a:arm64.list").read_text().splitlines()
    status = (root / "var/lib/dpkg/status").read_text()
    assert "Conffiles:\n /etc/sample-a.conf " in status
    verify = subprocess.run(["dpkg", admin, f"--root={root}", "-V", "sample-a"],
                            capture_output=True, text=True)
    # only what the slimming removed is missing; the conffile's md5 matches
    assert verify.stdout.strip().splitlines() == [
        "missing     /usr/share/doc/sample-a/changelog.gz"]


def _fetched(arch: str) -> list[dict]:
    proj = project.load(REPO)
    packages = debian_lock.packages_for(proj, arch)  # (both locks are committed)
    fetched(arch)
    return packages


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (owners, chroot)")
@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_a_root_of_the_lock_runs_and_lists_every_package(tmp_path, arch):
    from rules.debian import debian_rootfs

    proj = project.load(REPO)
    packages = _fetched(arch)
    root, compiler = tmp_path / "root", None
    root.mkdir()
    if arch != extract_root.host_arch():  # the host's root of the main lock compiles
        compiler = tmp_path / "compiler"
        compiler.mkdir()
        extract_root.make(_fetched(extract_root.host_arch()), default_cache(), compiler,
                          extract_root.host_arch(), proj.debian.source_date_epoch,
                          debian_rootfs.sources_list(proj))
    try:
        extract_root.make(packages, default_cache(), root, arch, proj.debian.source_date_epoch,
                          debian_rootfs.sources_list(proj), compiler)
        debian_rootfs._check_versions(root, packages)
        assert extract_root.check_elf(root, arch) == []
        assert (root / "etc/passwd").read_text().startswith("root:x:0:0:root:/root:/bin/bash\n")
        assert (root / "bin/sh").readlink() == Path("dash")
        assert list(root.glob("usr/lib/python3.9/__pycache__/os.cpython-39.pyc"))
        argv = ["python3.9", "-c", "import ssl, sqlite3; print(1)"]
        if arch == extract_root.host_arch():
            from rules.debian import chroot

            out = chroot.run(root, argv)
        else:
            qemu = shutil.which("qemu-aarch64-static")
            assert qemu, "apt-get install qemu-user-static (the test task installs it)"
            out = subprocess.run([qemu, "-L", str(root), str(root / "usr/bin/python3.9"),
                                  *argv[1:]], capture_output=True, text=True, check=True).stdout
        assert out == "1\n"
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if compiler is not None:
            shutil.rmtree(compiler, ignore_errors=True)


def _entries(root: Path, epoch: int) -> dict[str, tuple]:
    """Every entry of a root, the root itself too: type, mode, owner, size, sha256 of the
    bytes, link target, and mtime clamped to ``epoch`` as the layers clamp it (what a build
    writes has the wall clock's)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for path in [Path(dirpath), *(Path(dirpath) / n for n in filenames + [
                d for d in dirnames if (Path(dirpath) / d).is_symlink()])]:
            st = path.lstat()
            content = link = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                link = os.readlink(path)
            size = None if stat.S_ISDIR(st.st_mode) else st.st_size
            out["/" + path.relative_to(root).as_posix()] = (
                stat.S_IFMT(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid,
                size, content, link, min(int(st.st_mtime), epoch))
    return out


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (owners, chroot)")
def test_the_root_does_not_follow_the_callers_umask_tz_locale_or_folder(tmp_path, monkeypatch):
    """Made under umask 077, another TZ and locale, from another working folder (as the release
    gate's second build is), the root is the one made under umask 022, entry for entry."""
    from rules.debian import debian_rootfs

    proj = project.load(REPO)
    packages, epoch = _fetched(extract_root.host_arch()), proj.debian.source_date_epoch
    made = {}
    for umask, tz, lang in ((0o022, "UTC", "C.UTF-8"),
                            (0o077, "Pacific/Kiritimati", "de_DE.UTF-8")):
        root, cwd = tmp_path / f"root-{umask:o}", tmp_path / f"cwd-{umask:o}"
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        monkeypatch.setenv("TZ", tz)
        monkeypatch.setenv("LC_ALL", lang)
        time.tzset()
        old = os.umask(umask)
        try:
            root.mkdir()
            extract_root.make(packages, default_cache(), root, extract_root.host_arch(), epoch,
                              debian_rootfs.sources_list(proj))
        finally:
            os.umask(old)
            monkeypatch.undo()
            time.tzset()
        made[umask] = _entries(root, epoch)
        shutil.rmtree(root)
    a, b = made[0o022], made[0o077]
    differ = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
    assert differ == [], (f"{len(differ)} of {len(a)} entries differ, e.g.: "
                          + "; ".join(f"{p} {a.get(p)} != {b.get(p)}" for p in differ[:12]))
