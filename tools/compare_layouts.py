"""Compare the images of two OCI layouts tag by tag: layer digests, config blob, manifest.

For a change that must not change what an image holds (a refactoring of the engine, policy
moved into BUILD): every layer blob must be the same; the config blob too; the manifest may
differ only by annotations named with --allow (the revision annotation, by default, which
names the commit built from).

    .venv/bin/python tools/compare_layouts.py /tmp/baseline/4.2 out/runtime-4.2.1 [...]

Pairs of folders; prints one row per tag; exit 1 if any layer or config differs or the
manifests differ by more than the allowed annotations.
"""

import argparse
import json
import sys
from pathlib import Path


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def images(layout: Path) -> dict[str, dict]:
    index = json.loads((layout / "index.json").read_text())
    return {m["annotations"]["org.opencontainers.image.ref.name"]: json.loads(
        blob(layout, m["digest"])) for m in index["manifests"] if "artifactType" not in m}


def compare(old: Path, new: Path, allow: set[str]) -> list[tuple]:
    a, b = images(old), images(new)
    rows = []
    for tag in sorted(set(a) | set(b)):
        if tag not in a or tag not in b:
            rows.append((tag, "missing in " + ("old" if tag not in a else "new"), "", "", False))
            continue
        la = [x["digest"] for x in a[tag]["layers"]]
        lb = [x["digest"] for x in b[tag]["layers"]]
        same_layers = sum(x == y for x, y in zip(la, lb))
        config_same = a[tag]["config"]["digest"] == b[tag]["config"]["digest"]
        ann_a, ann_b = a[tag].get("annotations", {}), b[tag].get("annotations", {})
        differs = sorted(k for k in set(ann_a) | set(ann_b) if ann_a.get(k) != ann_b.get(k))
        rest_a = {k: v for k, v in a[tag].items() if k not in ("annotations", "config")}
        rest_b = {k: v for k, v in b[tag].items() if k not in ("annotations", "config")}
        ok = (len(la) == len(lb) == same_layers and config_same and rest_a == rest_b
              and set(differs) <= allow)
        rows.append((tag, f"{same_layers}/{len(la)} same" + ("" if len(la) == len(lb) else
                                                            f" (new has {len(lb)})"),
                     "same" if config_same else "DIFFERS",
                     ", ".join(d.rsplit(".", 1)[-1] for d in differs) or "none", ok))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="OLD NEW [OLD NEW ...]")
    parser.add_argument("--allow", action="append",
                        default=["org.opencontainers.image.revision"],
                        help="a manifest annotation that may differ (repeatable)")
    args = parser.parse_args(argv)
    if len(args.folders) % 2:
        parser.error("expected pairs of folders: OLD NEW")
    failed = False
    print(f"{'old':28} {'tag':12} {'layers':14} {'config':8} {'annotations differing':22} ok")
    for old, new in zip(args.folders[::2], args.folders[1::2]):
        for tag, layers, config, differs, ok in compare(Path(old), Path(new), set(args.allow)):
            failed |= not ok
            print(f"{old:28} {tag:12} {layers:14} {config:8} {differs:22} "
                  f"{'yes' if ok else 'NO'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
