"""Debian packages the build and its tests use on the host, installed on demand (as root)."""

import glob
import os
import shutil
import subprocess

from rules.common.errors import UserError

# package -> a file it provides, to tell whether it is there: what building needs
BUILD_PACKAGES = {
    "mmdebstrap": "/usr/bin/mmdebstrap",
    "gpgv": "/usr/bin/gpgv",
    "debian-archive-keyring": "/usr/share/keyrings/debian-archive-keyring.gpg",
    "ca-certificates": "/etc/ssl/certs/ca-certificates.crt",
    "util-linux": "/usr/bin/unshare",
    "dpkg": "/usr/bin/dpkg-deb",
}
# ... and what the tests need on top: a Docker engine to run the images, the servers the
# acceptance tests run them against, a browser for the UI checks, and a C compiler and readelf
# for the ELF stripping test (a shared library built with -g), a registry for the push tests
HOST_PACKAGES = {**BUILD_PACKAGES, "docker.io": "/usr/sbin/dockerd",
                 "postgresql": "/usr/lib/postgresql/*/bin/postgres",
                 "redis-server": "/usr/bin/redis-server",
                 "chromium": "/usr/bin/chromium", "chromium-driver": "/usr/bin/chromedriver",
                 "gcc": "/usr/bin/gcc", "binutils": "/usr/bin/readelf",
                 # the push tests' TLS registry (htpasswd -B) and the push benchmark's skopeo
                 "docker-registry": "/usr/bin/docker-registry",
                 "apache2-utils": "/usr/bin/htpasswd", "skopeo": "/usr/bin/skopeo",
                 # the arm64 image's proof: its python3.9 run user-mode (`-L root`, no binfmt)
                 "qemu-user-static": "/usr/bin/qemu-aarch64-static"}

# ... and what `invoke bench --workload` needs: the engine, the servers, and Debian's matplotlib
# for its plot (the project's venv has none)
WORKLOAD_BENCH_PACKAGES = {name: HOST_PACKAGES[name]
                           for name in ("docker.io", "postgresql", "redis-server")} | \
    {"python3-matplotlib": "/usr/lib/python3/dist-packages/matplotlib/__init__.py"}


def missing(packages: dict[str, str] = HOST_PACKAGES) -> list[str]:
    return sorted(name for name, path in packages.items() if not glob.glob(path))


def ensure(packages: dict[str, str] = HOST_PACKAGES) -> None:
    need = missing(packages)
    if not need:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise UserError(f"missing host packages: apt-get install {' '.join(need)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *need]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(f"{' '.join(cmd)} failed:\n{proc.stderr.strip()[-2000:]}")
