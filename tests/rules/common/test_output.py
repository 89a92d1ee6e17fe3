"""Output folders (`--out`): an earlier output of ours is replaced, anything else is refused
before any work with a one-line error and left exactly as it was."""

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from rules.common import output
from rules.common.errors import UserError
from tests.fixtures import REPO, run_invoke

LINE = "4.2"


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def users_folder(path: Path) -> Path:
    (path / "notes").mkdir(parents=True)
    (path / "notes" / "todo.txt").write_text("mine\n")
    (path / "thesis.tex").write_text("precious\n")
    return path


def earlier_layout(path: Path) -> Path:
    (path / "blobs" / "sha256").mkdir(parents=True)
    (path / "blobs" / "sha256" / ("a" * 64)).write_bytes(b"x")
    for name in ("oci-layout", "index.json", "manifest.json"):
        (path / name).write_text("{}")
    return path


def assert_one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for word in words:
        assert word in lines[0], proc.stderr


def test_image_out_on_a_folder_of_the_users_files_is_refused_and_untouched(tmp_path):
    folder = users_folder(tmp_path / "mine")
    before = snapshot(folder)
    proc = run_invoke(REPO, "image", "--runtime", LINE, "--out", str(folder))
    assert_one_line_error(proc, "refused", str(folder), "thesis.tex")
    assert snapshot(folder) == before


def test_image_out_on_the_working_directory_is_refused(tmp_path):
    copy = tmp_path / "repo"  # a checkout of the user's with a folder of their own in it
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".git", ".venv", "out",
                                                              "__pycache__"))
    work = users_folder(copy / "mywork")
    before = snapshot(copy)
    proc = run_invoke(work, "image", "--runtime", LINE, "--out", ".")
    assert_one_line_error(proc, "refused", "thesis.tex")
    assert snapshot(copy) == before


@pytest.mark.parametrize("task", ["image", "pex", "release"])
@pytest.mark.parametrize("suffix", ["", "/sub"])
def test_out_on_a_file_is_one_line_and_changes_nothing(tmp_path, task, suffix):
    target = tmp_path / "file"
    target.write_text("keep\n")
    proc = run_invoke(REPO, task, "--runtime", LINE, "--out", f"{target}{suffix}")
    assert_one_line_error(proc, "is a file")
    assert target.read_text() == "keep\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_pex_out_refuses_to_overwrite_a_file_that_is_not_a_pex(tmp_path):
    from rules.load import project

    version = project.load(REPO).line(LINE).version
    mine = tmp_path / f"runtime-{version}.pex"
    mine.write_text("my own script\n")
    proc = run_invoke(REPO, "pex", "--runtime", LINE, "--out", str(tmp_path))
    assert_one_line_error(proc, "refused", mine.name)
    assert mine.read_text() == "my own script\n"


def test_an_earlier_layout_is_recognised_and_a_mixed_one_is_not(tmp_path):
    layout = earlier_layout(tmp_path / "layout")
    assert output.is_image_layout(layout)
    (layout / "README").write_text("mine")
    assert not output.is_image_layout(layout)
    (layout / "README").unlink()
    (layout / "blobs" / "sha256" / "notes.txt").write_text("mine")
    assert not output.is_image_layout(layout)
    assert not output.is_image_layout(users_folder(tmp_path / "users"))
    assert not output.is_image_layout(tmp_path / "absent")


def test_a_layout_of_another_tool_is_not_taken_for_an_earlier_one(tmp_path):
    """skopeo and umoci write layouts without manifest.json; the user's tags in them are
    theirs, and a build must not replace them."""
    layout = earlier_layout(tmp_path / "skopeo")
    (layout / "manifest.json").unlink()
    assert not output.is_image_layout(layout)
    with pytest.raises(UserError):
        output.check_folder(layout, output.is_image_layout, "a layout")
    assert (layout / "index.json").exists()


