"""Task log benchmark: prints figures, asserts nothing. Run with `./dev bench`.

A task try writing 100,000 lines, timed through Airflow's plain FileTaskHandler and through the
Runtime's handler shipping to an S3-compatible server (moto's, on 127.0.0.1), alternating,
nine rounds each, in the line's image (DOCKER_HOST; the image is built and loaded if missing).
The task process is forked from a supervising one, as Airflow's task runner does; the Runtime's
handler ships from the supervisor while the task writes.
"""

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.services import S3Server, free_port  # noqa: E402
from rules.common.cache import default_cache  # noqa: E402

LINE, LINES, ROUNDS = "4.2", 100_000, 9


def image_tag() -> str:
    from rules.image import build as image
    from rules.image import policy
    from rules.load import project
    from rules.oci import docker_load

    proj = project.load(REPO)
    line = proj.line(LINE)
    tag = policy.reference(proj.image(line), policy.tag(proj.image(line), line.version, "base"))
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode:
        with tempfile.TemporaryDirectory() as out:
            image.build(proj, LINE, ("base",), Path(out), default_cache())
            docker_load.load(Path(out))
    return tag


def main():
    tag = image_tag()
    s3 = S3Server(free_port())
    s3.start()
    try:
        env = s3.runtime_env()
        env["RUNTIME_LOG_SHIP_INTERVAL"] = "5"  # the default
        args = ["docker", "run", "--rm", "--network", "host", "-v",
                f"{REPO / 'tools' / 'in_image'}:/bench:ro", "--entrypoint", "python3.9",
                *(f"-e{k}={v}" for k, v in env.items()), tag, "/bench/bench_task_log.py",
                str(LINES), str(ROUNDS)]
        proc = subprocess.run(args, capture_output=True, text=True, check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        shipped = len([k for k in s3.keys() if not k.count(".chunks/")])
    finally:
        s3.stop()
    plain = result["FileTaskHandler"]
    ours = result["RuntimeTaskHandler"]
    print(f"{LINES:,} log lines, {ROUNDS} rounds each, median seconds")
    print(f"{'handler':<46} {'task ran':>8} {'until closed':>13}")
    for name, runs in (("Airflow FileTaskHandler", plain),
                       ("Runtime handler, shipping to S3 (moto)", ours)):
        print(f"{name:<46} {statistics.median(r[0] for r in runs):8.2f} "
              f"{statistics.median(r[1] for r in runs):13.2f}")
    for i, label in ((0, "the task's run"), (1, "until closed (last upload included)")):
        a = statistics.median(r[i] for r in plain)
        b = statistics.median(r[i] for r in ours)
        print(f"overhead, {label}: {100 * (b - a) / a:+.1f} %")
    print(f"logs in the store: {shipped}; spool entries left: {result['spool_left']}")


if __name__ == "__main__":
    main()
