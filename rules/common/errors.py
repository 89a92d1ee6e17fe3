"""Errors a user can act on.

Every expected failure is a ``UserError``: the CLI prints its message on one line (or a short
block) and exits with its code, without a traceback.
"""


class UserError(Exception):
    """An expected failure with a message written for the user."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BuildFileError(UserError):
    """A problem in a WORKSPACE or BUILD file, located at file:line:col."""

    def __init__(self, path: str, line: int, col: int, message: str):
        self.path, self.line, self.col = path, line, col
        super().__init__(f"{path}:{line}:{col}: {message}")


class StaleLockError(UserError):
    """``--check`` found a lock that no longer matches its inputs."""

    exit_code = 1


class DigestMismatchError(UserError):
    """A downloaded or cached file whose bytes do not match the locked sha256."""

    def __init__(self, what: str, expected: str, actual: str):
        super().__init__(
            f"sha256 mismatch for {what}: expected {expected}, got {actual}"
        )


def raise_if_interrupted(returncode: int) -> None:
    """A child stopped by the terminal's Ctrl-C (killed by SIGINT, or exiting 130 as shells
    and mmdebstrap do) means the build was interrupted: raise that, not the child's failure
    (which printed mmdebstrap's 25 lines of cleanup instead of "interrupted")."""
    if returncode in (-2, 130):  # -SIGINT, 128 + SIGINT
        raise KeyboardInterrupt
