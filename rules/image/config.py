"""The image config and the files of the config layer, made from the line's image policy.

Who the image runs as, its home, environment, entrypoint, labels, annotations, ONBUILD triggers
and names are declared in Starlark (`runtime_image`, referenced by each `runtime_line`;
rules.image.policy fills its templates): this module only assembles them, with the version
metadata and the pip constraints of the line's lock.
"""

import json
import subprocess
from pathlib import Path

from rules.image import policy
from rules.image.inputs import Inputs
from rules.load.model import Project, RuntimeLine
from rules.lock import requirements_file
from rules.oci import layout as oci


def flavors(project: Project, line: RuntimeLine) -> tuple[str, ...]:
    """The line's flavors, in build order (what `FLAVORS` was)."""
    return policy.flavors(project.image(line))


def version_metadata(project: Project, line: RuntimeLine) -> dict:
    image = project.image(line)
    patchset = project.patches.get(line.airflow)
    default = image.flavors[0].name
    return {"runtime_version": line.version, "line": line.name, "lts": line.lts,
            "airflow_version": project.airflow_version(line.airflow),
            "airflow_patches": [Path(p).name for p in patchset.patches] if patchset else [],
            "python": line.python, "debian": line.debian,
            "image": policy.reference(image, policy.tag(image, line.version, default))}


def data_dir(project: Project, line: RuntimeLine) -> str:
    """The policy's data_dir, relative (as a path inside a layer)."""
    return project.image(line).data_dir.strip("/")


def passwd_entry(project: Project, line: RuntimeLine) -> str:
    image = project.image(line)
    return f"{image.user}:x:{image.uid}:{image.gid}:{image.user}:{image.home}:{image.shell}\n"


def config_files(project: Project, line: RuntimeLine, lock_text: str,
                 inputs: Inputs) -> dict[str, bytes]:
    airflow = project.airflow_version(line.airflow)
    pins = [f"{e.name}=={airflow if e.name == 'apache-airflow' else e.version}"
            for e in requirements_file.parse(lock_text)[1]]
    passwd = inputs.root_text("etc/passwd")
    version = version_metadata(project, line)
    share = data_dir(project, line)
    return {
        "etc/passwd": (passwd + passwd_entry(project, line)).encode(),
        "etc/pip.conf": b"[install]\nconstraint = /" + share.encode() + b"/constraints.txt\n",
        f"{share}/constraints.txt": (
            f"# The Runtime {line.version} environment: pip may add packages, never change"
            " these.\n" + "\n".join(pins) + "\n").encode(),
        f"{share}/version.json": (json.dumps(version, indent=2, sort_keys=True) + "\n").encode(),
    }


def revision(project: Project) -> str:
    try:
        return subprocess.run(["git", "-C", project.root, "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def image_config(project: Project, line: RuntimeLine, flavor: str) -> dict:
    """The `config` part of the image config of one flavor."""
    image = project.image(line)
    values = policy.values(project, line, flavor)

    def fill(text: str) -> str:
        return policy.fill(text, values)

    config = {
        "User": image.user,
        "WorkingDir": fill(image.workdir),
        "Env": [*(f"{k}={fill(v)}" for k, v in image.env),
                *(f"{k}={v}" for label in line.modules for k, v in project.modules[label].env)],
        "Entrypoint": [fill(a) for a in image.entrypoint],
        "Cmd": [fill(a) for a in image.cmd],
        "ExposedPorts": {port: {} for port in image.exposed_ports},
        "Labels": {k: fill(v) for k, v in image.labels},
    }
    triggers = image.flavor(flavor).onbuild
    if triggers:
        config["OnBuild"] = [fill(t) for t in triggers]
    return config


def image_of(project: Project, line: RuntimeLine, flavor: str, layers, history,
             arch: str | None = None) -> oci.Image:
    """One flavor's image of the line (``arch``: its Debian architecture, the main lock's by
    default)."""
    image = project.image(line)
    tag = policy.tag(image, line.version, flavor)
    values = policy.values(project, line, flavor)
    annotations = {k: policy.fill(v, values) for k, v in image.annotations}
    annotations.update({"org.opencontainers.image.created": oci.rfc3339(line.source_date_epoch),
                        "org.opencontainers.image.revision": revision(project),
                        "org.opencontainers.image.ref.name": tag})
    return oci.Image(image.repository, tag, list(layers), list(history),
                     image_config(project, line, flavor), line.source_date_epoch, annotations,
                     aliases=policy.floating_tags(image, line.version, flavor),
                     architecture=arch or project.debian.arch)
