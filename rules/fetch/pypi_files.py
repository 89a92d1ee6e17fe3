"""Which file of each locked Python distribution the image installs, and where to get it.

A pip lock pins versions and every file's sha256, not URLs. For the target (CPython 3.9,
manylinux <= 2.31, x86_64) the best matching wheel is chosen by tag order; a distribution
with no such wheel is taken as its sdist (built into a wheel by ``rules.python.sdist_build``).
The choice for a lock is an action of the build graph (kind "file choice", keyed by the lock's
own digest): `invoke fetch` makes it (it reads the index, so it needs the network) and stores the
JSON list as a blob with its record; `invoke image` only reads it.
"""

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.request import Request, urlopen

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from rules.common import atomic
from rules.common.errors import UserError
from rules.fetch.download import cas_path
from rules.graph import action_cache, scheduler
from rules.graph.action import Action, Made

SDIST = re.compile(r"\.(tar\.gz|zip|tar\.bz2)$")


MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}  # Debian architecture -> wheel machine


def platform_for(platform: str, arch: str) -> str:
    """The toolchain's platform ("x86_64-manylinux_2_31") for another Debian architecture:
    the same libc bound, that machine ("aarch64-manylinux_2_31")."""
    if arch not in MACHINES:
        raise UserError(f"no wheel platform for architecture {arch!r} "
                        f"(known: {', '.join(MACHINES)})")
    return f"{MACHINES[arch]}-{platform.partition('-')[2]}"


def target_tags(python: str, platform: str) -> list[Tag]:
    """Tags in preference order for e.g. ("3.9", "x86_64-manylinux_2_31")."""
    arch, _, libc = platform.partition("-")
    glibc_minor = int(libc.rsplit("_", 1)[1])
    platforms = []
    for minor in range(glibc_minor, 4, -1):
        platforms.append(f"manylinux_2_{minor}_{arch}")
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}.get(minor)
        if legacy:
            platforms.append(f"{legacy}_{arch}")
    version = tuple(int(p) for p in python.split("."))
    abi = f"cp{version[0]}{version[1]}"
    return [*cpython_tags(version, [abi], platforms),
            *compatible_tags(version, abi, platforms)]


@dataclass(frozen=True)
class Chosen:
    name: str
    version: str
    filename: str
    sha256: str
    url: str
    kind: str  # "wheel" or "sdist"
    size: int = 0  # bytes of the file, as the index gives it (0: the index does not say)


def choose(name: str, version: str, files: list[dict], hashes: list[str],
           tags: list[Tag]) -> Chosen:
    """``files``: the index's entries ({filename, url, sha256}) for this version."""
    allowed = {h.removeprefix("sha256:") for h in hashes}
    rank = {tag: i for i, tag in enumerate(tags)}
    best, best_rank, sdist = None, None, None
    for f in files:
        if f["sha256"] not in allowed:
            continue
        if f["filename"].endswith(".whl"):
            _, _, _, file_tags = parse_wheel_filename(f["filename"])
            r = min((rank[t] for t in file_tags if t in rank), default=None)
            if r is not None and (best_rank is None
                                  or (r, f["filename"]) < (best_rank, best["filename"])):
                best, best_rank = f, r
        elif SDIST.search(f["filename"]):
            sdist = sdist or f
    pick = best or sdist
    if pick is None:
        raise UserError(f"{name}=={version}: no locked file fits CPython {tags[0].interpreter} "
                        f"on {tags[0].platform} (locked hashes: {len(allowed)})")
    return Chosen(name, version, pick["filename"], pick["sha256"], pick["url"],
                  "wheel" if pick is best else "sdist", int(pick.get("size") or 0))


def index_files(index_url: str, name: str, version: str) -> list[dict]:
    """The files of ``name==version`` from a PEP 691 JSON simple index."""
    url = f"{index_url.rstrip('/')}/{canonicalize_name(name)}/"
    request = Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urlopen(request, timeout=60) as response:
            data = json.load(response)
    except OSError as e:
        raise UserError(f"cannot read the index page {url}: {e}") from None
    out = []
    for f in data.get("files", []):
        if _file_version(f["filename"]) == version and "sha256" in f.get("hashes", {}):
            out.append({"filename": f["filename"], "url": f["url"],
                        "sha256": f["hashes"]["sha256"], "size": f.get("size", 0)})
    return out


def folder_files(folder: Path, name: str, version: str) -> list[dict]:
    out = []
    for path in sorted(Path(folder).iterdir()):
        if _file_version(path.name) == version and _file_name(path.name) == canonicalize_name(name):
            out.append({"filename": path.name, "url": path.resolve().as_uri(),
                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                        "size": path.stat().st_size})
    return out


def _file_name(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return canonicalize_name(parse_wheel_filename(filename)[0])
        return canonicalize_name(parse_sdist_filename(filename)[0])
    except Exception:
        return None


def _file_version(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        if SDIST.search(filename):
            return str(parse_sdist_filename(filename)[1])
    except Exception:
        return None
    return None


CHOICE_RECIPE = 2  # bump when the choosing rules change: 2 added each file's size


def choice_action(lock_text: str, lock_name: str, choose_all=None,
                  platform: str | None = None) -> Action:
    """The action that chooses a lock's files; ``choose_all()`` (fetch's) returns the list.
    ``platform``: another target than the toolchain's (an input then; the toolchain's own
    choice keeps the keys it always had)."""
    def run(ctx) -> Made:
        if choose_all is None:
            raise UserError(f"{lock_name} has not been fetched into {ctx.cache}: "
                            "run `invoke fetch`")
        data = (json.dumps([asdict(c) for c in choose_all()], indent=1) + "\n").encode()
        sha = hashlib.sha256(data).hexdigest()
        atomic.write_bytes(cas_path(ctx.cache, sha), data)
        return Made(blobs={"choices": (sha, len(data))})
    inputs = {"lock": hashlib.sha256(lock_text.encode()).hexdigest(),
              "recipe": str(CHOICE_RECIPE)}
    if platform:
        inputs["platform"] = platform
    return Action("file choice", f"{lock_name} {platform}" if platform else lock_name, inputs,
                  run)


def choices_fetched(cache: Path, lock_text: str, platform: str | None = None) -> bool:
    return action_cache.get(cache, choice_action(lock_text, "", platform=platform).key
                            ) is not None


def load_choices(cache: Path, lock_text: str, lock_name: str, choose_all=None,
                 remote=None, platform: str | None = None) -> list[Chosen]:
    """The chosen files of a lock: from the action cache (or the remote cache ``remote``), or
    chosen now by ``choose_all``. ``platform``: see ``choice_action``."""
    action = choice_action(lock_text, lock_name, choose_all, platform)
    record = action_cache.get(cache, action.key)
    if record is None or remote is not None:  # (a remote cache lacking it gets it)
        record = scheduler.run([action], cache, remote=remote)[action].record
    return [Chosen(**c) for c in json.loads(record.blob(cache, "choices").read_text())]

