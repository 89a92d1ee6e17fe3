"""The patch applier and the patched Airflow wheel: offline, on small made-up wheels, plus the
project's real patches against the real upstream wheels when they are fetched."""

import hashlib
import io
import shutil
import zipfile

import pytest
from installer.sources import WheelFile

from rules.load import project
from rules.python import patch_apply, patched_wheel
from rules.common.errors import UserError
from tests.fixtures import REPO, run_invoke, upstream_airflow_wheel

HEADER = "Subject: [PATCH] Fix the greeting\n\nUpstream: apache/airflow#12345\n---\n"


def diff(path, hunks, header=HEADER):
    return (header + f"--- a/{path}\n+++ b/{path}\n" + hunks).encode()


def wheel(files: dict[str, str], version="2.2.4") -> bytes:
    out = io.BytesIO()
    info = f"apache_airflow-{version}.dist-info"
    files = dict(files)
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: apache-airflow\nVersion: {version}\n"
    files[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/RECORD"] = ""
    with zipfile.ZipFile(out, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return out.getvalue()


GREETING = "def greet():\n    name = None\n    return 'hello ' + name\n\n\nX = 1\n"
FIX = ("@@ -1,3 +1,3 @@\n def greet():\n-    name = None\n+    name = 'world'\n"
       "     return 'hello ' + name\n")


def test_a_hunk_applies_where_it_moved_and_keeps_the_rest():
    _, (change,) = patch_apply.parse(diff("airflow/greet.py", FIX).decode())
    files = {"airflow/greet.py": ("# a line added above\n" + GREETING).encode()}
    out = patch_apply.apply(files, change).decode()
    assert out == "# a line added above\n" + GREETING.replace("None", "'world'")


def test_new_files_and_missing_final_newlines():
    text = ("--- /dev/null\n+++ b/airflow/new.py\n@@ -0,0 +1,2 @@\n+A = 1\n+B = 2\n"
            "\\ No newline at end of file\n")
    _, (change,) = patch_apply.parse(HEADER + text)
    assert patch_apply.apply({}, change) == b"A = 1\nB = 2"


def test_a_hunk_that_no_longer_applies_names_file_and_hunk():
    second = "@@ -6,1 +6,1 @@\n-X = 2\n+X = 3\n"
    _, (change,) = patch_apply.parse(diff("airflow/greet.py", FIX + second).decode())
    with pytest.raises(patch_apply.PatchError) as e:
        patch_apply.apply({"airflow/greet.py": GREETING.encode()}, change)
    assert "airflow/greet.py: hunk #2 does not apply (@@ -6,1 +6,1 @@)" in str(e.value)


def test_crlf_files_keep_their_line_ends_and_other_separators_stay():
    text = "a\r\nb\r\nc\x0cd\r\n"
    patch = HEADER + ("--- a/f.css\n+++ b/f.css\n@@ -1,3 +1,3 @@\n a\r\n-b\r\n+B\r\n"
                      " c\x0cd\r\n")
    _, (change,) = patch_apply.parse(patch)
    assert patch_apply.apply({"f.css": text.encode()}, change) == b"a\r\nB\r\nc\x0cd\r\n"


def test_insertions_without_context_land_where_gnu_patch_puts_them():
    text = "".join(f"{n}\n" for n in range(1, 9))
    patch = HEADER + ("--- a/n\n+++ b/n\n@@ -2,0 +3 @@\n+two-and-a-half\n"
                      "@@ -6,0 +8 @@\n+six-and-a-half\n")
    _, (change,) = patch_apply.parse(patch)
    out = patch_apply.apply({"n": text.encode()}, change).decode().splitlines()
    assert out == ["1", "2", "two-and-a-half", "3", "4", "5", "6", "six-and-a-half", "7", "8"]


def test_a_later_hunk_never_applies_above_an_earlier_one():
    text = "if x: go()\n" + "".join(f"line {n}\n" for n in range(10)) + "end\n"
    patch = HEADER + ("--- a/f\n+++ b/f\n@@ -5,1 +5,1 @@\n-line 3\n+line three\n"
                      "@@ -12,1 +12,1 @@\n-if x: go()\n+if x: stop()\n")
    _, (change,) = patch_apply.parse(patch)
    with pytest.raises(patch_apply.PatchError, match="hunk #2 does not apply"):
        patch_apply.apply({"f": text.encode()}, change)


def test_git_changes_without_hunks_are_applied_or_refused():
    empty = HEADER + ("diff --git a/airflow/pkg/__init__.py b/airflow/pkg/__init__.py\n"
                      "new file mode 100644\nindex 0000000..e69de29\n")
    _, (change,) = patch_apply.parse(empty)
    assert (change.old_path, change.new_path) == (None, "airflow/pkg/__init__.py")
    assert patch_apply.apply({}, change) == b""
    renamed = HEADER + ("diff --git a/airflow/a.py b/airflow/b.py\nsimilarity index 100%\n"
                        "rename from airflow/a.py\nrename to airflow/b.py\n")
    with pytest.raises(patch_apply.PatchError, match="not supported"):
        patch_apply.parse(renamed)
    binary = HEADER + ("diff --git a/x.png b/x.png\nindex 1..2 100644\nGIT binary patch\n"
                       "literal 5\nzcmV\n")
    with pytest.raises(patch_apply.PatchError, match="not supported"):
        patch_apply.parse(binary)


def test_two_patches_on_one_file_and_a_new_file_are_in_the_record(tmp_path):
    second = ("--- a/airflow/greet.py\n+++ b/airflow/greet.py\n@@ -6 +6 @@\n-X = 1\n+X = 2\n"
              "--- /dev/null\n+++ b/airflow/added.py\n@@ -0,0 +1 @@\n+ADDED = True\n")
    name, data = patched_wheel.repack(
        wheel({"airflow/greet.py": GREETING}), "apache_airflow-2.2.4-py3-none-any.whl",
        "2.2.4+runtime.2", [("0001-fix.patch", diff("airflow/greet.py", FIX)),
                            ("0002-more.patch", (HEADER + second).encode())])
    (tmp_path / name).write_bytes(data)
    with WheelFile.open(tmp_path / name) as source:
        source.validate_record()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("airflow/greet.py").decode() == \
            GREETING.replace("None", "'world'").replace("X = 1", "X = 2")
        assert zf.read("airflow/added.py") == b"ADDED = True\n"
        record = zf.read("apache_airflow-2.2.4+runtime.2.dist-info/RECORD").decode()
        assert "airflow/added.py,sha256=" in record
        assert (zf.getinfo("airflow/added.py").external_attr >> 16) & 0o777 == 0o644


def test_repacked_wheel_is_the_local_version_with_a_valid_record(tmp_path):
    name, data = patched_wheel.repack(wheel({"airflow/greet.py": GREETING}),
                                      "apache_airflow-2.2.4-py3-none-any.whl", "2.2.4+runtime.1",
                                      [("0001-fix.patch", diff("airflow/greet.py", FIX))])
    assert name == "apache_airflow-2.2.4+runtime.1-py3-none-any.whl"
    (tmp_path / name).write_bytes(data)
    with WheelFile.open(tmp_path / name) as source:
        source.validate_record()  # every file's sha256 and size match its RECORD row
        assert source.distribution == "apache_airflow" and source.version == "2.2.4+runtime.1"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        assert zf.read("airflow/greet.py").decode() == GREETING.replace("None", "'world'")
        meta = zf.read("apache_airflow-2.2.4+runtime.1.dist-info/METADATA").decode()
        assert "Version: 2.2.4+runtime.1\n" in meta
        assert {i.date_time for i in zf.infolist()} == {patched_wheel.ZIP_TIME}
    assert names[-1] == "apache_airflow-2.2.4+runtime.1.dist-info/RECORD"
    assert not any(n.startswith("apache_airflow-2.2.4.dist-info") for n in names)
    again = patched_wheel.repack(wheel({"airflow/greet.py": GREETING}),
                                 "apache_airflow-2.2.4-py3-none-any.whl", "2.2.4+runtime.1",
                                 [("0001-fix.patch", diff("airflow/greet.py", FIX))])[1]
    assert hashlib.sha256(again).digest() == hashlib.sha256(data).digest()


def test_a_patch_that_does_not_apply_fails_naming_patch_and_hunk():
    moved = GREETING.replace("name = None", "name = ''")
    with pytest.raises(UserError) as e:
        patched_wheel.repack(wheel({"airflow/greet.py": moved}),
                             "apache_airflow-2.2.4-py3-none-any.whl", "2.2.4+runtime.1",
                             [("runtime/patches/2.2.4/0001-fix.patch",
                               diff("airflow/greet.py", FIX))])
    assert str(e.value).startswith("runtime/patches/2.2.4/0001-fix.patch does not apply to "
                                   "apache_airflow-2.2.4-py3-none-any.whl: airflow/greet.py: "
                                   "hunk #1 does not apply (@@ -1,3 +1,3 @@)")


def test_a_patch_must_cite_the_upstream_fix():
    with pytest.raises(UserError, match="must cite the upstream fix"):
        patched_wheel.repack(wheel({"airflow/greet.py": GREETING}),
                             "apache_airflow-2.2.4-py3-none-any.whl", "2.2.4+runtime.1",
                             [("0001-fix.patch", diff("airflow/greet.py", FIX, "Fix it\n"))])


@pytest.mark.slow  # downloads the upstream wheel once
@pytest.mark.parametrize("airflow", ["2.1.1", "2.2.0", "2.2.4", "2.3.0"])
def test_the_projects_patches_apply_to_the_locked_upstream_wheel(airflow):
    proj = project.load(REPO)
    patchset = proj.patches.get(airflow)
    assert patchset, f"no airflow_patches target for Airflow {airflow}"
    blob, filename = upstream_airflow_wheel(proj, airflow)
    patches = [(p, (REPO / p).read_bytes()) for p in patchset.patches]
    name, data = patched_wheel.repack(blob.read_bytes(), filename, patchset.version, patches)
    assert name == f"apache_airflow-{patchset.version}-py3-none-any.whl"
    assert patched_wheel.repack(blob.read_bytes(), filename, patchset.version, patches)[1] == data


@pytest.mark.slow  # the line's inputs are fetched first (network once)
def test_image_build_with_a_patch_that_no_longer_applies_names_patch_and_hunk(tmp_path):
    proj = project.load(REPO)
    proc = run_invoke(REPO, "fetch", "--runtime", "4.2")
    assert proc.returncode == 0, proc.stderr
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".git", ".venv", "out",
                                                              "__pycache__"))
    patch = copy / proj.patches["2.2.4"].patches[0]
    patch.write_text(patch.read_text().replace("-        if not key:", "-        if not k:"))
    out = tmp_path / "out"
    proc = run_invoke(copy, "image", "--runtime", "4.2", "--out", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert (f"error: {proj.patches['2.2.4'].patches[0]} does not apply to "
            "apache_airflow-2.2.4-py3-none-any.whl: airflow/secrets/local_filesystem.py: "
            "hunk #2 does not apply (@@ -85,8 +85,7 @@)") in proc.stderr, proc.stderr
    assert not out.exists()
