"""A Debian root made by extraction, for any architecture, without running its code.

The locked .debs are unpacked in lock order (``dpkg-deb --fsys-tarfile`` into ``tar -x``, owners
and modes as packed); the slimming rules of the mmdebstrap root (``debian_rootfs.DPKG_CONFIG``)
are applied after, as its customize hook does; then dpkg's database is written as dpkg would have
left it: ``/var/lib/dpkg/status`` (every package ``install ok installed``, fields in dpkg's
order, ``Conffiles`` with the md5 of each installed conffile), ``info/<pkg>.list`` (every path of
the package's data, excluded ones too, as dpkg lists them), ``.md5sums``, ``.conffiles``, the
maintainer scripts, ``shlibs``/``symbols``/``triggers``/``templates``/``config``, the trigger
interests under ``triggers/``, ``arch``, ``diversions``, ``alternatives/``. So ``dpkg-query -W``
and scanners (Trivy, Syft, Grype read the status file and the .list/.md5sums files) see every
package.

No maintainer script runs. What the scripts of this package set do, done here by hand:

- base-passwd (postinst): /etc/passwd and /etc/group from /usr/share/base-passwd/*.master;
- passwd (postinst, ``shadowconfig on``): the password fields moved to /etc/shadow and
  /etc/gshadow, every account locked (``*``), last change the day of SOURCE_DATE_EPOCH, as
  pwconv writes them, and the shadow tools' backups (passwd-, group-, ...) and .pwd.lock;
  /etc/subuid and /etc/subgid (empty);
- apt (postinst, adduser): the ``_apt`` system user (uid 100, group nogroup);
- openssh-client (postinst): the ``ssh`` group (gid 101, ``!`` in gshadow) that ssh-agent is
  setgid to (chgrp and chmod 2755, as the script does: no statoverride);
- dash (preinst/postinst): the diversions of /bin/sh and sh.1.gz, /bin/sh -> dash;
- update-alternatives (mawk, util-linux, openssh-client, tar, bash): awk, nawk, pager, rcp,
  rlogin, rmt, rsh and builtins.7.gz (ALTERNATIVE_SET): the records under
  /var/lib/dpkg/alternatives/ and the links whose targets the slimming kept;
- update-rc.d (util-linux's hwclock.sh, procps): the /etc/rc?.d links (LINKS);
- base-files (postinst): the FHS folders (/media, /opt, /srv, /usr/local/*, /var/mail
  root:mail 2775, /run/lock 1777), /var/run and /var/lock links, /etc/dpkg/origins/default,
  and the copies (COPIES) of /etc/profile, /etc/motd, /root/.profile, /root/.bashrc;
  libc-bin's /etc/nsswitch.conf, adduser's /etc/adduser.conf, readline's /etc/inputrc
  (copied with their mtimes, as ``cp -p``);
- netbase (/etc/hosts, /etc/networks), libpam-modules (/etc/environment,
  /etc/security/opasswd), locales (/etc/locale.gen, every supported locale commented out;
  /etc/default/locale), python3 (/etc/python3/debian_config), python3.9
  (/var/lib/python/python3.9_installed), coreutils (the /usr/bin/touch link), mmdebstrap
  itself (/etc/fstab, 99mmdebstrap): LITERALS;
- pam-auth-update (libpam-runtime): /etc/pam.d/common-* and /var/lib/pam/*, copied from
  rules/debian/pam_auth_update/ (what the script writes for the profiles PAM_PROFILES, whose
  sha256 are checked: other profiles are refused);
- deb-systemd-helper enable (apt, e2fsprogs, util-linux): the units of SYSTEMD_UNITS that
  the root holds, linked into /etc/systemd/system/<target>.wants and recorded under
  /var/lib/systemd/deb-systemd-helper-enabled (no systemd runs in the image; kept the same);
- tzdata (postinst, debconf default Etc/UTC): /etc/localtime and /etc/timezone;
- ca-certificates (postinst, update-ca-certificates): /etc/ca-certificates.conf naming every
  certificate, /etc/ssl/certs/<name>.pem links, their OpenSSL subject-hash links (computed by
  the host's openssl, which hashes as 1.1 does) and ca-certificates.crt;
- libc-bin (trigger, ldconfig): /etc/ld.so.cache; for the build's own architecture by the
  root's ldconfig (static, ``-r``); for another one not at all (see ``ld_so_cache``);
- python3 (postinst, py3compile) and the root recipe: the standard library's .pyc (see
  ``compile_stdlib``).

Not done (against the mmdebstrap root; nothing in the image reads them at run time):

- debconf's database (/var/cache/debconf/config.dat, templates.dat, passwords.dat): an ONBUILD
  ``apt-get install`` starts it afresh, with the defaults;
- the .pyc of /usr/share/python3 (py3versions, debpython) that py3compile's own run leaves.

The whole root is made in a child process with umask 022, a fixed environment (TZ=UTC,
LC_ALL=C.UTF-8, PATH) and / as working folder (``make``): made under the caller's umask
077, 179 entries had other modes than under 022 (see ``make``).

What ``tools/compare_roots.py`` says against the mmdebstrap root is in docs/arm64.md.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rules.common.errors import UserError, raise_if_interrupted
from rules.fetch import download

RECIPE = 2  # bump when the way the root is made changes (2: umask 022, MAKE_ENV)

# dpkg's order of the fields it writes to status (lib/dpkg/parse.c, fieldinfos); the rest
# follow in the order of the control file
STATUS_ORDER = ["Package", "Essential", "Protected", "Status", "Priority", "Section",
                "Installed-Size", "Origin", "Maintainer", "Bugs", "Architecture", "Multi-Arch",
                "Source", "Version", "Config-Version", "Replaces", "Provides", "Depends",
                "Pre-Depends", "Recommends", "Suggests", "Breaks", "Conflicts", "Enhances",
                "Conffiles", "Filename", "Size", "MD5sum", "MSDOS-Filename", "Description",
                "Triggers-Pending", "Triggers-Awaited"]
INFO_FILES = ("conffiles", "config", "md5sums", "postinst", "postrm", "preinst", "prerm",
              "shlibs", "symbols", "templates", "triggers")
TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}


def unpack(packages: list[dict], cache: Path, target: Path) -> dict[str, dict]:
    """Unpack the packages into ``target``; per package its control members and paths."""
    blobs = []
    for p in packages:
        blob = download.cas_path(cache, p["sha256"])
        if not blob.exists():
            raise UserError(f"{p['filename']} is not in the cache: run `invoke fetch`")
        blobs.append(blob)

    def data(blob: Path) -> bytes:
        proc = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(blob)], capture_output=True)
        if proc.returncode != 0:
            raise UserError(f"cannot unpack {blob.name}: {proc.stderr.decode().strip()}")
        return proc.stdout

    out = {}
    with ThreadPoolExecutor(2) as pool:  # decompressing overlaps writing
        for p, blob, tar in zip(packages, blobs, pool.map(data, blobs)):
            proc = subprocess.run(["tar", "-x", "-p", "--same-owner", "--numeric-owner",
                                   "--no-overwrite-dir", "-C", str(target), "-f", "-"],
                                  input=tar, capture_output=True)
            if proc.returncode != 0:
                raise UserError(f"cannot unpack {p['filename']}: {proc.stderr.decode().strip()}")
            with tarfile.open(fileobj=io.BytesIO(tar)) as t:
                paths = [m.name for m in t]
            out[p["name"]] = {"paths": paths, "control": control_members(blob)}
    return out


def control_members(deb: Path) -> dict[str, tuple[bytes, int]]:
    """The files of a .deb's control.tar (control, md5sums, conffiles, scripts, ...): their
    bytes and mtimes (dpkg keeps the mtimes in info/)."""
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise UserError(f"{deb}: not a .deb")
        while len(header := f.read(60)) == 60:
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
            body = f.read(size)
            f.read(size % 2)
            if name.startswith("control.tar"):
                with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                    return {m.name.removeprefix("./"): (tar.extractfile(m).read(), m.mtime)
                            for m in tar if m.isfile()}
    raise UserError(f"{deb}: no control.tar")


def _dpkg_config() -> list[str]:
    from rules.debian.debian_rootfs import DPKG_CONFIG as rules  # (it imports this module)

    return rules


def slim(root: Path) -> None:
    """What DPKG_CONFIG leaves out (manuals, info, docs but copyrights, locales but
    locale.alias, lintian overrides), removed as the mmdebstrap root's customize hook does."""
    for rel in ("usr/share/man", "usr/share/info", "usr/share/lintian"):
        for child in sorted((root / rel).glob("*")) if (root / rel).is_dir() else []:
            _remove(child)
    doc = root / "usr/share/doc"
    if doc.is_dir():
        for path in sorted(doc.rglob("*"), reverse=True):
            rel = path.relative_to(doc).parts
            if path.is_symlink() or not path.is_dir():
                if not (len(rel) >= 2 and rel[-1] == "copyright"):  # dpkg's * spans /
                    path.unlink()
            elif not any(path.iterdir()):
                path.rmdir()
    locale = root / "usr/share/locale"
    for child in sorted(locale.glob("*")) if locale.is_dir() else []:
        if child.name != "locale.alias":
            _remove(child)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def parse_control(text: str) -> list[tuple[str, str]]:
    """A control paragraph as (field, value) pairs in order; continuation lines kept."""
    fields: list[tuple[str, str]] = []
    for line in text.rstrip("\n").split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + "\n" + line)
        elif line:
            name, _, value = line.partition(":")
            fields.append((name, value[1:] if value.startswith(" ") else value))
    return fields


