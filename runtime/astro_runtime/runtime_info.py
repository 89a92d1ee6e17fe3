#!/usr/bin/python3.9
"""runtime-info: what this Runtime image is, and the concurrency settings chosen for this
container with the reason for each. `--json` for machines.

The image tag and digest come from RUNTIME_IMAGE_TAG / RUNTIME_IMAGE_DIGEST when the deployment
sets them (an image cannot hold its own digest), else from what the build baked in.
"""

import json
import os
import sys

from astro_runtime import concurrency, limits

VERSION_FILE = "/usr/local/share/runtime/version.json"


def version_info(env=os.environ) -> dict:
    try:
        with open(VERSION_FILE) as f:
            baked = json.load(f)
    except OSError:
        baked = {}
    return {
        "runtime_version": env.get("ASTRONOMER_RUNTIME_VERSION", baked.get("runtime_version")),
        "airflow_version": env.get("AIRFLOW_VERSION", baked.get("airflow_version")),
        "line": baked.get("line"),
        "lts": baked.get("lts"),
        "python": ".".join(map(str, sys.version_info[:3])),
        "debian": baked.get("debian"),
        "image_tag": env.get("RUNTIME_IMAGE_TAG") or baked.get("image"),
        "image_digest": env.get("RUNTIME_IMAGE_DIGEST") or None,
    }


def main(argv) -> int:
    as_json = "--json" in argv
    try:
        choices, facts = concurrency.choose()
    except (concurrency.ConfigError, limits.LimitError) as error:
        print(f"runtime-info: {error}", file=sys.stderr)
        return 1
    info = {**version_info(), **facts, "settings": [c.as_dict() for c in choices]}
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    lim = facts["limits"]
    print(f"Runtime {info['runtime_version']} (line {info['line']}{', LTS' if info['lts'] else ''})"
          f" · Airflow {info['airflow_version']} · Python {info['python']} · "
          f"Debian {info['debian']}")
    digest = info["image_digest"] or "unknown (RUNTIME_IMAGE_DIGEST)"
    print(f"image {info['image_tag']} digest {digest}")
    print(f"limits: {lim['cpus']:g} CPUs ({lim['cpu_source']}), "
          f"{lim['memory_bytes'] / (1 << 30):.2f} GiB ({lim['memory_source']}); "
          f"executor {facts['executor']}; task slots S = {facts['task_slots']}")
    width = max(len(c["option"]) for c in info["settings"])
    for c in info["settings"]:
        value = c["value"] if c["value"] is not None else "-"
        print(f"  {c['option'].ljust(width)}  {value:>6}  {c['source']}: {c['why']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
