"""The git side of a release: a release is a commit, tagged, that checked out and built gives
the recorded digests.

Until 2026-12-03 a release was built from HEAD plus the release's uncommitted BUILD edit, and
the edit was committed afterwards by hand: no commit gave the recorded digests (an image names
the commit it was built from, `org.opencontainers.image.revision`, so even the same files
under another commit give another manifest). Now the gates run in a scratch clone where the
edit is committed first (the *release commit*, which the build names and the tag points at);
the record and notes, which hold the digests and so cannot be in the commit they describe, are
a second commit on top. The user's checkout gets both by one fast-forward, and the tag, only
after every gate passed; nothing is pushed.

Git is called as a program: the few plumbing calls a release needs are stable interfaces, and
a library (GitPython, pygit2) would add a dependency to the build tools for no measured gain.
"""

import os
import subprocess
from pathlib import Path

from rules.common.errors import UserError

TAG = "runtime-{version}"


def tag_name(version: str) -> str:
    return TAG.format(version=version)


def git(root: Path, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})))
    if proc.returncode != 0:
        raise UserError(f"git {' '.join(args)} failed in {root}: "
                        f"{(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def identity(root: Path) -> dict[str, str]:
    """The author and committer the checkout would use, as environment variables (a clone has
    none of the checkout's local git config)."""
    env = {}
    for role in ("AUTHOR", "COMMITTER"):
        proc = subprocess.run(["git", "-C", str(root), "var", f"GIT_{role}_IDENT"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError("refused: git does not know who makes the release commit: set "
                            "user.name and user.email (git config), or GIT_AUTHOR_NAME/EMAIL")
        name, rest = proc.stdout.rsplit(" <", 1)
        env[f"GIT_{role}_NAME"], env[f"GIT_{role}_EMAIL"] = name, rest.split(">", 1)[0]
    return env


def check_tag_free(root: Path, version: str) -> None:
    tag = tag_name(version)
    if git(root, "tag", "--list", tag).strip():
        raise UserError(f"refused: tag {tag} already exists; a release never re-uses a version")


def clone(root: Path, commit: str, into: Path) -> Path:
    """A clone of ``root`` at ``commit`` (detached): only what is committed is in it."""
    proc = subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(root), str(into)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"cannot clone {root}: {proc.stderr.strip()}")
    git(into, "checkout", "--quiet", "--detach", commit)
    return into


def commit_all(root: Path, message: str, who: dict[str, str]) -> str:
    """Commit every change in ``root`` (a scratch clone); return the new commit."""
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "--no-verify", "-m", message, env=who)
    return git(root, "rev-parse", "HEAD").strip()


def publish(root: Path, clone_dir: Path, release: str, head: str, version: str,
            expected_head: str) -> None:
    """Bring the clone's commits into the checkout: fast-forward it to ``head`` (the record
    commit, whose parent is ``release``) and tag ``release``. Refused if the checkout moved."""
    if git(root, "rev-parse", "HEAD").strip() != expected_head:
        raise UserError("refused: the checkout changed while the gates ran; release again")
    git(root, "fetch", "--quiet", "--no-tags", str(clone_dir), "HEAD")
    if git(root, "rev-parse", "FETCH_HEAD").strip() != head:
        raise UserError("the release commits did not arrive in the checkout; release again")
    git(root, "merge", "--quiet", "--ff-only", head)
    git(root, "tag", tag_name(version), release)