def info_name(control: dict[str, str], arch: str) -> str:
    """dpkg's name for a package's files under info/: ``pkg:arch`` when Multi-Arch: same."""
    if control.get("Multi-Arch") == "same":
        return f"{control['Package']}:{control.get('Architecture', arch)}"
    return control["Package"]


def write_database(root: Path, unpacked: dict[str, dict], arch: str) -> None:
    """/var/lib/dpkg as dpkg leaves it after installing the packages."""
    dpkg = root / "var/lib/dpkg"
    info = dpkg / "info"
    for sub in ("info", "updates", "parts", "alternatives", "triggers"):
        (dpkg / sub).mkdir(parents=True, exist_ok=True)
    stanzas, interests = [], {}
    for name in sorted(unpacked):
        members = {k: v[0] for k, v in unpacked[name]["control"].items()}
        mtimes = {k: v[1] for k, v in unpacked[name]["control"].items()}
        fields = parse_control(members["control"].decode("utf-8"))
        control = dict(fields)
        base = info_name(control, arch)
        listed = ["/."] + [_listed(p) for p in unpacked[name]["paths"] if _listed(p) != "/."]
        (info / f"{base}.list").write_text("".join(f"{p}\n" for p in listed))
        for member in INFO_FILES:
            if member in members:
                dest = info / f"{base}.{member}"
                dest.write_bytes(members[member])
                dest.chmod(0o755 if member in ("config", "postinst", "postrm", "preinst",
                                               "prerm") else 0o644)
                os.utime(dest, (mtimes[member], mtimes[member]))
        conffiles = [c.strip() for c in members.get("conffiles", b"").decode().splitlines()
                     if c.strip()]
        if conffiles:
            lines = []
            for path in conffiles:
                target = root / path.lstrip("/")
                md5 = (hashlib.md5(target.read_bytes()).hexdigest()
                       if target.is_file() else "newconffile")
                lines.append(f" {path} {md5}")
            fields.append(("Conffiles", "\n" + "\n".join(lines)))
        fields.append(("Status", "install ok installed"))
        for line in members.get("triggers", b"").decode().splitlines():
            words = line.split()
            if len(words) == 2 and words[0].startswith("interest"):
                interests.setdefault(words[1], []).append(
                    name + ("/noawait" if words[0].endswith("-noawait") else ""))
        stanzas.append(_status_stanza(fields))
    (dpkg / "status").write_text("".join(f"{s}\n" for s in stanzas))
    (info / "format").write_text("1\n")
    (dpkg / "arch").write_text(f"{arch}\n")
    for trigger, pkgs in sorted(interests.items()):
        if not trigger.startswith("/"):
            (dpkg / "triggers" / trigger).write_text("".join(f"{p}\n" for p in pkgs))
    files = [f"{t} {p}\n" for t, pkgs in sorted(interests.items()) if t.startswith("/")
             for p in pkgs]
    if files:
        (dpkg / "triggers" / "File").write_text("".join(files))
    for empty, mode in (("triggers/Unincorp", 0o644), ("triggers/Lock", 0o600),
                        ("lock", 0o640), ("lock-frontend", 0o640)):
        (dpkg / empty).write_bytes(b"")
        (dpkg / empty).chmod(mode)


