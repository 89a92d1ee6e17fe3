"""Feasibility only: a line's locked Python set installed into an arm64 root, run under qemu-user.

    .venv/bin/python tools/arm64_airflow_probe.py ARM64_ROOT CROSS_WHEELS [--runtime 4.2]

Not the image (no layers, no .pyc, no Runtime modules): it answers whether the line's wheels,
chosen for aarch64 from the lock's hashes, run there. Each distribution is installed from

- the aarch64 wheel the lock's hashes allow (downloaded into the CAS), or the wheel amd64 uses
  when that is pure (`none-any`; the patched Airflow wheel and the wheels built from pure
  sdists come from the build's cache: run `invoke image --runtime LINE` first);
- CROSS_WHEELS (tools/cross_sdist.py's output) for the sdists with C code;
- pendulum: its amd64 wheel without its two speed-up extensions (pure-Python fallback), as no
  cross-built wheel exists yet.

Then the ELF machine of every file (none may be x86-64), and, chrooted into a copy of the
root with qemu-aarch64-static called explicitly (no binfmt):
``import airflow``, every module of every installed provider, ``airflow version``, ``airflow db
init`` and ``airflow dags list`` on sqlite. Prints what each step says; the copy is removed.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from packaging.utils import parse_wheel_filename  # noqa: E402

from rules.common.cache import default_cache  # noqa: E402
from rules.debian import extract_root  # noqa: E402
from rules.debian.chroot import CHROOT  # noqa: E402
from rules.fetch import download, pypi_files  # noqa: E402
from rules.image import build as image  # noqa: E402
from rules.image.inputs import Inputs  # noqa: E402
from rules.load import project  # noqa: E402
from rules.lock import requirements_file  # noqa: E402
from rules.python import wheel_install, wheel_unpack  # noqa: E402

PROVIDERS = r"""
import importlib, pkgutil, sys, traceback
import airflow.providers
ok, bad = 0, []
for m in pkgutil.walk_packages(airflow.providers.__path__, "airflow.providers."):
    if ".example_dags" in m.name or ".tests" in m.name:
        continue
    try:
        importlib.import_module(m.name); ok += 1
    except Exception as e:
        bad.append(f"{m.name}: {type(e).__name__}: {e}")
print(f"provider modules imported: {ok}, failed: {len(bad)}")
for line in bad[:40]:
    print("  " + line)
"""


def pure(filename: str) -> bool:
    return all(t.platform == "any" for t in parse_wheel_filename(filename)[3])


def wheels_for_arm64(proj, line, cache: Path, cross: Path) -> list[tuple[Path, str, str]]:
    """(blob, filename, name) of every distribution of the line's lock, for aarch64."""
    lock = proj.locks[line.airflow]
    entries = {e.name: e for e in requirements_file.parse(
        (Path(proj.root) / lock.lock).read_text())[1]}
    amd64 = Inputs(proj, cache, image.shared_epoch(proj, line)).wheel_files(line.airflow)
    crossed = {parse_wheel_filename(p.name)[0]: p for p in sorted(cross.glob("*.whl"))}
    tags = pypi_files.target_tags("3.9", "aarch64-manylinux_2_31")

    def one(name: str) -> tuple[Path, str, str]:
        blob, filename, _ = amd64[name]
        if pure(filename) or name == "pendulum":
            return blob, filename, name
        if name in crossed:
            return crossed[name], crossed[name].name, name
        entry = entries[name]
        files = pypi_files.index_files(lock.index_url, name, entry.version)
        chosen = pypi_files.choose(name, entry.version, files, entry.hashes, tags)
        if chosen.kind != "wheel":
            raise SystemExit(f"{name}: no aarch64 wheel and no cross-built one in {cross}")
        return (download.fetch_verified(chosen.url, chosen.sha256, cache, what=chosen.filename),
                chosen.filename, name)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, sorted(amd64)))


