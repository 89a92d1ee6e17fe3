#!/usr/bin/python3.9
"""ONBUILD helper: pip-install a project's requirements.txt under the image's constraints.

A requirement that names apache-airflow itself is refused: the image's Airflow is part of the
Runtime and is pinned by its constraints (providers, `apache-airflow-providers-*`, are fine).

The file is read by the image's own pip (the locked version), with pip's own parser: line
continuations (`apache-\\` then `airflow==2.2.3`), `-r`/`-c` includes of other files,
options, comments, environment markers, and names taken from wheel file names, `name @ URL`
and `#egg=` fragments, exactly as the `pip install -r` that follows will read them. A regular
expression over single lines let a continued line through. (pip-requirements-parser, a copy of
the same parser, would be one more package in every image for what the image's pip already
does.)
"""

import os
import subprocess
import sys

AIRFLOW = "apache-airflow"


def refused(path):
    """`file:line: requirement` for each requirement of ``path`` (and the files it includes)
    that would install apache-airflow here."""
    from pip._internal.network.session import PipSession
    from pip._internal.req.constructors import install_req_from_parsed_requirement
    from pip._internal.req.req_file import (RequirementsFileParser, get_line_parser,
                                            handle_requirement_line)
    from pip._vendor.packaging.utils import canonicalize_name

    problems = []
    with PipSession() as session:
        parser = RequirementsFileParser(session, get_line_parser(None))
        for line in parser.parse(path, constraint=False):
            if not line.is_requirement:
                continue
            req = install_req_from_parsed_requirement(handle_requirement_line(line))
            if _names_airflow(req, canonicalize_name) and req.match_markers():
                problems.append(f"{line.filename}:{line.lineno}: {line.requirement}")
    return problems


def _names_airflow(req, canonicalize_name) -> bool:
    """The requirement's name, or for a bare URL (no `name @`, no `#egg=`) the name its file
    name gives (`.../apache-airflow-2.2.3.tar.gz`): pip learns it only after downloading."""
    if req.name:
        return canonicalize_name(req.name) == AIRFLOW
    if req.link is None:
        return False
    from pip._vendor.packaging.utils import (InvalidSdistFilename, InvalidWheelFilename,
                                             parse_sdist_filename, parse_wheel_filename)

    filename = req.link.filename
    try:
        if filename.endswith(".whl"):
            name = parse_wheel_filename(filename)[0]
        else:
            name = parse_sdist_filename(filename)[0]
    except (InvalidSdistFilename, InvalidWheelFilename, ValueError):
        return False
    return canonicalize_name(name) == AIRFLOW


def main(path="requirements.txt"):
    if not os.path.lexists(path):  # no requirements.txt: nothing to install
        return 0
    try:
        problems = refused(path)
    except Exception as e:  # noqa: BLE001 - pip's own parse errors, said in one line
        print(f"runtime: cannot read {path}: {e}", file=sys.stderr)
        return 1
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