def _listed(member: str) -> str:
    path = "/" + member.removeprefix("./").rstrip("/")
    return "/." if path == "/" else path


def _status_stanza(fields: list[tuple[str, str]]) -> str:
    known = {f: i for i, f in enumerate(STATUS_ORDER)}
    ordered = sorted(enumerate(fields), key=lambda e: (known.get(e[1][0], len(known)), e[0]))
    out = []
    for _, (name, value) in ordered:
        if value.startswith("\n") or not value:
            out.append(f"{name}:{value}\n")
        else:
            out.append(f"{name}: {value}\n")
    return "".join(out)


def configure(root: Path, arch: str, epoch: int) -> None:
    """What the maintainer scripts of this package set would have done (module docstring)."""
    etc = root / "etc"
    # base-passwd, apt (_apt), openssh-client (ssh group)
    passwd = (root / "usr/share/base-passwd/passwd.master").read_text()
    group = (root / "usr/share/base-passwd/group.master").read_text()
    passwd += "_apt:*:100:65534::/nonexistent:/usr/sbin/nologin\n"
    group += "ssh:*:101:\n"
    # shadowconfig on (pwconv, grpconv): the password field moves to the shadow files
    passwd = "".join(_x(line) for line in passwd.splitlines(keepends=True))
    group = "".join(_x(line) for line in group.splitlines(keepends=True))
    _write(etc / "passwd", passwd, 0o644)
    _write(etc / "group", group, 0o644)
    day = epoch // 86400
    shadow = "".join(f"{line.split(':')[0]}:*:{day}:0:99999:7:::\n"
                     for line in passwd.splitlines())
    gshadow = "".join(f"{line.split(':')[0]}:{'!' if line.startswith('ssh:') else '*'}::"
                      f"{_members(line)}\n" for line in group.splitlines())
    _write(etc / "passwd", passwd, 0o644)
    _write(etc / "shadow", shadow, 0o640, gid=42)
    _write(etc / "group", group, 0o644)
    _write(etc / "gshadow", gshadow, 0o640, gid=42)
    # the shadow tools' backups: the files before the last change (groupadd ssh)
    _write(etc / "passwd-", passwd, 0o644)
    _write(etc / "shadow-", shadow, 0o640, gid=42)
    _write(etc / "group-", group.removesuffix("ssh:x:101:\n"), 0o644)
    _write(etc / "gshadow-", gshadow.removesuffix("ssh:!::\n"), 0o640, gid=42)
    _write(etc / ".pwd.lock", "", 0o600)
    # openssh-client: ssh-agent setgid ssh (chgrp and chmod, no statoverride)
    agent = root / "usr/bin/ssh-agent"
    if agent.exists():
        os.chown(agent, 0, 101)
        agent.chmod(0o2755)
    base_files(root)
    for path, text, mode in LITERALS:
        _write(root / path, text, mode)
    for path, source in COPIES:  # cp -p
        if (root / source).is_file():
            _write(root / path, (root / source).read_text(), 0o644)
            st = (root / source).stat()
            os.utime(root / path, (st.st_mtime, st.st_mtime))
    for path, target in LINKS:
        if (root / path).parent.joinpath(target).exists():
            _symlink(root / path, target)
    (root / "usr/local/share/ca-certificates").mkdir(parents=True, exist_ok=True)
    supported = root / "usr/share/i18n/SUPPORTED"
    if supported.is_file():  # locales: every supported locale, commented out
        lines = sorted({f"# {line}" for line in supported.read_text().splitlines() if line})
        _write(root / "etc/locale.gen", _LOCALE_GEN + "".join(f"{x}\n" for x in lines), 0o644)
    if (root / "bin/touch").exists():  # coreutils: the compatibility link
        _symlink(root / "usr/bin/touch", "/bin/touch")
    # dash
    _write(root / "var/lib/dpkg/diversions",
           "/usr/share/man/man1/sh.1.gz\n/usr/share/man/man1/sh.distrib.1.gz\ndash\n"
           "/bin/sh\n/bin/sh.distrib\ndash\n", 0o644)
    _symlink(root / "bin/sh", "dash")
    # tzdata
    _symlink(etc / "localtime", "/usr/share/zoneinfo/Etc/UTC")
    _write(etc / "timezone", "Etc/UTC\n", 0o644)
    # python3.9-minimal
    (root / "usr/local/lib/python3.9/dist-packages").mkdir(parents=True, exist_ok=True)
    alternatives(root)
    systemd_enable(root)
    pam_auth_update(root)
    ca_certificates(root)
    ld_so_cache(root, arch)


