"""Platforms benchmark: the cold build of a line for linux/amd64, linux/arm64 and both, side by
side, with the images' sizes. Prints figures, asserts nothing.

    .venv/bin/python tools/bench_platforms.py [--runtime 4.2] [--rounds 1]

Needs root and fetched inputs (`invoke fetch --runtime 4.2` and `invoke fetch --platform
linux/arm64 --runtime 4.2`). Each build runs in an empty cache that holds only what `fetch`
put there (the CAS and the file choices: rules.fetch.locked_inputs.cache_of_fetched), so every
action runs: the Debian roots, the python and cross roots, the sdists' wheels (cross-compiled
for arm64), every package tree and layer. The kinds alternate within a round (the machine's
speed drifts); with several rounds the medians are printed. One flavor (the line's first).

Sizes: the compressed bytes of each image (its layer blobs, as a registry stores them) and the
bytes its layers share with the other platform's image (the same blobs: pure wheels and Runtime
modules give the same layers on both).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rules.common.cache import default_cache  # noqa: E402
from rules.fetch.locked_inputs import cache_of_fetched  # noqa: E402
from rules.image import build as image  # noqa: E402
from rules.load import project  # noqa: E402

KINDS = {"linux/amd64": ("amd64",), "linux/arm64": ("arm64",), "all": ("amd64", "arm64")}


def cold_build(proj, line: str, flavor: str, arches: tuple[str, ...], work: Path):
    """(seconds, images) of one build in an empty cache of fetched inputs."""
    cache = cache_of_fetched(default_cache(), work / "cache", kinds=("file choice",))
    subprocess.run(["sync"], check=True)
    started = time.monotonic()
    result = image.build(proj, line, (flavor,), work / "out", cache, arches=arches)
    return time.monotonic() - started, result.images


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default="4.2")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    proj = project.load(REPO)
    line = proj.line(args.runtime)
    flavor = proj.image(line).flavors[0].name
    seconds: dict[str, list[float]] = {k: [] for k in KINDS}
    images = {}
    for _ in range(args.rounds):
        for kind, arches in KINDS.items():
            work = Path(tempfile.mkdtemp(prefix="runtime-bench-platforms-",
                                         dir=os.environ.get("TMPDIR", "/var/tmp")))
            try:
                took, built = cold_build(proj, args.runtime, flavor, arches, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            seconds[kind].append(took)
            images[kind] = built
            print(f"{kind}: {took:.1f} s", flush=True)
    load = os.getloadavg()
    print(f"\nRuntime {line.version} ({flavor}), cold builds, {args.rounds} round(s), "
          f"{os.cpu_count()} cores, load {load[0]:.1f} at the end")
    print("| build | seconds (median) | image compressed | shared with the other platform |")
    print("|---|---|---|---|")
    by_arch = {i.architecture: i for i in images["all"]}
    blobs = {a: {layer.digest: layer.size for layer in i.layers} for a, i in by_arch.items()}
    for kind, arches in KINDS.items():
        size = sum(sum(blobs[a].values()) for a in arches)
        if len(arches) == 1:
            other = next(a for a in blobs if a != arches[0])
            shared = sum(s for d, s in blobs[arches[0]].items() if d in blobs[other])
            shared_text = f"{shared / 1e6:.0f} MB of {size / 1e6:.0f} MB"
        else:
            unique = {d: s for a in arches for d, s in blobs[a].items()}
            shared_text = f"{sum(unique.values()) / 1e6:.0f} MB stored for both"
        print(f"| {kind} | {statistics.median(seconds[kind]):.1f} | {size / 1e6:.0f} MB | "
              f"{shared_text} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
