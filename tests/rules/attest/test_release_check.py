"""rules.attest.verify.release_check on a small repository: an image is the recorded release
when the record lists its digest, names its commit and the tag points there; an image of
another commit is not that release (skipped); the same commit with another digest, or a tag
moved elsewhere, fails."""

import json
import subprocess
from pathlib import Path

import pytest

from rules.attest.verify import release_check
from rules.release import commits
from rules.release.releases import RECORDS

WHO = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
DIGEST = "sha256:" + "a" * 64


def git(root: Path, *args: str) -> str:
    return commits.git(root, *args, env=WHO).strip()


@pytest.fixture
def released(tmp_path) -> tuple[Path, str]:
    """A checkout with a release commit tagged runtime-4.2.9 and its record on top."""
    root = tmp_path / "checkout"
    root.mkdir()
    git(root, "init", "--quiet")
    (root / "BUILD").write_text('version = "4.2.9"\n')
    git(root, "add", "BUILD")
    release = commits.commit_paths(root, ["BUILD"], "Release 4.2.9", WHO)
    record = root / RECORDS / "4.2.9.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"version": "4.2.9", "built_from": release,
                                  "tag": "runtime-4.2.9", "digests": {"onbuild": DIGEST}}))
    commits.commit_paths(root, [f"{RECORDS}/4.2.9.json"], "Record 4.2.9", WHO)
    git(root, "tag", "runtime-4.2.9", release)
    return root, release


def statement(commit: str, version: str = "4.2.9", flavor: str = "onbuild") -> dict:
    return {"predicate": {"buildDefinition": {
        "externalParameters": {"flavor": flavor, "source": {"commit": commit}},
        "internalParameters": {"runtimeVersion": version}}}}


def test_the_recorded_release_passes(released):
    root, release = released
    check = release_check(str(root), statement(release), DIGEST)
    assert check.ok is True and "tagged runtime-4.2.9" in check.detail


def test_the_same_commit_with_another_digest_fails(released):
    root, release = released
    check = release_check(str(root), statement(release), "sha256:" + "b" * 64)
    assert check.ok is False and "recorded onbuild as sha256:aaaa" in check.detail


def test_a_build_of_another_commit_is_not_the_release(released):
    root, _ = released
    check = release_check(str(root), statement("c" * 40), "sha256:" + "b" * 64)
    assert check.ok is None and "NOT release 4.2.9" in check.detail
    required = release_check(str(root), statement("c" * 40), "sha256:" + "b" * 64, True)
    assert required.ok is False and "NOT release 4.2.9" in required.detail


def test_the_record_is_found_with_the_tag_checked_out(released):
    root, release = released
    git(root, "checkout", "--quiet", "runtime-4.2.9")  # (the record is in the commit after)
    check = release_check(str(root), statement(release), DIGEST, True)
    assert check.ok is True, check.detail


@pytest.mark.parametrize("bad", [{}, {"predicate": []}, {"_type": "x", "subject": []},
                                 {"predicate": {"buildDefinition": {
                                     "externalParameters": {}, "internalParameters": {}}}}])
def test_a_malformed_provenance_fails_the_check_without_a_traceback(released, bad):
    root, _ = released
    check = release_check(str(root), bad, DIGEST)
    assert check.ok is False and "names no Runtime version" in check.detail


def test_no_record_of_the_version_is_a_build_not_a_release(released):
    root, release = released
    check = release_check(str(root), statement(release, version="4.2.10"), DIGEST)
    assert check.ok is None and "no release record of 4.2.10" in check.detail


def test_a_tag_moved_elsewhere_fails(released):
    root, release = released
    subprocess.run(["git", "-C", str(root), "tag", "-f", "runtime-4.2.9", "HEAD"], check=True,
                   capture_output=True)
    check = release_check(str(root), statement(release), DIGEST)
    assert check.ok is False and "tag runtime-4.2.9 names" in check.detail