def base_files(root: Path) -> None:
    """base-files' postinst: the FHS folders, /var/run and /var/lock, /etc/dpkg/origins."""
    for rel, mode, gid in (("media", 0o755, 0), ("opt", 0o755, 0), ("srv", 0o755, 0),
                           ("etc/opt", 0o755, 0), ("var/opt", 0o755, 0),
                           ("var/mail", 0o2775, 8), ("run/lock", 0o1777, 0),
                           *((f"usr/local/{d}", 0o755, 0) for d in (
                               "bin", "etc", "games", "include", "lib", "sbin", "share",
                               "share/man", "src"))):
        path = root / rel
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, 0, gid)
        path.chmod(mode)
    for rel, target in (("var/run", "/run"), ("var/lock", "/run/lock"),
                        ("var/spool/mail", "../mail"), ("usr/local/man", "share/man"),
                        ("etc/dpkg/origins/default", "debian")):
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        _symlink(path, target)


# small files maintainer scripts (and mmdebstrap) write: path, text, mode
LITERALS = [
    ("etc/fstab", "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n", 0o644),  # mmdebstrap
    ("etc/apt/apt.conf.d/99mmdebstrap", 'Acquire::Check-Valid-Until "false";\n', 0o644),
    ("etc/hosts", "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
     "ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n\n", 0o644),  # netbase
    ("etc/networks", "default\t\t0.0.0.0\nloopback\t127.0.0.0\nlink-local\t169.254.0.0\n\n",
     0o644),  # netbase
    ("etc/shells", "# /etc/shells: valid login shells\n/bin/sh\n/bin/bash\n/bin/rbash\n"
     "/bin/dash\n", 0o644),  # debianutils' add-shell, from bash and dash
    ("etc/subuid", "", 0o644), ("etc/subgid", "", 0o644),  # passwd
    ("etc/environment", "", 0o644), ("etc/security/opasswd", "", 0o600),  # libpam-modules
    ("etc/default/locale", "#  File generated by update-locale\n", 0o644),  # locales
    ("etc/python3/debian_config", "[DEFAULT]\n# how to byte-compile (comma separated: "
     "standard, optimize)\nbyte-compile = standard\n", 0o644),  # python3
    ("var/lib/python/python3.9_installed", "", 0o644),  # python3.9
]
# update-rc.d's links (util-linux's hwclock.sh, procps): path, target
LINKS = [
    ("etc/rc0.d/K01hwclock.sh", "../init.d/hwclock.sh"),
    ("etc/rc6.d/K01hwclock.sh", "../init.d/hwclock.sh"),
    ("etc/rcS.d/S01hwclock.sh", "../init.d/hwclock.sh"),
    ("etc/rcS.d/S01procps", "../init.d/procps"),
]
# files postinst scripts copy from the package's own: path, source
COPIES = [
    ("etc/profile", "usr/share/base-files/profile"),
    ("etc/motd", "usr/share/base-files/motd"),
    ("root/.profile", "usr/share/base-files/dot.profile"),
    ("root/.bashrc", "usr/share/base-files/dot.bashrc"),
    ("etc/nsswitch.conf", "usr/share/libc-bin/nsswitch.conf"),
    ("etc/adduser.conf", "usr/share/adduser/adduser.conf"),
    ("etc/inputrc", "usr/share/readline/inputrc"),
]
_LOCALE_GEN = """\
# This file lists locales that you wish to have built. You can find a list
# of valid supported locales at /usr/share/i18n/SUPPORTED, and you can add
# user defined locales to /usr/local/share/i18n/SUPPORTED. If you change
# this file, you need to rerun locale-gen.


"""


