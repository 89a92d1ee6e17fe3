"""Image benchmark: prints figures side by side, asserts nothing. Run with `./dev bench`.

Needs root, fetched inputs (`./dev fetch --runtime 4.2`) and a Docker engine (DOCKER_HOST).
1. our cold build (fetch cache warm: downloads and the wheels `invoke fetch` builds from
   sdists; action cache empty, so the Debian root is made again), one flavor, and
   `docker build --no-cache` (3 below), alternating, ROUNDS times each (argument 1 changes it):
   the machine's speed drifts, so the medians are compared; each build starts after a sync;
2. our no-op rebuild, and a rebuild after editing one module (changed layer blobs counted);
3. `docker build --no-cache` of an equivalent Dockerfile: FROM our Debian base (loaded into the
   engine), pip install --require-hashes from the same local wheelhouse, the same modules;
4. the sizes of both images as the engine reports them.
"""

import functools
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

from packaging.utils import parse_wheel_filename  # noqa: E402

from rules.fetch import locked_inputs as fetch  # noqa: E402
from rules.image import build as image  # noqa: E402
from rules.image import policy  # noqa: E402
from rules.load import project  # noqa: E402
from rules.oci import layout as oci  # noqa: E402
from rules.common.cache import default_cache  # noqa: E402

DOWNLOADS = default_cache()
LINE = "4.2"
ROUNDS = 3  # cold builds of each kind, alternating
DOCKERFILE_IMAGE = "runtime-bench:dockerfile"

DOCKERFILE = """\
FROM runtime-bench:debian
COPY wheels /wheels
COPY requirements.txt /tmp/requirements.txt
RUN python3.9 -m venv /opt/venv \\
 && /opt/venv/bin/pip install -q --no-index --find-links /wheels pip==24.0 \\
 && /opt/venv/bin/pip install -q --no-index --find-links /wheels --require-hashes \\
      -r /tmp/requirements.txt
{modules}
"""


def settle():
    """Before each timed build: write back what earlier steps left dirty (a docker build writes
    about 1.2 GB, a cold build of ours 300 MB), so that no build pays for the one before."""
    os.sync()
    time.sleep(2)


def timed(fn):
    start = time.monotonic()
    value = fn()
    return time.monotonic() - start, value


