"""Run a command inside a Debian root (the image's own python3.9), with /dev and /proc
mounted in a private mount namespace: the mounts vanish with the process, even on kill -9."""

import os
import shlex
import subprocess
from pathlib import Path

from rules.errors import UserError

CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
             "HOME": "/root", "PYTHONHASHSEED": "0", "TZ": "UTC"}


def run(rootfs: Path, argv: list[str], binds: dict[str, Path] | None = None,
        env: dict[str, str] | None = None, what: str = "command") -> str:
    """Run ``argv`` in ``rootfs``; ``binds`` maps paths inside the root to host folders."""
    if os.geteuid() != 0:
        raise UserError("building images needs root (chroot into the Debian base)")
    rootfs = Path(rootfs)
    mounts = [f"mount --rbind /dev {q(rootfs / 'dev')}",
              f"mount -t proc proc {q(rootfs / 'proc')}"]
    for inside, host in (binds or {}).items():
        target = rootfs / inside.lstrip("/")
        mounts.append(f"mkdir -p {q(target)} && mount --bind {q(host)} {q(target)}")
    merged = dict(CLEAN_ENV, **(env or {}))
    inner = " ".join(q(a) for a in ["/usr/bin/env", "-i",
                                     *(f"{k}={v}" for k, v in sorted(merged.items())), *argv])
    script = " && ".join([*mounts, f"chroot {q(rootfs)} {inner}"])
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--fork",
                           "sh", "-c", script], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise UserError(f"{what} failed in the Debian root:\n{tail}")
    return proc.stdout


def q(value) -> str:
    return shlex.quote(str(value))