def _x(line: str) -> str:
    fields = line.split(":")
    return ":".join([fields[0], "x", *fields[2:]])


def _members(group_line: str) -> str:
    return group_line.rstrip("\n").split(":")[3] if group_line.count(":") >= 3 else ""


def _write(path: Path, text: str, mode: int, gid: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chown(path, 0, gid)
    path.chmod(mode)


def _symlink(path: Path, target: str) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


# name -> (link, best path, priority, slaves [(name, link, path)]): what the postinst
# scripts register; a slave whose path the slimming removed (a manual) gets no link, as
# update-alternatives leaves none
ALTERNATIVE_SET = {
    "awk": ("/usr/bin/awk", "/usr/bin/mawk", 5, [
        ("awk.1.gz", "/usr/share/man/man1/awk.1.gz", "/usr/share/man/man1/mawk.1.gz"),
        ("nawk", "/usr/bin/nawk", "/usr/bin/mawk"),
        ("nawk.1.gz", "/usr/share/man/man1/nawk.1.gz", "/usr/share/man/man1/mawk.1.gz")]),
    "builtins.7.gz": ("/usr/share/man/man7/builtins.7.gz",
                      "/usr/share/man/man7/bash-builtins.7.gz", 10, []),
    "pager": ("/usr/bin/pager", "/bin/more", 50, [
        ("pager.1.gz", "/usr/share/man/man1/pager.1.gz", "/usr/share/man/man1/more.1.gz")]),
    "rcp": ("/usr/bin/rcp", "/usr/bin/scp", 20, [
        ("rcp.1.gz", "/usr/share/man/man1/rcp.1.gz", "/usr/share/man/man1/scp.1.gz")]),
    "rlogin": ("/usr/bin/rlogin", "/usr/bin/slogin", 20, [
        ("rlogin.1.gz", "/usr/share/man/man1/rlogin.1.gz",
         "/usr/share/man/man1/slogin.1.gz")]),
    "rmt": ("/usr/sbin/rmt", "/usr/sbin/rmt-tar", 50, [
        ("rmt.8.gz", "/usr/share/man/man8/rmt.8.gz", "/usr/share/man/man8/rmt-tar.8.gz")]),
    "rsh": ("/usr/bin/rsh", "/usr/bin/ssh", 20, [
        ("rsh.1.gz", "/usr/share/man/man1/rsh.1.gz", "/usr/share/man/man1/ssh.1.gz")]),
}


PAM_FILES = Path(__file__).parent / "pam_auth_update"
PAM_PROFILES = {  # /usr/share/pam-configs/* the files of PAM_FILES were written for
    "mkhomedir": "ea2840c7336e177f75943580824fe69a5edff790c30c1c40c286462151e22dfa",
    "unix": "66528ec667294fd2eaa1418ad4372f51e0c9a8fbe628275242276ca070639276",
}


def pam_auth_update(root: Path) -> None:
    """pam-auth-update's output for the known profiles (PAM_FILES), else an error."""
    configs = root / "usr/share/pam-configs"
    if not configs.is_dir():
        return
    found = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in configs.iterdir()}
    if found != PAM_PROFILES:
        raise UserError("the PAM profiles of the Debian lock are not the ones "
                        "rules/debian/pam_auth_update/ was written for: "
                        f"{sorted(found)}; write it again from a root where pam-auth-update ran")
    for source in sorted(PAM_FILES.rglob("*")):
        if source.is_file() and source.name != "README.md":
            target = root / source.relative_to(PAM_FILES)
            _write(target, source.read_text(), 0o644)


