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


def release_in_clone(checkout: Path, tmp_path: Path):
    started = commits.checkout_state(checkout)
    clone = commits.clone(checkout, started.commit, tmp_path / "clone")
    (clone / "BUILD").write_text('version = "1.0.1"\n')
    release = commits.commit_paths(clone, ["BUILD"], "Release 1.0.1", WHO)
    (clone / "record.json").write_text("{}\n")
    (clone / "left-by-the-gates.txt").write_text("not released\n")
    recorded = commits.commit_paths(clone, ["record.json"], "Record 1.0.1", WHO)
    return clone, started, release, recorded


def test_a_clone_holds_what_is_committed_and_nothing_else(checkout, tmp_path):
    (checkout / "untracked.txt").write_text("not released\n")
    (checkout / "BUILD").write_text('version = "9.9.9"\n')  # (uncommitted)
    clone = commits.clone(checkout, git(checkout, "rev-parse", "HEAD"), tmp_path / "clone")
    assert sorted(p.name for p in clone.iterdir()) == [".git", "BUILD"]
    assert (clone / "BUILD").read_text() == 'version = "1.0.0"\n'


def test_publish_fast_forwards_the_checkout_and_tags_the_release_commit(checkout, tmp_path):
    clone, started, release, recorded = release_in_clone(checkout, tmp_path)
    commits.publish(checkout, clone, release, recorded, "1.0.1", started)
    assert git(checkout, "rev-parse", "HEAD") == recorded
    assert git(checkout, "ls-files") == "BUILD\nrecord.json"  # only what was named
    assert git(checkout, "rev-parse", "HEAD^") == release
    assert git(checkout, "rev-parse", "runtime-1.0.1^{commit}") == release
    assert git(checkout, "status", "--porcelain") == ""
    assert (checkout / "BUILD").read_text() == 'version = "1.0.1"\n'
    with pytest.raises(UserError, match="tag runtime-1.0.1 already exists"):
        commits.check_tag_free(checkout, "1.0.1")


def test_a_checkout_that_moved_meanwhile_is_left_alone(checkout, tmp_path):
    clone, started, release, recorded = release_in_clone(checkout, tmp_path)
    (checkout / "other.txt").write_text("work of the user\n")
    git(checkout, "add", "other.txt")
    git(checkout, "commit", "--quiet", "-m", "meanwhile")
    moved = git(checkout, "rev-parse", "HEAD")
    with pytest.raises(UserError, match="the checkout changed while the gates ran"):
        commits.publish(checkout, clone, release, recorded, "1.0.1", started)
    assert git(checkout, "rev-parse", "HEAD") == moved
    assert git(checkout, "tag", "--list") == ""


@pytest.mark.parametrize("change", ["branch", "dirty", "tag", "detached"])
def test_any_change_of_the_checkout_during_the_gates_refuses_with_nothing_changed(
        checkout, tmp_path, change):
    clone, started, release, recorded = release_in_clone(checkout, tmp_path)
    if change == "branch":  # another branch at the same commit
        git(checkout, "switch", "--quiet", "-c", "other")
    elif change == "dirty":
        (checkout / "BUILD").write_text("edited meanwhile\n")
    elif change == "tag":
        git(checkout, "tag", "runtime-1.0.1", "HEAD")
    else:
        git(checkout, "switch", "--quiet", "--detach")
    before = (git(checkout, "rev-parse", "HEAD"), git(checkout, "tag", "--list"))
    with pytest.raises(UserError, match="changed while the gates ran|already exists"):
        commits.publish(checkout, clone, release, recorded, "1.0.1", started)
    assert (git(checkout, "rev-parse", "HEAD"), git(checkout, "tag", "--list")) == before


def test_a_failed_fast_forward_takes_the_tag_back(checkout, tmp_path, monkeypatch):
    clone, started, release, recorded = release_in_clone(checkout, tmp_path)
    real = commits.git

    def failing_merge(root, *args, env=None):
        if "merge" in args:
            raise UserError("merge failed on purpose")
        return real(root, *args, env=env)

    monkeypatch.setattr(commits, "git", failing_merge)
    with pytest.raises(UserError, match="on purpose"):
        commits.publish(checkout, clone, release, recorded, "1.0.1", started)
    assert real(checkout, "tag", "--list").strip() == ""
    assert real(checkout, "rev-parse", "HEAD").strip() == started.commit


def test_a_detached_head_or_a_dirty_checkout_is_refused_at_the_start(checkout):
    (checkout / "BUILD").write_text("edited\n")
    with pytest.raises(UserError, match="uncommitted changes"):
        commits.checkout_state(checkout)
    git(checkout, "checkout", "--quiet", "BUILD")
    git(checkout, "switch", "--quiet", "--detach")
    with pytest.raises(UserError, match="detached HEAD"):
        commits.checkout_state(checkout)


def test_signing_and_hooks_of_the_user_do_not_stop_the_commits(checkout, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for name in ("pre-commit", "commit-msg", "post-checkout", "prepare-commit-msg", "post-merge"):
        (hooks / name).write_text("#!/bin/sh\necho hook ran >&2\nexit 1\n")
        (hooks / name).chmod(0o755)
    git(checkout, "config", "core.hooksPath", str(hooks))
    git(checkout, "config", "tag.gpgSign", "true")
    git(checkout, "config", "commit.gpgSign", "true")
    clone, started, release, recorded = release_in_clone(checkout, tmp_path)
    commits.publish(checkout, clone, release, recorded, "1.0.1", started)
    assert git(checkout, "rev-parse", "runtime-1.0.1^{commit}") == release


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
