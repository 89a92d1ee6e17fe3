"""Push benchmark: prints figures side by side, asserts nothing. Run with `./dev bench` or
`python tools/bench_push.py [ROUNDS]` (inside the dev venv).

The 4.2 line, both flavors (2 images, 4 tags, 18 distinct blobs, ~271 MiB), built from the
cache into a temp layout, pushed to docker-registry 2.8 on 127.0.0.1 with TLS and htpasswd
(tests/registry.py), a fresh registry (empty storage) for each cold push:

1. `invoke push --from LAYOUT` (our client, rules.oci.push; wall time of the whole command,
   Python start included) against `skopeo copy oci:LAYOUT:TAG docker://...` once per tag
   (4 copies: skopeo copies one reference at a time; the 2nd copy of an image skips its
   blobs), alternating, ROUNDS times each; medians compared, goal: ours <= 1.2 x skopeo;
2. a second push of each to the now warm registry (ours should upload 0 blobs);
3. blobs and bytes each one uploaded, as the registry's access log saw them (each PUT that
   closed a blob upload).
"""

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rules.common.cache import default_cache  # noqa: E402
from rules.image import build as image  # noqa: E402
from rules.image.config import flavors as flavors_of  # noqa: E402
from rules.load import project  # noqa: E402
from tests.registry import PASSWORD, USER, registry  # noqa: E402

LINE = "4.2"
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3


def tags_of(layout: Path) -> list[str]:
    index = json.loads((layout / "index.json").read_bytes())
    return [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]
            if "artifactType" not in m]


def sizes_of(layout: Path) -> dict[str, int]:
    return {"sha256:" + p.name: p.stat().st_size for p in (layout / "blobs/sha256").iterdir()}


def ours(layout: Path, reg) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("RUNTIME_CALLER_DIR", None)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "push",
                           "--to", f"{reg.host}/runtime", "--from", str(layout), "--ca-cert",
                           str(reg.ca), "--username", USER, "--password-stdin"],
                          input=PASSWORD + "\n", cwd=REPO, env=env, capture_output=True,
                          text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"invoke push failed: {proc.stderr}")
    return seconds


def skopeo(layout: Path, reg, certs: Path) -> float:
    start = time.monotonic()
    for tag in tags_of(layout):
        proc = subprocess.run(["skopeo", "copy", "--dest-cert-dir", str(certs), "--dest-creds",
                               f"{USER}:{PASSWORD}", f"oci:{layout}:{tag}",
                               f"docker://{reg.host}/runtime:{tag}"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"skopeo copy failed: {proc.stderr}")
    return time.monotonic() - start


def measured(run, reg, sizes) -> tuple[float, int, int]:
    """(seconds, blobs uploaded, bytes uploaded): uploads as the registry's access log saw
    them (skopeo 1.9 prints no "skipped" when it is not on a terminal)."""
    before = len(reg.uploads())
    seconds = run()
    sent = reg.uploads()[before:]
    return seconds, len(sent), sum(sizes[d] for d in sent)


def main():
    proj = project.load()
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        layout = Path(tmp) / "layout"
        line = proj.line(LINE)
        image.build(proj, LINE, flavors_of(proj, line), layout, default_cache())
        sizes = sizes_of(layout)
        total = sum(sizes.values())
        print(f"line {LINE}: {len(tags_of(layout))} tags, layout {len(sizes)} files, "
              f"{total / (1 << 20):.1f} MiB; {ROUNDS} rounds, fresh registry storage for "
              f"each cold push")
        rows = {"cold": {"ours": [], "skopeo": []}, "second": {"ours": [], "skopeo": []}}
        for _ in range(ROUNDS):
            for name in ("ours", "skopeo"):
                with registry(access_log=True) as reg:
                    certs = reg.folder / "certs"
                    certs.mkdir()
                    (certs / "ca.crt").write_bytes(reg.ca.read_bytes())
                    run = (functools.partial(ours, layout, reg) if name == "ours" else
                           functools.partial(skopeo, layout, reg, certs))
                    os.sync()
                    rows["cold"][name].append(measured(run, reg, sizes))
                    rows["second"][name].append(measured(run, reg, sizes))
        print(f"{'':28}{'ours (invoke push)':>24}{'skopeo copy x4':>24}{'ratio':>8}")
        for kind, label in (("cold", "cold registry"), ("second", "second push")):
            med = {n: statistics.median(r[0] for r in rows[kind][n]) for n in rows[kind]}
            runs = {n: " ".join(f"{r[0]:.2f}" for r in rows[kind][n]) for n in rows[kind]}
            print(f"{label + ', median s':28}{med['ours']:>24.2f}{med['skopeo']:>24.2f}"
                  f"{med['ours'] / med['skopeo']:>8.2f}")
            print(f"{'  runs s':28}{runs['ours']:>24}{runs['skopeo']:>24}")
            last = {n: rows[kind][n][-1] for n in rows[kind]}
            print(f"{'  blobs uploaded':28}{last['ours'][1]:>24}{last['skopeo'][1]:>24}")
            print(f"{'  bytes uploaded':28}{last['ours'][2]:>24}{last['skopeo'][2]:>24}")


if __name__ == "__main__":
    main()
