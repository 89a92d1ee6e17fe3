"""Load an image layout into a Docker engine through the Docker SDK (`docker load`)."""

from pathlib import Path

from rules.oci import layout as oci
from rules.common.errors import UserError


def load(layout: Path) -> list[str]:
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=600)
        images = client.images.load(oci.layout_tar(Path(layout)))
    except DockerException as e:
        raise UserError(f"cannot load into the Docker engine: {e}") from None
    return sorted({tag for image in images for tag in image.tags})
