"""Remote cache benchmark ("build without the bytes"): prints figures beside their goals,
asserts nothing. Run with `./dev bench` or `python tools/bench_remote.py` (in the dev venv).

One docker-registry 2.8 on 127.0.0.1 (TLS, htpasswd; tests/registry.py, access log on) holds
both the remote cache (repository `cache`) and the published images (repository `runtime`).

1. Machine 1 (this checkout, the warm local cache): `invoke image --runtime 4.2
   --remote-cache R/cache` seeds the remote cache (its local hits are uploaded), and its layout
   gives the reference manifest digests.
2. Machine 2, simulated by a copy of the checkout at another path and an empty RUNTIME_CACHE
   (no `invoke fetch`): `invoke image --runtime 4.2 --remote-cache R/cache --push-to
   R/runtime` (both flavors). Measured: wall time of the whole command (Python start
   included), bytes the registry sent (its access log: the size of every answer), layer blobs
   uploaded (PUTs that closed a blob upload, whose digest is a layer), manifest digests
   against machine 1's. Goals: <= 10 s, <= 5 MB downloaded, 0 layer blobs uploaded.
3. One module edited on machine 2 (a comment appended to a module's source) and published
   again: wall time, bytes uploaded (sizes of the blobs uploaded, plus manifests), bytes
   downloaded (from the registry, and the locked .debs the python root needs from Debian).
   Goals: <= 5 s, <= 1 MB uploaded.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rules.load import project  # noqa: E402
from tests.registry import registry  # noqa: E402

LINE = "4.2"
ANSWER = re.compile(r'"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d+) (\d+)')


def invoke(checkout: Path, cache: Path, config: Path, *args: str) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=str(checkout), RUNTIME_CACHE=str(cache),
               DOCKER_CONFIG=str(config))
    env.pop("RUNTIME_CALLER_DIR", None)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(checkout),
                           "image", "--runtime", LINE, *args], cwd=checkout, env=env,
                          capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"invoke image {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout + proc.stderr


def log_lines(reg, start: int) -> list[str]:
    return reg.log.read_text(errors="replace").splitlines()[start:]


def sent_bytes(lines: list[str]) -> int:
    """Bytes of the answers to GET requests (what the client downloaded)."""
    total = 0
    for line in lines:
        match = ANSWER.search(line)
        if match and match[1] == "GET":
            total += int(match[4])
    return total


def blob_size(reg, digest: str) -> int:
    hexdigest = digest.removeprefix("sha256:")
    path = (reg.folder / "storage/docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest
            / "data")
    return path.stat().st_size


def digests(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_bytes())
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
            for m in index["manifests"] if "artifactType" not in m}


def pushed(output: str) -> dict[str, str]:
    return dict(re.findall(r"pushed \S+/[^/:\s]+:(\S+)  (sha256:[0-9a-f]{64})", output))


def main() -> None:
    proj = project.load(REPO)
    line = proj.line(LINE)
    module = proj.modules[line.modules[0]]
    src = REPO / module.srcs[0]
    edited = str((sorted(src.rglob("*.py"))[0] if src.is_dir() else src).relative_to(REPO))
    work = Path(tempfile.mkdtemp(prefix="runtime-bench-remote-"))
    try:
        with registry(access_log=True) as reg:
            config = reg.docker_config(work / "docker")
            common = ("--ca-cert", str(reg.ca))
            remote = f"{reg.host}/cache"
            # 1. machine 1 seeds the remote cache
            from rules.common.cache import default_cache

            seconds1, out1 = invoke(REPO, default_cache(), config, "--remote-cache", remote,
                                    "--out", str(work / "out1"), *common)
            reference = digests(work / "out1")
            layers = {lay for lay in _layers(work / "out1")}
            seeded = len(reg.uploads())
            # 2. machine 2: another checkout path, an empty cache, no fetch
            checkout = work / "checkout2"
            shutil.copytree(REPO, checkout, symlinks=True, ignore=shutil.ignore_patterns(
                ".venv", "out", "__pycache__", ".pytest_cache", ".ruff_cache"))
            cache2 = work / "cache2"
            cache2.mkdir()
            start = len(log_lines(reg, 0))
            uploads_before = len(reg.uploads())
            seconds2, out2 = invoke(checkout, cache2, config, "--remote-cache", remote,
                                    "--push-to", f"{reg.host}/runtime", *common)
            lines2 = log_lines(reg, start)
            uploaded2 = reg.uploads()[uploads_before:]
            same = pushed(out2) == reference
            # 3. one module edited on machine 2, published again
            path = checkout / edited
            path.write_text(path.read_text() + "\n# edited by tools/bench_remote.py\n")
            start = len(log_lines(reg, 0))
            uploads_before = len(reg.uploads())
            seconds3, out3 = invoke(checkout, cache2, config, "--remote-cache", remote,
                                    "--push-to", f"{reg.host}/runtime", *common)
            lines3 = log_lines(reg, start)
            uploaded3 = reg.uploads()[uploads_before:]
            bytes_up3 = (sum(blob_size(reg, d) for d in uploaded3)
                         + sum(manifest_size(reg, m[2]) for line in lines3
                               if (m := ANSWER.search(line)) and m[1] == "PUT"
                               and "/manifests/" in m[2]))
            fetched3 = re.search(r"locked inputs fetched: (\d+) file\(s\), ([\d,]+) bytes", out3)
        print(f"machine 1 (warm local cache) seeding the remote cache: {seconds1:.1f} s, "
              f"{seeded} blobs uploaded")
        rows = [
            ("publish 4.2 (both flavors), empty cache", f"{seconds2:.1f} s", "<= 10 s"),
            ("  bytes downloaded from the registry", f"{sent_bytes(lines2):,}", "<= 5 MB"),
            ("  layer blobs uploaded", str(sum(d in layers for d in uploaded2)), "0"),
            ("  other blobs uploaded (configs)", str(sum(d not in layers for d in uploaded2)),
             ""),
            ("  manifest digests = machine 1's", "yes" if same else
             f"NO: {pushed(out2)} vs {reference}", "yes"),
            (f"one module edited ({edited})", f"{seconds3:.1f} s", "<= 5 s"),
            ("  bytes uploaded (blobs + manifests)", f"{bytes_up3:,}", "<= 1 MB"),
            ("  blobs uploaded", str(len(uploaded3)), ""),
            ("  bytes downloaded from the registry", f"{sent_bytes(lines3):,}", ""),
            ("  locked inputs fetched (Debian, PyPI)",
             f"{fetched3[1]} files, {fetched3[2]} bytes" if fetched3 else "none", ""),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"{'remote cache, machine 2':<{width}}  {'measured':>22}  goal")
        for name, value, goal in rows:
            print(f"{name:<{width}}  {value:>22}  {goal}")
        print("\nmachine 2, publish:\n" + _tail(out2) + "\nmachine 2, module edited:\n"
              + _tail(out3))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def manifest_size(reg, path: str) -> int:
    """Size of the manifest a PUT /v2/REPO/manifests/REF sent (the access log has no request
    sizes): REF's digest, or the digest the tag now points at, from the registry's storage."""
    repo, ref = re.match(r"/v2/(.+)/manifests/([^?]+)", path).groups()
    if not ref.startswith("sha256:"):
        link = (reg.folder / "storage/docker/registry/v2/repositories" / repo / "_manifests/tags"
                / ref / "current/link")
        ref = link.read_text().strip()
    return blob_size(reg, ref)


def _layers(layout: Path) -> set[str]:
    found = set()
    for entry in json.loads((layout / "manifest.json").read_bytes()):
        found |= {"sha256:" + Path(p).name for p in entry["Layers"]}
    return found


def _tail(output: str) -> str:
    keep = [line for line in output.splitlines()
            if re.search(r"remote cache|pushed|image\(s\)|layout|locked inputs|warning|hit",
                         line)]
    return "\n".join("  " + line for line in keep[-14:])


if __name__ == "__main__":
    main()
