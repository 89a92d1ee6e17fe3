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
from dataclasses import dataclass
from pathlib import Path

from rules.common.errors import UserError

TAG = "runtime-{version}"


def tag_name(version: str) -> str:
    return TAG.format(version=version)


def git(root: Path, *args: str, env: dict | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL,
                          env=dict(os.environ, GIT_TERMINAL_PROMPT="0", **(env or {})))
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


@dataclass(frozen=True)
class Checkout:
    """Where the checkout stood when the release began: its branch and commit."""

    branch: str  # refs/heads/...
    commit: str


def checkout_state(root: Path) -> Checkout:
    """The checkout's branch and commit; refused on a detached HEAD (the record commit would
    end up on no branch) or with uncommitted changes (a release is built from a commit)."""
    if subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
                      capture_output=True).returncode != 0:
        raise UserError(f"refused: {root} is not a git checkout with a commit (a release "
                        "records the commit it is built from)")
    proc = subprocess.run(["git", "-C", str(root), "symbolic-ref", "-q", "HEAD"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError("refused: the checkout is on a detached HEAD; check out the branch the "
                        "release commits go on (e.g. git switch main)")
    status = git(root, "status", "--porcelain")
    if status:
        changed = ", ".join(line[3:] for line in status.splitlines()[:5])
        raise UserError("refused: the checkout has uncommitted changes (" + changed + "); a "
                        "release is built from a commit: commit or stash them first")
    return Checkout(proc.stdout.strip(), git(root, "rev-parse", "HEAD").strip())


def clone(root: Path, commit: str, into: Path) -> Path:
    """A clone of ``root`` at ``commit`` (detached): only what is committed is in it."""
    proc = subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(root), str(into)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"cannot clone {root}: {proc.stderr.strip()}")
    git(into, "-c", "core.hooksPath=/dev/null", "checkout", "--quiet", "--detach", commit)
    return into


def commit_paths(root: Path, paths: list[str], message: str, who: dict[str, str]) -> str:
    """Commit exactly ``paths`` in ``root`` (a scratch clone), with no hook of the user's
    running; return the new commit. Anything else the gates left in the clone stays out."""
    git(root, "add", "--", *paths)
    git(root, "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false", "commit",
        "--quiet", "--no-verify", "-m", message, "--", *paths, env=who)
    return git(root, "rev-parse", "HEAD").strip()


def publish(root: Path, clone_dir: Path, release: str, head: str, version: str,
            started: Checkout) -> None:
    """Bring the clone's commits into the checkout: tag ``release`` and fast-forward the
    branch to ``head`` (the record commit, whose parent is ``release``). Refused, with nothing
    changed, if the checkout moved (another commit or branch, or uncommitted changes) or the
    tag appeared meanwhile. The tag is created only if absent (one ref transaction, no editor,
    no signing prompt); if the fast-forward then fails, the tag is taken back."""
    try:
        now = checkout_state(root)
    except UserError as e:
        raise UserError(f"refused: the checkout changed while the gates ran ({e}); release "
                        "again") from None
    if now != started:
        raise UserError(f"refused: the checkout changed while the gates ran (it was "
                        f"{started.branch} at {started.commit[:12]}, it is {now.branch} at "
                        f"{now.commit[:12]}); release again")
    check_tag_free(root, version)
    git(root, "fetch", "--quiet", "--no-tags", str(clone_dir), head)
    tag = f"refs/tags/{tag_name(version)}"
    git(root, "update-ref", tag, release, "")  # ("": only if it does not exist)
    try:
        git(root, "-c", "core.hooksPath=/dev/null", "merge", "--quiet", "--ff-only", head)
    except BaseException:
        subprocess.run(["git", "-C", str(root), "update-ref", "-d", tag, release],
                       capture_output=True)
        raise
