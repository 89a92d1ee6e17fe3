"""Debian versions (python-debian), the dependency resolver, and the Debian lock's offline check."""

import shutil
import subprocess

import pytest

from rules.debian import debian_version
from rules.load import project
from rules.lock import debian_lock
from rules.debian.debian_index import parse_stanzas
from rules.common.errors import StaleLockError, UserError
from tests.fixtures import REPO


@pytest.mark.parametrize("older, newer", [
    ("1.0", "1.1"), ("1.0~rc1", "1.0"), ("1.0", "1.0+deb11u1"), ("2.31-13", "2.31-13+deb11u5"),
    ("1.9", "1.10"), ("2.0", "1:0.1"), ("3.9.2-1", "3.9.2-1+deb11u7"), ("1.0-1", "1.0a-1"),
    ("0.19.0-1", "0.19.0-1+b1"), ("1.1.1n-0+deb11u3", "1.1.1w-0+deb11u1"),
    # epochs outrank everything after them; a missing epoch is 0
    ("1:1.0", "2:0.1"), ("0:9.9", "1:0"), ("9.9-9", "1:0.1-1"),
    # `~` sorts before everything, even the end of the version; `~~` before `~`
    ("1.0~~", "1.0~"), ("1.0~", "1.0"), ("1.0~rc1-1", "1.0-1"), ("2.31-13~bpo1", "2.31-13"),
    # letters before symbols other than `~`; numeric runs as numbers, leading zeros ignored
    ("1.0a", "1.0+"), ("1.01", "1.2"), ("1.0-1", "1.0-1.1"),
])
def test_version_order(older, newer):
    assert debian_version.compare(older, newer) < 0
    assert debian_version.compare(newer, older) > 0
    assert debian_version.compare(newer, newer) == 0


def test_equal_versions_written_differently():
    assert debian_version.compare("0:1.0-0", "1.0-0") == 0
    assert debian_version.compare("1.01", "1.1") == 0


def test_relations():
    assert debian_version.parse_relation("libc6 (>= 2.14)") == ("libc6", ">=", "2.14")
    assert debian_version.parse_relation("python3:any") == ("python3", None, None)
    assert debian_version.parse_relation(" libc6  (  <<  2:2.31~  ) ") == ("libc6", "<<", "2:2.31~")
    assert debian_version.parse_relation("foo (>= 1) [amd64 !i386]") == ("foo", ">=", "1")
    assert debian_version.satisfies("2.31-13", ">=", "2.14")
    assert not debian_version.satisfies("2.31-13", "<<", "2.31")
    assert debian_version.satisfies("2.31-13", "<<", "2.31-13+deb11u1")
    assert debian_version.satisfies("1:1.0", ">>", "2.0")  # the epoch wins
    # the deprecated < and > mean <= and >=, as dpkg reads them
    assert debian_version.satisfies("1.0", "<", "1.0")
    assert debian_version.satisfies("1.0", ">", "1.0")


@pytest.mark.parametrize("text", ["libc6 (>= 2.14", "libc6 (=> 2.14)", "a | b", "a, b", ""])
def test_a_relation_python_debian_cannot_read_is_an_error(text):
    # python-debian logs a warning and returns the raw text as the name; we refuse it
    with pytest.raises(ValueError, match="cannot parse dependency"):
        debian_version.parse_relation(text)


def test_deb822_paragraphs_continuations_and_release_checksums():
    from debian import deb822

    text = ("Package: a\nDescription: first\n second\n .\n third\n\n\n"
            "Package: b\nVersion: 1\n")
    assert parse_stanzas(text) == [{"Package": "a", "Description": "first\n second\n .\n third"},
                                   {"Package": "b", "Version": "1"}]
    assert parse_stanzas(text, ["Package"]) == [{"Package": "a"}, {"Package": "b"}]
    release = deb822.Release("Suite: bullseye\nSHA256:\n " + "ab" * 32 + " 12 main/Packages.xz\n")
    assert release["SHA256"] == [{"sha256": "ab" * 32, "size": "12", "name": "main/Packages.xz"}]