def pam_digest() -> str:
    h = hashlib.sha256()
    for source in sorted(PAM_FILES.rglob("*")):
        if source.is_file():
            h.update(source.relative_to(PAM_FILES).as_posix().encode() + b"\0"
                     + source.read_bytes() + b"\0")
    return h.hexdigest()


# the units the postinst scripts enable: (unit, the target that wants it)
SYSTEMD_UNITS = [("apt-daily-upgrade.timer", "timers.target"), ("apt-daily.timer", "timers.target"),
                 ("e2scrub_all.timer", "timers.target"), ("e2scrub_reap.service", "default.target"),
                 ("fstrim.timer", "timers.target")]


def systemd_enable(root: Path) -> None:
    """deb-systemd-helper enable, for the units of SYSTEMD_UNITS the root holds."""
    state = root / "var/lib/systemd/deb-systemd-helper-enabled"
    for unit, target in SYSTEMD_UNITS:
        if not (root / "lib/systemd/system" / unit).exists():
            continue
        link = f"/etc/systemd/system/{target}.wants/{unit}"
        _symlink(root / link.lstrip("/"), f"/lib/systemd/system/{unit}")
        _write(state / f"{target}.wants" / unit, "", 0o644)
        _write(state / f"{unit}.dsh-also", f"{link}\n", 0o644)


def alternatives(root: Path) -> None:
    """update-alternatives --install, as the postinst scripts call it (ALTERNATIVE_SET)."""
    for name, (link, path, priority, slaves) in sorted(ALTERNATIVE_SET.items()):
        record = ["auto", link] + [x for s in slaves for x in (s[0], s[1])] + ["", path,
                                                                                 str(priority)]
        record += [s[2] for s in slaves] + [""]
        _write(root / "var/lib/dpkg/alternatives" / name, "\n".join(record) + "\n", 0o644)
        for alt, alt_link, alt_path in [(name, link, path), *slaves]:
            if not (root / alt_path.lstrip("/")).exists():
                continue
            _symlink(root / "etc/alternatives" / alt, alt_path)
            _symlink(root / alt_link.lstrip("/"), f"/etc/alternatives/{alt}")


def ca_certificates(root: Path) -> None:
    """update-ca-certificates, for a fresh install (every certificate enabled)."""
    share = root / "usr/share/ca-certificates"
    if not share.is_dir():
        return
    certs = sorted(p.relative_to(share).as_posix() for p in share.rglob("*.crt"))
    header = (root / "etc/ca-certificates.conf")
    _write(header, _CA_CONF_HEADER + "".join(f"{c}\n" for c in certs), 0o644)
    out = root / "etc/ssl/certs"
    out.mkdir(parents=True, exist_ok=True)
    bundle, hashes = [], {}
    for cert in certs:
        pem = Path(cert).name.removesuffix(".crt") + ".pem"
        _symlink(out / pem, f"/usr/share/ca-certificates/{cert}")
        data = (share / cert).read_text()
        bundle.append(data if data.endswith("\n") else data + "\n")
        h = subprocess.run(["openssl", "x509", "-subject_hash", "-noout", "-in",
                            str(share / cert)], capture_output=True, text=True, check=True)
        hashes.setdefault(h.stdout.strip(), []).append(pem)
    for h, pems in sorted(hashes.items()):
        for i, pem in enumerate(sorted(pems)):
            _symlink(out / f"{h}.{i}", pem)
    _write(out / "ca-certificates.crt", "".join(bundle), 0o644)


_CA_CONF_HEADER = """\
# This file lists certificates that you wish to use or to ignore to be
# installed in /etc/ssl/certs.
# update-ca-certificates(8) will update /etc/ssl/certs by reading this file.
#
# This is autogenerated by dpkg-reconfigure ca-certificates.
# Certificates should be installed under /usr/share/ca-certificates
# and files with extension '.crt' is recognized as available certs.
#
# line begins with # is comment.
# line begins with ! is certificate filename to be deselected.
#
"""


