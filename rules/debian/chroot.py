"""Run a command inside a Debian root (the image's own python3.9).

Everything happens in a private mount namespace (`unshare --mount`), so the mounts vanish with
the process, even on kill -9. The cached root itself is never written: /dev and /proc are
mounted over it, /tmp is a tmpfs, and host folders appear only below /mnt (a scratch folder of
the caller's, mounted first).
"""

import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from rules.common.errors import UserError, raise_if_interrupted

CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
             "HOME": "/tmp", "PYTHONHASHSEED": "0", "TZ": "UTC", "PIP_NO_CACHE_DIR": "1",
             "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


CHROOT = shutil.which("chroot", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/chroot"


def run(rootfs: Path, argv: list[str], binds: dict[str, Path] | None = None,
        env: dict[str, str] | None = None, what: str = "command",
        base_env: dict[str, str] = CLEAN_ENV) -> str:
    """Run ``argv`` in ``rootfs``. ``binds`` maps names below /mnt to host folders; the
    environment is ``base_env`` (CLEAN_ENV) updated with ``env``."""
    if os.geteuid() != 0:
        raise UserError("building images needs root (a chroot into the Debian base)")
    rootfs = Path(rootfs)
    with tempfile.TemporaryDirectory(prefix="runtime-mnt-") as scratch:
        mounts = [f"mount --rbind /dev {q(rootfs / 'dev')}",
                  f"mount -t proc proc {q(rootfs / 'proc')}",
                  f"mount -t tmpfs tmpfs {q(rootfs / 'tmp')}",
                  f"mount --bind {q(scratch)} {q(rootfs / 'mnt')}"]
        for name, host in sorted((binds or {}).items()):
            if "/" in name.strip("/") or not name.strip("/"):
                raise ValueError(f"bind name must be one folder name below /mnt: {name!r}")
            os.mkdir(Path(scratch) / name.strip("/"))
            mounts.append(f"mount --bind {q(host)} {q(rootfs / 'mnt' / name.strip('/'))}")
        merged = dict(base_env, **(env or {}))
        # The host's env and chroot set up the command: a root needs no coreutils of its own.
        inner = " ".join(q(a) for a in ["env", "-i", *(f"{k}={v}" for k, v in
                                                       sorted(merged.items())),
                                         CHROOT, str(rootfs), *argv])
        script = " && ".join([*mounts, inner])
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--fork",
                               "sh", "-c", script], capture_output=True, text=True,
                              preexec_fn=lambda: os.umask(0o022))
    if proc.returncode != 0:
        raise_if_interrupted(proc.returncode)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise UserError(f"{what} failed in the Debian root:\n{tail}")
    return proc.stdout


def q(value) -> str:
    return shlex.quote(str(value))
