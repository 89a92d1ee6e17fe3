"""`invoke pex`: a line's Python environment as one reproducible PEX file.

Built inside the Debian root by the image's own python3.9, from the same verified wheels the
image installs (sdists built the same way), with no index: `python3.9 runtime-4.2.0.pex version`
runs the image's Airflow outside Docker.
"""

import hashlib
import tempfile
from pathlib import Path

from packaging.utils import parse_wheel_filename

from rules.common import atomic, output
from rules.debian import chroot
from rules.image import build as image
from rules.load.model import Project


def build(project: Project, line_name: str, out_dir: Path, cache: Path) -> tuple[Path, str]:
    import pex

    line = project.line(line_name)
    name = f"runtime-{line.version}.pex"
    # before any work: the folder may hold the user's files, the file only an earlier PEX
    target = output.check_file(Path(out_dir) / name, output.is_pex, "a PEX")
    epoch = image.shared_epoch(project, line)
    with image.Inputs(project, cache, epoch) as inputs:
        wheels = image.wheels_for(project, line.airflow, inputs)
        rootfs = inputs.rootfs()
        inputs.save()
    scratch = Path(cache) / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pex-", dir=scratch) as tmp:
        house, out = Path(tmp) / "wheels", Path(tmp) / "out"
        house.mkdir()
        out.mkdir()
        pins = []
        for name, (blob, filename, sha) in sorted(wheels.items()):
            atomic.link_or_copy(blob, house / filename)
            version = parse_wheel_filename(filename)[1]
            pins.append(f"{name}=={version} --hash=sha256:{sha}")
        (Path(tmp) / "req").mkdir()
        (Path(tmp) / "req" / "requirements.txt").write_text("\n".join(pins) + "\n")
        pex_site = Path(pex.__file__).resolve().parent.parent
        chroot.run(rootfs, ["python3.9", "-m", "pex", "--no-pypi", "--find-links", "/mnt/wheels",
                            "--intransitive", "-r", "/mnt/req/requirements.txt",
                            "--python", "/usr/bin/python3.9", "-c", "airflow",
                            "--pex-root", "/tmp/pex-root", "-o", f"/mnt/out/{name}"],
                   binds={"wheels": house, "out": out, "req": Path(tmp) / "req",
                          "pexsite": pex_site},
                   env={"PYTHONPATH": "/mnt/pexsite", "SOURCE_DATE_EPOCH": str(epoch)},
                   what=f"building {name}")
        data = (out / name).read_bytes()
        output.check_file(target, output.is_pex, "a PEX")  # again: the user may have been quick
        atomic.write_bytes(target, data, mode=0o755)
    return target, hashlib.sha256(data).hexdigest()


def run(project: Project, line_name: str, pex_file: Path, args: list[str], cache: Path) -> str:
    """Run the PEX with the line's python3.9 (in its Debian root)."""
    epoch = image.shared_epoch(project, project.line(line_name))
    rootfs = image.Inputs(project, cache, epoch).rootfs()
    return chroot.run(rootfs, ["python3.9", f"/mnt/pex/{Path(pex_file).name}", *args],
                      binds={"pex": Path(pex_file).resolve().parent},
                      env={"AIRFLOW_HOME": "/tmp/airflow"}, what=f"running {pex_file}")
