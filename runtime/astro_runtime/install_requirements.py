#!/usr/bin/python3.9
"""ONBUILD helper: pip-install a project's requirements.txt under the image's constraints.

A line that names apache-airflow itself is refused: the image's Airflow is part of the Runtime
and is pinned by its constraints (providers, `apache-airflow-providers-*`, are fine).
"""

import os
import re
import subprocess
import sys

AIRFLOW = re.compile(r"^\s*apache[-_.]airflow(?![-_.a-z0-9])", re.IGNORECASE)


def refused(path):
    problems = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if AIRFLOW.match(text):
                problems.append(f"{path}:{number}: {text}")
    return problems


def main(path="requirements.txt"):
    try:
        problems = refused(path)
    except FileNotFoundError:
        return 0
    if problems:
        print("runtime: requirements.txt must not pin apache-airflow: this image's Airflow is "
              "fixed by the Runtime version (choose another Runtime image to change it).\n  "
              + "\n  ".join(problems), file=sys.stderr)
        return 1
    env = dict(os.environ, PIP_ROOT_USER_ACTION="ignore")  # installing as root is the point
    return subprocess.call([sys.executable, "-m", "pip", "install", "--no-cache-dir",
                            "--no-warn-script-location", "-r", path], env=env)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