def ld_so_cache(root: Path, arch: str) -> None:
    """/etc/ld.so.cache. For the host's own architecture, the root's ldconfig (statically
    linked, bullseye's glibc: the same bytes libc-bin's trigger writes). For another one no
    cache is written: Debian's ld.so searches its multiarch folders (/lib/<triplet>,
    /usr/lib/<triplet>) without one, so every library of the root is found; only the order
    and speed of the search differ."""
    if arch != host_arch():
        return
    proc = subprocess.run([str(root / "sbin/ldconfig"), "-r", str(root)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise UserError(f"ldconfig failed in the root: {proc.stderr.strip()}")
    aux = root / "var/cache/ldconfig/aux-cache"
    if aux.exists():
        aux.unlink()


def host_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def finish(root: Path, sources: str) -> None:
    """What the mmdebstrap recipe writes or removes around the packages."""
    cfg = root / "etc/dpkg/dpkg.cfg.d/runtime"
    _write(cfg, "".join(f"{rule}\n" for rule in _dpkg_config()), 0o644)
    _write(root / "etc/apt/sources.list", sources, 0o644)
    _write(root / "etc/machine-id", "", 0o644)
    for rel in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel).chmod(0o700)
    for rel in ("var/lib/apt/lists/lock", "var/cache/apt/archives/lock"):
        _write(root / rel, "", 0o640)
    for child in sorted((root / "var/log").glob("*")):
        _remove(child)
    _write(root / "var/lib/apt/extended_states", "", 0o644)
    for rel in ("dev", "proc", "sys", "tmp", "mnt", "run"):
        (root / rel).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)


COMPILE_ENV = {"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin"}  # the customize hook's `env -i`
STDLIB_DIRS = ("/usr/lib/python3.9", "/usr/lib/python3/dist-packages")


def compile_stdlib(root: Path, compiler_root: Path | None = None) -> None:
    """The standard library's .pyc (unchecked-hash, single process, hash seed 0, the
    environment of the mmdebstrap root's customize hook), compiled in the root itself.

    For the build's own architecture (``compiler_root`` None) the root's python3.9 runs in a
    chroot, as in the mmdebstrap root. For another one, the same chroot, but the interpreter is
    the build's: the python3.9 of ``compiler_root`` -- a root of the build's architecture made
    from the same package set (the amd64 root of the main lock) -- with its loader, libraries
    and lib-dynload bound over the root's. Bytecode does not depend on the architecture, but
    marshal's reference flags in a .pyc depend on which objects the compiling process holds:
    running in the root itself, with the root's own pure modules, site configuration and paths,
    and the libraries the extension modules link, the process is the one the root's own
    python3.9 would be. Tested .pyc for .pyc against arm64's python3.9 under qemu-user
    (tools/check_foreign_root.py): all 638 byte-identical. With the six-package python root
    (rules.debian.python_root) as the compiler instead, 17 differ (zipfile, tarfile, lzma, ...:
    its extension modules cannot load libbz2, liblzma, ...), and compiling in the python root
    instead of inside the foreign root, 77."""
    dirs = [d for d in STDLIB_DIRS if (root / d.lstrip("/")).is_dir()]
    for d in dirs:
        for cache in sorted((root / d.lstrip("/")).rglob("__pycache__")):
            shutil.rmtree(cache)
    if compiler_root is None:
        from rules.debian import chroot

        for d in dirs:
            chroot.run(root, ["python3.9", "-m", "compileall", "-q", "-j", "1",
                              "--invalidation-mode", "unchecked-hash", d],
                       what="byte-compiling the standard library", base_env=COMPILE_ENV)
        return
    _compile_with(root, Path(compiler_root), dirs)


# what of the compiler root is bound over the foreign root while compiling
_BORROWED = ("usr/bin/python3.9", "lib64", "lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu",
             "usr/lib/python3.9/lib-dynload")


def _compile_with(root: Path, compiler_root: Path, dirs: list[str]) -> None:
    from rules.debian.chroot import CHROOT, q

    created = []
    mounts = [f"mount --rbind /dev {q(root / 'dev')}", f"mount -t proc proc {q(root / 'proc')}",
              f"mount -t tmpfs tmpfs {q(root / 'tmp')}"]
    for rel in _BORROWED:
        source, target = compiler_root / rel, root / rel
        if not source.exists():
            continue
        if not target.exists():
            if source.is_dir():
                target.mkdir(parents=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
            created.append(target)
        mounts.append(f"mount --bind {q(source)} {q(target)}")
    try:
        for d in dirs:
            inner = " ".join(q(a) for a in ["env", "-i", *(f"{k}={v}" for k, v in
                                                           sorted(COMPILE_ENV.items())),
                                             CHROOT, str(root), "python3.9", "-m", "compileall",
                                             "-q", "-j", "1", "--invalidation-mode",
                                             "unchecked-hash", d])
            proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--fork",
                                   "sh", "-c", " && ".join([*mounts, inner])],
                                  capture_output=True, text=True,
                                  preexec_fn=lambda: os.umask(0o022))
            if proc.returncode != 0:
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
                raise UserError(f"byte-compiling {d} failed:\n{tail}")
    finally:
        for target in reversed(created):
            if target.is_dir():
                target.rmdir()
            else:
                target.unlink()


