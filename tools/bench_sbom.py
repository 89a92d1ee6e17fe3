"""Benchmark: what the attestations of line 4.2 cost, and what they hold.

Times the ``sbom facts`` action (the base layer's copyright files, 255 wheels' METADATA) and one
``sbom`` action (SPDX and CycloneDX of one flavor), each made again ROUNDS times under a key
made unique for the run (their records are removed afterwards: the cache keeps its own), then
prints the documents' sizes and license coverage from the layout of a warm `invoke image`.
Offline; needs `invoke fetch --runtime 4.2` done.

    python tools/bench_sbom.py [ROUNDS]
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rules.attest.verify import Layout  # noqa: E402
from rules.common.cache import default_cache  # noqa: E402
from rules.graph import scheduler  # noqa: E402
from rules.graph.action import Action  # noqa: E402
from rules.image import build  # noqa: E402
from rules.load import project  # noqa: E402
from rules.oci import referrers  # noqa: E402


def timed_again(action: Action, deps, cache: Path) -> float:
    again = Action(action.kind, action.label, {**action.inputs, "bench": str(uuid.uuid4())},
                   action.run, deps)
    started = time.monotonic()
    scheduler.run([again], cache)
    seconds = time.monotonic() - started
    (cache / "actions" / f"{again.key}.json").unlink()
    return seconds


def main(rounds: int) -> None:
    proj, cache = project.load(ROOT), default_cache()
    graph = build.line_graph(proj, proj.line("4.2"), cache)
    sbom = graph.sboms["onbuild"]
    facts = sbom.deps[0]
    scheduler.run([sbom], cache)
    f = [timed_again(facts, facts.deps, cache) for _ in range(rounds)]
    s = [timed_again(sbom, (facts,), cache) for _ in range(rounds)]
    print(f"sbom facts (line 4.2): median {statistics.median(f):.1f} s "
          f"({', '.join(f'{x:.1f}' for x in f)})")
    print(f"sbom (one flavor, SPDX + CycloneDX): median {statistics.median(s):.1f} s "
          f"({', '.join(f'{x:.1f}' for x in s)})")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "layout"
        subprocess.run([sys.executable, "-m", "invoke", "image", "--runtime", "4.2", "--flavor",
                        "onbuild", "--out", str(out)], cwd=ROOT, check=True,
                       capture_output=True)
        layout = Layout(out)
        digest = layout.images()[0][0]
        docs = {}
        for entry in layout.referrers(digest):
            manifest = json.loads(layout.read(entry["digest"], "artifact manifest"))
            layer = manifest["layers"][0]
            docs[referrers.KIND[manifest["artifactType"]]] = layout.read(layer["digest"], "")
    for kind, data in docs.items():
        print(f"{kind}: {len(data):,} bytes")
    spdx = json.loads(docs["SPDX SBOM"])
    kinds = Counter()
    for p in spdx["packages"]:
        kind = p["SPDXID"].split("-")[1]
        lic = p["licenseDeclared"]
        kinds[kind, "NOASSERTION" if lic == "NOASSERTION" else
              "LicenseRef" if "LicenseRef-" in lic else "SPDX ids"] += 1
    for (kind, what), n in sorted(kinds.items()):
        print(f"  {kind:7} {what:12} {n}")
    print(f"relationships: {dict(Counter(r['relationshipType'] for r in spdx['relationships']))}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
