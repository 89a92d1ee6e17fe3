"""Run inside an image by python3.9: load every shared object under dist-packages.

Python extension modules are imported; other libraries (ctypes-loaded ones such as
Cryptodome's) are opened with ctypes. Libraries that auditwheel bundled in ``<dist>.libs/``
are left to the extension that loads them. Prints one JSON object: counts and failures."""

import ctypes
import importlib
import json
import os

SITE = "/usr/local/lib/python3.9/dist-packages"
SUFFIX = ".cpython-39-x86_64-linux-gnu.so"


def module_name(rel):
    parts = rel.split("/")
    base = parts[-1]
    for end in (SUFFIX, ".abi3.so", ".so"):
        if base.endswith(end):
            parts[-1] = base[:-len(end)]
            break
    return ".".join(parts)


def main():
    files = []
    for folder, dirs, names in os.walk(SITE):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            bundled = os.path.basename(folder).endswith(".libs")
            if ".so" in name and not bundled and not os.path.islink(path):
                with open(path, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        files.append(path)
    imported, opened, failed = 0, 0, []
    for path in files:
        rel = os.path.relpath(path, SITE)
        packaged = all(p.isidentifier() for p in rel.split("/")[:-1])
        if packaged and (rel.endswith((SUFFIX, ".abi3.so"))):
            try:
                importlib.import_module(module_name(rel))
                imported += 1
                continue
            except ImportError as e:
                if "does not define module export function" not in str(e):
                    failed.append([rel, f"{type(e).__name__}: {e}"])
                    continue
            except Exception as e:  # noqa: BLE001 - any failure is reported
                failed.append([rel, f"{type(e).__name__}: {e}"])
                continue
        try:
            ctypes.CDLL(path)
            opened += 1
        except OSError as e:
            failed.append([rel, str(e)])
    print(json.dumps({"files": len(files), "imported": imported, "opened": opened,
                      "failed": failed}))


if __name__ == "__main__":
    main()