def recipe_digest() -> str:
    """The digest of this recipe (an input of the root's action): what is done by hand."""
    from rules.graph.action import digest

    return digest(["extract", RECIPE, _dpkg_config(), STATUS_ORDER, INFO_FILES, LITERALS, COPIES,
                   LINKS, sorted(ALTERNATIVE_SET.items()), _CA_CONF_HEADER, _LOCALE_GEN,
                   sorted(COMPILE_ENV.items()), STDLIB_DIRS, PAM_PROFILES, pam_digest(),
                   SYSTEMD_UNITS, MAKE_UMASK, sorted(MAKE_ENV.items())])


# The environment the root is made in (``make``): nothing of the caller's but the arguments.
MAKE_UMASK = 0o022  # mmdebstrap's and dpkg's: folders 755, files 644 unless a mode is given
MAKE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LC_ALL": "C.UTF-8", "TZ": "UTC", "PYTHONHASHSEED": "0"}
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding `rules`
_FAILED = 3  # the child's exit code for a UserError (its message on stderr)


def make(packages: list[dict], cache: Path, target: Path, arch: str, epoch: int,
         sources: str, compiler_root: Path | None = None) -> None:
    """Make the root in the empty folder ``target``; ``compiler_root`` (for a foreign
    ``arch``): a root of the build's architecture and the same package set, see
    ``compile_stdlib``.

    The root is made in a child process with umask 022 (MAKE_UMASK), the environment MAKE_ENV
    and / as its working folder, so it does not depend on the caller's. Made in the caller's
    process, 179 entries differed in mode (nothing else) between umask 022 and 077, all
    written here without an explicit mode: 166 files 644 -> 600 (/var/lib/dpkg/status, arch,
    info/format and the 160 info/*.list, the 3 trigger interest files of triggers/) and 13 folders
    755 -> 700 made by ``mkdir`` (/var/lib/dpkg/triggers, /var/lib/python, /usr/local,
    /usr/local/lib/python3.9 and its dist-packages, /usr/local/share/ca-certificates,
    /etc/python3, /mnt, the systemd .wants folders and deb-systemd-helper's state folders);
    and the root folder itself, which the caller makes (now 755). Fixing the modes one call at
    a time would leave the next new ``mkdir`` to chance; the build process's own umask cannot
    be set instead: its actions run in threads of one process. TZ, locale and working folder
    changed nothing, but are fixed here as well
    (tests/rules/debian/test_extract_root.py makes the root under both)."""
    if arch != host_arch() and compiler_root is None:
        raise UserError(f"a {arch} root needs a {host_arch()} root of the same packages to "
                        "byte-compile its standard library")
    args = {"packages": packages, "cache": str(Path(cache).resolve()),
            "target": str(Path(target).resolve()), "arch": arch, "epoch": epoch,
            "sources": sources,
            "compiler_root": None if compiler_root is None else str(Path(compiler_root).resolve())}
    proc = subprocess.run([sys.executable, "-c", "from rules.debian.extract_root import _child; "
                           "raise SystemExit(_child())"], input=json.dumps(args),
                          capture_output=True, text=True, cwd="/", umask=MAKE_UMASK,
                          env=dict(MAKE_ENV, PYTHONPATH=str(PACKAGE_ROOT)))
    if proc.returncode == _FAILED:
        raise UserError(proc.stderr.strip())
    if proc.returncode != 0:
        raise_if_interrupted(proc.returncode)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise UserError(f"making the Debian root by extraction failed (exit code "
                        f"{proc.returncode}):\n{tail}")


def _make(packages: list[dict], cache: Path, target: Path, arch: str, epoch: int,
          sources: str, compiler_root: Path | None) -> None:
    """``make``'s work, in its child process."""
    target.chmod(0o755)  # (made by the caller, with the caller's umask)
    unpacked = unpack(sorted(packages, key=lambda p: p["name"]), cache, target)
    slim(target)
    write_database(target, unpacked, arch)
    configure(target, arch, epoch)
    finish(target, sources)
    compile_stdlib(target, None if arch == host_arch() else compiler_root)


def _child() -> int:
    """The child process of ``make``: its arguments as JSON on stdin."""
    a = json.load(sys.stdin)
    try:
        _make(a["packages"], Path(a["cache"]), Path(a["target"]), a["arch"], a["epoch"],
              a["sources"], None if a["compiler_root"] is None else Path(a["compiler_root"]))
    except UserError as e:
        print(e, file=sys.stderr)
        return _FAILED
    return 0


def check_elf(root: Path, arch: str) -> list[str]:
    """Shared objects and executables of the root whose ELF machine is not ``arch``'s."""
    machine = {"amd64": 62, "arm64": 183}[arch]
    wrong = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            with open(path, "rb") as f:
                head = f.read(20)
            if head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") != machine:
                wrong.append("/" + path.relative_to(root).as_posix())
    return sorted(wrong)