def docker(*args, check=True, **kw):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, **kw)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS
    proj = project.load(REPO)
    fetch.build_sdists(proj, proj.line(LINE).airflow, DOWNLOADS)  # a no-op after `invoke fetch`
    rows, colds, dockers = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-image-", dir=DOWNLOADS) as tmp:
        tmp = Path(tmp)
        cache = fetch.cache_of_fetched(DOWNLOADS, tmp / "cache")
        settle()
        cold, result = timed(lambda: image.build(proj, LINE, ("base",), tmp / "out", cache))
        colds.append(cold)
        noop, _ = timed(lambda: image.build(proj, LINE, ("base",), tmp / "out2", cache))
        rows.append(("ours: no-op rebuild", noop))

        checkout = tmp / "checkout"
        shutil.copytree(REPO, checkout, symlinks=True,
                        ignore=shutil.ignore_patterns(".venv", "out", "__pycache__"))
        source = checkout / "ui" / "runtime_ui" / "__init__.py"
        source.write_text(source.read_text() + "\nBENCH_EDIT = 1\n")
        edit, edited = timed(lambda: image.build(project.load(checkout), LINE, ("base",),
                                                 tmp / "out3", cache))
        changed = sum(a.layer.digest != b.layer.digest
                      for a, b in zip(result.steps, edited.steps))
        rows.append((f"ours: one module edited ({changed} layer blob changed)", edit))

        from rules.oci import docker_load

        docker_load.load(tmp / "out")
        img = proj.image(proj.line(LINE))
        ours = policy.reference(img, policy.tag(img, proj.line(LINE).version, "base"))
        context = dockerfile_context(proj, result, cache, tmp)
        for n in range(rounds):
            if n:  # the machine's speed drifts: alternate the two cold builds
                again = fetch.cache_of_fetched(DOWNLOADS, tmp / f"cache-{n}")
                settle()
                colds.append(timed(functools.partial(image.build, proj, LINE, ("base",),
                                                     tmp / f"out-{n}", again))[0])
                shutil.rmtree(again)
            docker("rmi", "-f", DOCKERFILE_IMAGE, check=False)
            settle()
            dockers.append(docker_build(context))
        sizes = {name: int(docker("image", "inspect", "-f", "{{.Size}}", name).stdout)
                 for name in (ours, DOCKERFILE_IMAGE)}
        for name in (ours, DOCKERFILE_IMAGE, "runtime-bench:debian"):
            docker("rmi", "-f", name, check=False)

    width = 62
    print(f"{'cold builds, alternating (seconds)'.ljust(width)}  " +
          "  ".join(f"round {n + 1}" for n in range(rounds)) + "   median")
    for name, times in (("ours: cold build (fetched inputs cached, action cache empty)", colds),
                        ("docker build --no-cache of the equivalent Dockerfile", dockers)):
        print(f"{name.ljust(width)}  " + "  ".join(f"{t:7.1f}" for t in times) +
              f"  {statistics.median(times):7.1f}")
    ratios = [a / b for a, b in zip(colds, dockers)]
    print(f"{'cold build ratio ours / docker build'.ljust(width)}  " +
          "  ".join(f"{r:7.2f}" for r in ratios) + f"  {statistics.median(ratios):7.2f}")
    print()
    print(f"{'measure'.ljust(width)}  seconds")
    for name, seconds in rows:
        print(f"{name.ljust(width)}  {seconds:7.1f}")
    print(f"image size, ours:       {sizes[ours] / 1e6:8.0f} MB")
    print(f"image size, Dockerfile: {sizes[DOCKERFILE_IMAGE] / 1e6:8.0f} MB")
    print(f"size ratio ours / Dockerfile: {sizes[ours] / sizes[DOCKERFILE_IMAGE]:.2f}")


def dockerfile_context(proj, result, cache: Path, tmp: Path) -> Path:
    """Load our Debian base as runtime-bench:debian; write the Dockerfile's build context."""
    base = oci.Image("runtime-bench", "debian", [result.steps[0].layer],
                     ["runtime: debian base"],
                     {"Env": ["PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                     proj.debian.source_date_epoch, {})
    oci.write_layout([base], tmp / "base-layout", cache)
    from rules.oci import docker_load

    docker_load.load(tmp / "base-layout")
    context = tmp / "context"
    (context / "wheels").mkdir(parents=True)
    inputs = image.Inputs(proj, cache, proj.debian.source_date_epoch)
    wheels = image.wheels_for(proj, proj.line(LINE).airflow, inputs)
    pins = []
    for name, (blob, filename, sha) in sorted(wheels.items()):
        shutil.copyfile(blob, context / "wheels" / filename)
        pins.append(f"{name}=={parse_wheel_filename(filename)[1]} --hash=sha256:{sha}")
    (context / "requirements.txt").write_text("\n".join(pins) + "\n")
    copies = []
    for label in proj.line(LINE).modules:
        module = proj.modules[label]
        for src in module.srcs:
            shutil.copytree(Path(proj.root) / src, context / "modules" / module.import_name,
                            ignore=shutil.ignore_patterns("__pycache__"))
            copies.append(f"COPY modules/{module.import_name} "
                          f"/opt/venv/lib/python3.9/site-packages/{module.import_name}")
    (context / "Dockerfile").write_text(DOCKERFILE.format(modules="\n".join(copies)))
    return context


def docker_build(context: Path) -> float:
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    seconds, _ = timed(lambda: docker("build", "--no-cache", "--network", "none", "-t",
                                      DOCKERFILE_IMAGE, str(context), env=env))
    return seconds


if __name__ == "__main__":
    main()