def test_publish_replaces_an_earlier_layout(tmp_path):
    out = earlier_layout(tmp_path / "out")
    work = output.work_folder(out)
    (work / "oci-layout").write_text("new")
    output.publish_folder(work, out, output.is_image_layout, "a layout")
    assert snapshot(out) == {"oci-layout": b"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left beside it


def test_publish_refuses_files_the_user_put_there_during_the_build(tmp_path):
    out = tmp_path / "out"
    output.check_folder(out, output.is_image_layout, "a layout")  # absent when the build began
    work = output.work_folder(out)
    (work / "oci-layout").write_text("new")
    users_folder(out)
    before = snapshot(out)
    with pytest.raises(UserError, match="refused"):
        output.publish_folder(work, out, output.is_image_layout, "a layout")
    assert snapshot(out) == before


def test_a_pex_is_recognised(tmp_path):
    pex = tmp_path / "a.pex"
    with zipfile.ZipFile(pex, "w") as z:
        z.writestr("PEX-INFO", "{}")
    assert output.is_pex(pex)
    plain = tmp_path / "b.pex"
    plain.write_text("#!/bin/sh\n")
    assert not output.is_pex(plain)


def test_a_symlinked_out_is_refused(tmp_path):
    real = users_folder(tmp_path / "real")
    os.symlink(real, tmp_path / "link")
    with pytest.raises(UserError, match="symbolic link"):
        output.check_folder(tmp_path / "link", output.is_image_layout, "a layout")


def test_a_layout_whose_index_is_a_folder_is_not_ours(tmp_path):
    layout = earlier_layout(tmp_path / "layout")
    (layout / "index.json").unlink()
    (layout / "index.json").mkdir()
    (layout / "index.json" / "thesis.txt").write_text("precious")
    assert not output.is_image_layout(layout)
    with pytest.raises(UserError, match="refused"):
        output.check_folder(layout, output.is_image_layout, "a layout")


def test_a_file_added_to_an_earlier_layout_at_the_last_moment_is_kept(tmp_path):
    out = earlier_layout(tmp_path / "out")
    work = output.work_folder(out)
    (work / "oci-layout").write_text("new")
    calls = []

    def recognise(path):  # the user writes into the folder just after the last check
        calls.append(path)
        ours = output.is_image_layout(path)
        if len(calls) == 1:
            (out / "user.txt").write_text("mine")
        return ours

    with pytest.raises(UserError, match="changed while the build ran"):
        output.publish_folder(work, out, recognise, "a layout")
    assert (out / "user.txt").read_text() == "mine" and (out / "blobs").is_dir()


def test_a_published_folder_has_the_umasks_mode(tmp_path):
    old = os.umask(0o022)
    try:
        work = output.work_folder(tmp_path / "out")
    finally:
        os.umask(old)
    assert work.stat().st_mode & 0o777 == 0o755


def test_a_report_dir_that_links_to_nothing_is_one_line(tmp_path):
    os.symlink(tmp_path / "nowhere", tmp_path / "reports")
    proc = run_invoke(REPO, "test-image", "--runtime", LINE, "--report-dir",
                      str(tmp_path / "reports"))
    assert_one_line_error(proc, "symbolic link to nothing")


@pytest.mark.slow
def test_a_report_dir_is_one_argument_never_shell(tmp_path):
    """(needs a Docker engine: the task starts one before it runs pytest)"""
    keep = tmp_path / "keep"
    keep.write_text("mine\n")
    for name in ("keep x", "rd;touch PWNED;echo"):
        proc = run_invoke(REPO, "test-image", "--runtime", LINE, "-k", "no_such_check",
                          "--report-dir", name, env={"RUNTIME_CALLER_DIR": str(tmp_path)})
        assert "Traceback" not in proc.stderr, proc.stderr
    assert keep.read_text() == "mine\n"
    assert not (tmp_path / "PWNED").exists() and not (REPO / "PWNED").exists()
    assert (tmp_path / "keep x").is_dir() and (tmp_path / "rd;touch PWNED;echo").is_dir()
