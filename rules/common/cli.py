"""Glue between invoke tasks and the engine: clean errors, output helpers."""

import functools
import sys

from invoke import Exit

from rules.common.errors import UserError


def user_errors(fn):
    """Turn a UserError into a message on stderr and its exit code, with no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            raise Exit(code=e.exit_code) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise Exit(code=130) from None

    return wrapper