PACKAGES = """\
Package: base
Version: 1.0
Architecture: amd64
Essential: yes
Priority: required
Depends: libc (>= 2.0)
Filename: pool/b/base.deb
SHA256: aa
Size: 10

Package: libc
Version: 2.1
Architecture: amd64
Filename: pool/l/libc.deb
SHA256: bb
Size: 20

Package: app
Version: 3.0
Architecture: all
Depends: mta | exim, missing-alt | libc, awk
Filename: pool/a/app.deb
SHA256: cc
Size: 30

Package: mawk
Version: 1.3
Architecture: amd64
Provides: awk
Filename: pool/m/mawk.deb
SHA256: dd
Size: 40

Package: exim
Version: 4.9
Architecture: amd64
Provides: mta
Filename: pool/e/exim.deb
SHA256: ee
Size: 50

Package: broken
Version: 1
Architecture: amd64
Depends: libc (>= 9)
Filename: pool/b/broken.deb
SHA256: ff
Size: 1
"""


def universe(*extra):
    u = debian_lock.Universe()
    for stanza in parse_stanzas(PACKAGES):
        u.add(stanza, "http://mirror")
    for stanza in extra:
        u.add(stanza, "http://security")
    u.index_provides()
    return u


def test_resolver_follows_alternatives_and_virtual_packages():
    closure = debian_lock.resolve(universe(), ["base", "app"])
    assert sorted(closure) == ["app", "base", "exim", "libc", "mawk"]
    assert closure["app"] == ["exim", "libc", "mawk"]


def test_newest_version_wins_across_archives():
    u = universe({"Package": "libc", "Version": "2.1+sec1", "Architecture": "amd64",
                  "Filename": "pool/l/libc2.deb", "SHA256": "11", "Size": "21"})
    assert u.best["libc"]["Version"] == "2.1+sec1"
    assert u.best["libc"]["_mirror"] == "http://security"


def test_unsatisfiable_dependency_names_package_and_relation():
    with pytest.raises(UserError, match=r"'broken': cannot satisfy dependency 'libc \(>= 9\)'"):
        debian_lock.resolve(universe(), ["broken"])
    with pytest.raises(UserError, match="'nosuch' is not in the archives"):
        debian_lock.resolve(universe(), ["nosuch"])


def test_real_debian_lock_is_current_and_complete():
    proj = project.load(REPO)
    debian_lock.check(proj)
    doc = debian_lock.load(proj)
    names = {p["name"]: p for p in doc["packages"]}
    for needed in proj.debian.packages:
        assert needed in names, needed
    assert names["python3.9"]["version"].startswith("3.9.2-")
    for pkg in doc["packages"]:
        assert set(pkg) >= {"name", "version", "arch", "sha256", "filename"}
        assert len(pkg["sha256"]) == 64 and pkg["arch"] in ("amd64", "all")
        assert all(dep in names for dep in pkg["depends"]), pkg["name"]


def test_debian_check_shows_diff_when_package_set_changes(tmp_path):
    dst = tmp_path / "repo"
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__"))
    ws = dst / "WORKSPACE"
    ws.write_text(ws.read_text().replace('"tini",', '"tini",\n        "vim-tiny",'))
    with pytest.raises(StaleLockError) as err:
        debian_lock.check(project.load(dst))
    assert '+    "vim-tiny"' in str(err.value)


@pytest.mark.parametrize("compression", ["xz", "gzip", "zstd"])
def test_control_text_reads_what_dpkg_deb_prints(tmp_path, compression):
    from rules.debian.debian_rootfs import control_text

    (tmp_path / "pkg" / "DEBIAN").mkdir(parents=True)
    (tmp_path / "pkg" / "usr").mkdir()
    (tmp_path / "pkg" / "DEBIAN" / "control").write_text(
        "Package: sample\nVersion: 1.0-1\nArchitecture: all\nMaintainer: x <x@y>\n"
        "Depends: libc6 (>= 2.31)\nDescription: a sample\n two lines\n")
    deb = tmp_path / "sample.deb"
    subprocess.run(["dpkg-deb", f"-Z{compression}", "--root-owner-group", "--build",
                    str(tmp_path / "pkg"), str(deb)], check=True, capture_output=True)
    printed = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True,
                             text=True).stdout
    assert control_text(deb) == printed
    assert "Description: a sample\n two lines" in printed