def install(wheels, root: Path, work: Path) -> None:
    for blob, filename, name in wheels:
        tree = work / f"tree-{name}"
        tree.mkdir()
        wheel_unpack.unpack(blob, filename, tree, name, interpreter=wheel_install.PYTHON,
                            layout=wheel_install.IMAGE_PATHS)
        if name == "pendulum":  # the amd64 wheel's speed-ups: gone, pure fallback
            for so in tree.rglob("*.so"):
                so.unlink()
        for folder, dest in wheel_install.IMAGE_PATHS.items():
            if (tree / folder).is_dir():
                (root / dest).mkdir(parents=True, exist_ok=True)
                subprocess.run(["cp", "-a", "--", f"{tree / folder}/.", str(root / dest)],
                               check=True)
        shutil.rmtree(tree)


def run(root: Path, code: str, what: str, timeout: int = 1800) -> None:
    """Run the Python ``code`` with the root's python3.9 under qemu-user, chrooted."""
    env = ["PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8", "HOME=/tmp",
           "AIRFLOW_HOME=/airflow", "AIRFLOW__CORE__LOAD_EXAMPLES=False",
           "AIRFLOW__CORE__DAGS_FOLDER=/airflow/dags", "PYTHONDONTWRITEBYTECODE=1"]
    (root / "probe.py").write_text(code)
    (root / "airflow/dags").mkdir(parents=True, exist_ok=True)  # kept between runs
    (root / "airflow/dags/probe_dag.py").write_text(DAG)
    script = (f"mount --rbind /dev {root}/dev && mount -t proc proc {root}/proc && "
              f"mount -t tmpfs tmpfs {root}/tmp && "
              "env -i " + " ".join(env) + f" {CHROOT} {root} /qemu -L / /usr/bin/python3.9 "
              "/probe.py")
    started = time.monotonic()
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--fork", "sh",
                           "-c", script], capture_output=True, text=True, timeout=timeout)
    out = [x for x in (proc.stdout + proc.stderr).strip().splitlines() if "WARNING" not in x]
    print(f"{what}: exit {proc.returncode}, {time.monotonic() - started:.0f} s")
    for line in out if len(out) <= 60 else out[:50] + ["..."] + out[-5:]:
        print(f"  {line}")


# in-process: a child python3.9 would be exec'd natively (no binfmt handler), and fail
CLI = """import sys
sys.argv = ["airflow", *{args}]
from airflow.__main__ import main
main()
"""
DAG = """from datetime import datetime
from airflow import DAG
from airflow.operators.bash import BashOperator
with DAG("probe", start_date=datetime(2022, 1, 1), schedule_interval=None) as dag:
    BashOperator(task_id="hello", bash_command="echo hello")
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("cross", type=Path)
    parser.add_argument("--runtime", default="4.2")
    parser.add_argument("--skip-providers", action="store_true")
    args = parser.parse_args(argv)
    skip_providers = args.skip_providers
    proj, cache = project.load(Path(__file__).resolve().parent.parent), default_cache()
    line = proj.line(args.runtime)
    wheels = wheels_for_arm64(proj, line, cache, args.cross)
    print(f"{len(wheels)} distributions: "
          f"{sum(not pure(f) and 'aarch64' in f for _, f, _ in wheels)} aarch64 wheels, "
          f"{sum(pure(f) for _, f, _ in wheels)} pure")
    work = Path(tempfile.mkdtemp(prefix="runtime-airflow-probe-", dir="/dev/shm"))
    try:
        root = work / "root"
        subprocess.run(["cp", "-a", "--", f"{args.root}/.", str(root)], check=True)
        install(wheels, root, work)
        wrong = extract_root.check_elf(root, "arm64")
        elves = sum(1 for p in root.rglob("*.so*") if p.is_file() and not p.is_symlink())
        print(f"shared objects (*.so*) in the root: {elves}; ELF files not aarch64: "
              f"{len(wrong)}" + "".join(f"\n  {w}" for w in wrong[:20]))
        shutil.copy(shutil.which("qemu-aarch64-static"), root / "qemu")  # (after the check)
        run(root, "import airflow, platform\nprint(airflow.__version__, platform.machine())\n",
            "import airflow")
        if not skip_providers:
            run(root, PROVIDERS, "every provider module")
        run(root, CLI.format(args=["version"]), "airflow version")
        run(root, CLI.format(args=["db", "init"]), "airflow db init (sqlite)")
        run(root, CLI.format(args=["dags", "list"]), "airflow dags list")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
