"""The image's policy and config: user, home, env, entrypoint, labels, ONBUILD triggers, the
version metadata and the files of the config layer."""

import json
import subprocess
from pathlib import Path

from rules.image.inputs import Inputs
from rules.load.model import Project, RuntimeLine
from rules.lock import requirements_file
from rules.oci import layout as oci

REPO = "runtime"
AIRFLOW_HOME = "/usr/local/airflow"
SHARE = "usr/local/share/runtime"
ASTRO_UID = 50000
FLAVORS = ("onbuild", "base")
MODULE_DIST_VERSION = "1.0.0"  # of the dist-info a module with an Airflow plugin gets
PROVIDER_PREFIXES = ("apache-airflow-providers-", "astronomer-providers", "openlineage-")


def version_metadata(project: Project, line: RuntimeLine) -> dict:
    patchset = project.patches.get(line.airflow)
    return {"runtime_version": line.version, "line": line.name, "lts": line.lts,
            "airflow_version": project.airflow_version(line.airflow),
            "airflow_patches": [Path(p).name for p in patchset.patches] if patchset else [],
            "python": line.python, "debian": line.debian,
            "image": f"{REPO}:{line.version}"}


def config_files(project: Project, line: RuntimeLine, lock_text: str,
                  inputs: Inputs) -> dict[str, bytes]:
    airflow = project.airflow_version(line.airflow)
    pins = [f"{e.name}=={airflow if e.name == 'apache-airflow' else e.version}"
            for e in requirements_file.parse(lock_text)[1]]
    passwd = inputs.root_text("etc/passwd")
    version = version_metadata(project, line)
    return {
        "etc/passwd": (passwd + f"astro:x:{ASTRO_UID}:0:astro:{AIRFLOW_HOME}:/bin/bash\n"
                       ).encode(),
        "etc/pip.conf": b"[install]\nconstraint = /" + SHARE.encode() + b"/constraints.txt\n",
        f"{SHARE}/constraints.txt": (
            f"# The Runtime {line.version} environment: pip may add packages, never change"
            " these.\n" + "\n".join(pins) + "\n").encode(),
        f"{SHARE}/version.json": (json.dumps(version, indent=2, sort_keys=True) + "\n").encode(),
    }


def revision(project: Project) -> str:
    try:
        return subprocess.run(["git", "-C", project.root, "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def image_of(project: Project, line: RuntimeLine, flavor: str, layers, history) -> oci.Image:
    tag = line.version if flavor == "onbuild" else f"{line.version}-base"
    labels = {"io.astronomer.docker.runtime.version": line.version,
              "io.astronomer.docker.airflow.version": project.airflow_version(line.airflow),
              "io.astronomer.docker.runtime.lts": "true" if line.lts else "false",
              "org.opencontainers.image.version": line.version}
    config = {
        "User": "astro",
        "WorkingDir": AIRFLOW_HOME,
        "Env": [
            "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"AIRFLOW_HOME={AIRFLOW_HOME}",
            f"ASTRONOMER_RUNTIME_VERSION={line.version}",
            f"RUNTIME_VERSION={line.version}",
            f"AIRFLOW_VERSION={project.airflow_version(line.airflow)}",
            f"PIP_CONSTRAINT=/{SHARE}/constraints.txt",
            "PIP_DISABLE_PIP_VERSION_CHECK=1",
            "PYTHONUNBUFFERED=1",
            "LANG=C.UTF-8",
            *(f"{k}={v}" for label in line.modules for k, v in project.modules[label].env),
        ],
        "Entrypoint": ["/usr/bin/dumb-init", "--", "/usr/local/bin/runtime-entrypoint"],
        "Cmd": [],
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": labels,
    }
    if flavor == "onbuild":
        config["OnBuild"] = [
            "USER root",
            "COPY packages.txt .",
            "RUN /usr/local/bin/runtime-install-packages packages.txt",
            "COPY requirements.txt .",
            "RUN /usr/local/bin/runtime-install-requirements requirements.txt",
            "USER astro",
            "COPY --chown=astro:0 . .",
        ]
    annotations = {"org.opencontainers.image.version": line.version,
                   "org.opencontainers.image.created": oci.rfc3339(line.source_date_epoch),
                   "org.opencontainers.image.revision": revision(project),
                   "org.opencontainers.image.title": f"Runtime {line.version} ({flavor})",
                   "org.opencontainers.image.ref.name": tag}
    floating = ".".join(line.version.split(".")[:2]) + ("" if flavor == "onbuild" else "-base")
    return oci.Image(REPO, tag, list(layers), list(history), config, line.source_date_epoch,
                     annotations, aliases=(floating,))
