"""Runs inside the Debian root with the image's python3.9: byte-compile package trees.

Usage: python3.9 compile_driver.py FINAL_SITE TREE [TREE ...]
Each TREE/site is compiled in a forked child of this process, single-threaded, in sorted file
order, PYTHONHASHSEED=0, invalidation mode unchecked-hash, with FINAL_SITE as the path embedded
in the code objects. A package's .pyc bytes thus depend only on its own files.
This file must stay compatible with Python 3.9 and use only its standard library.
"""

import compileall
import os
import py_compile
import sys


def compile_tree(site, final_site):
    ok = compileall.compile_dir(
        site, quiet=1, stripdir=site, prependdir=final_site, workers=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return 0 if ok else 1


def main():
    final_site, trees = sys.argv[1], sys.argv[2:]
    failed = []
    for tree in trees:
        site = os.path.join(tree, "site")
        if not os.path.isdir(site):
            continue
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = compile_tree(site, final_site)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            failed.append(tree)
    if failed:
        print("byte-compilation failed in: " + ", ".join(failed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
