"""Where the build's cache lives: `$RUNTIME_CACHE`, else `$XDG_CACHE_HOME/runtime`, else
`~/.cache/runtime`. Downloads (the content-addressed store), action results, roots and the
test suite's artifacts all go there, never into the checkout."""

import os
from pathlib import Path


def default_cache() -> Path:
    base = os.environ.get("RUNTIME_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "runtime")
    return Path(base)
