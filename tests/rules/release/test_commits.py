"""rules.release.commits on small repositories: a clone holds only what is committed, the
checkout gets the release commits by one fast-forward and the tag, and is left alone when it
moved meanwhile or the tag is taken."""

import subprocess
from pathlib import Path

import pytest

from rules.common.errors import UserError
from rules.release import commits

WHO = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}


def git(root: Path, *args: str) -> str:
    return commits.git(root, *args, env=WHO).strip()


@pytest.fixture
def checkout(tmp_path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    git(root, "init", "--quiet")
    (root / "BUILD").write_text('version = "1.0.0"\n')
    git(root, "add", "BUILD")
    git(root, "commit", "--quiet", "-m", "start")
    return root


def release_in_clone(checkout: Path, tmp_path: Path) -> tuple[Path, str, str, str]:
    head = git(checkout, "rev-parse", "HEAD")
    clone = commits.clone(checkout, head, tmp_path / "clone")
    (clone / "BUILD").write_text('version = "1.0.1"\n')
    release = commits.commit_all(clone, "Release 1.0.1", WHO)
    (clone / "record.json").write_text("{}\n")
    recorded = commits.commit_all(clone, "Record 1.0.1", WHO)
    return clone, head, release, recorded


def test_a_clone_holds_what_is_committed_and_nothing_else(checkout, tmp_path):
    (checkout / "untracked.txt").write_text("not released\n")
    (checkout / "BUILD").write_text('version = "9.9.9"\n')  # (uncommitted)
    clone = commits.clone(checkout, git(checkout, "rev-parse", "HEAD"), tmp_path / "clone")
    assert sorted(p.name for p in clone.iterdir()) == [".git", "BUILD"]
    assert (clone / "BUILD").read_text() == 'version = "1.0.0"\n'


def test_publish_fast_forwards_the_checkout_and_tags_the_release_commit(checkout, tmp_path):
    clone, head, release, recorded = release_in_clone(checkout, tmp_path)
    commits.publish(checkout, clone, release, recorded, "1.0.1", head)
    assert git(checkout, "rev-parse", "HEAD") == recorded
    assert git(checkout, "rev-parse", "HEAD^") == release
    assert git(checkout, "rev-parse", "runtime-1.0.1^{commit}") == release
    assert git(checkout, "status", "--porcelain") == ""
    assert (checkout / "BUILD").read_text() == 'version = "1.0.1"\n'
    with pytest.raises(UserError, match="tag runtime-1.0.1 already exists"):
        commits.check_tag_free(checkout, "1.0.1")


def test_a_checkout_that_moved_meanwhile_is_left_alone(checkout, tmp_path):
    clone, head, release, recorded = release_in_clone(checkout, tmp_path)
    (checkout / "other.txt").write_text("work of the user\n")
    git(checkout, "add", "other.txt")
    git(checkout, "commit", "--quiet", "-m", "meanwhile")
    moved = git(checkout, "rev-parse", "HEAD")
    with pytest.raises(UserError, match="the checkout changed while the gates ran"):
        commits.publish(checkout, clone, release, recorded, "1.0.1", head)
    assert git(checkout, "rev-parse", "HEAD") == moved
    assert git(checkout, "tag", "--list") == ""


def test_identity_comes_from_the_checkouts_config(checkout):
    git(checkout, "config", "user.name", "Release Manager")
    git(checkout, "config", "user.email", "rm@example.org")
    env = commits.identity(checkout)
    assert env["GIT_AUTHOR_NAME"] == env["GIT_COMMITTER_NAME"] == "Release Manager"
    assert env["GIT_AUTHOR_EMAIL"] == "rm@example.org"


def test_git_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="git rev-parse HEAD failed"):
        commits.git(tmp_path, "rev-parse", "HEAD")


def test_the_tag_is_free_before_a_release(checkout):
    commits.check_tag_free(checkout, "1.0.1")
    assert subprocess.run(["git", "-C", str(checkout), "tag", "runtime-1.0.1"]).returncode == 0
    with pytest.raises(UserError):
        commits.check_tag_free(checkout, "1.0.1")
