"""Helpers for tests: tiny projects in a temp folder, tiny wheels, running the CLI."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from rules.common.cache import default_cache

REPO = Path(__file__).resolve().parents[1]

WORKSPACE = """\
workspace(name = "fixture")
debian_source(
    name = "bullseye",
    archives = ["https://deb.debian.org/debian bullseye"],
    packages = ["python3.9"],
    lock = "constraints/debian.lock.json",
)
python_toolchain(name = "py", version = "3.9", platform = "x86_64-manylinux_2_31")
python_lock(
    name = "airflow-2.2.4",
    airflow = "2.2.4",
    lock = "constraints/constraints-2.2.4.txt",
    requirements_in = "constraints/requirements-2.2.4.in",
    index_url = "",
    find_links = ["wheels"],
    constraints = {constraints},
)
"""

BUILD = """\
runtime_line(
    name = "4.2",
    version = "4.2.0",
    airflow = "2.2.4",
    python = "3.9",
    debian = "bullseye",
    pypi_cutoff = "2030-01-01",
    source_date_epoch = 1646179200,
    providers = "//providers:default",
    modules = [],
    image = "//runtime:image",
)
"""

# A small image policy (runtime/BUILD of a fixture project): no Airflow or Astronomer values.
IMAGE = """\
runtime_image(
    name = "image",
    repository = "fixture",
    tag = "{version}{tag_suffix}",
    floating_tags = ["{major_minor}{tag_suffix}"],
    flavors = {"main": {}, "slim": {"tag_suffix": "-slim"}},
    user = "app",
    uid = 1000,
    gid = 1000,
    home = "/home/app",
    data_dir = "/usr/local/share/fixture",
    env = {"APP_VERSION": "{version}"},
)
"""

PROVIDERS = """\
provider_set(
    name = "default",
    airflow_extras = ["amazon"],
    packages = {packages},
)
"""


def make_wheel(folder: Path, name: str, version: str, requires=(), extras=None,
               requires_python: str | None = None, code: dict | None = None) -> Path:
    """A minimal, valid pure-Python wheel with the given metadata (and extra files: `code`)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    meta += [f"Requires-Dist: {r}" for r in requires]
    for extra, reqs in (extras or {}).items():
        meta.append(f"Provides-Extra: {extra}")
        meta += [f'Requires-Dist: {r}; extra == "{extra}"' for r in reqs]
    files = {
        f"{dist}/__init__.py": f"__version__ = {version!r}\n",
        f"{info}/METADATA": "\n".join(meta) + "\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: fixture\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
        **(code or {}),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    out = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as z:
        for path, text in sorted(files.items()):
            info_ = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            z.writestr(info_, text)
    return out


def make_project(root: Path, packages=("otherdep",), constraints=()) -> Path:
    """A one-line project whose lock resolves offline against ``root/wheels``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "WORKSPACE").write_text(WORKSPACE.format(constraints=json.dumps(list(constraints))))
    (root / "BUILD").write_text(BUILD)
    (root / "runtime").mkdir(exist_ok=True)
    (root / "runtime" / "BUILD").write_text(IMAGE)
    (root / "runtime" / "support.json").write_text(
        '{"lines": {"4.2": {"lts": true, "supported_until": "2030-01-01"}}}\n')
    (root / "providers").mkdir(exist_ok=True)
    (root / "providers" / "BUILD").write_text(PROVIDERS.format(packages=json.dumps(list(packages))))
    wheels = root / "wheels"
    make_wheel(wheels, "apache-airflow", "2.2.4", requires=["fakedep>=1"],
               extras={"amazon": ["apache-airflow-providers-amazon"]})
    make_wheel(wheels, "apache-airflow-providers-amazon", "1.0.0", requires=["apache-airflow>=2"])
    make_wheel(wheels, "fakedep", "1.0.0")
    make_wheel(wheels, "otherdep", "1.0.0")
    make_wheel(wheels, "setuptools", "59.6.0")
    return root


def run_invoke(cwd: Path, *args: str, timeout: int = 1200, env: dict | None = None,
               umask: int | None = None, prefix: tuple = ()) -> subprocess.CompletedProcess:
    """Run the project's invoke tasks from ``cwd`` as a user would (a separate process)."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    if "RUNTIME_CALLER_DIR" not in (env or {}):  # (./dev's, when the suite runs under it)
        full_env.pop("RUNTIME_CALLER_DIR", None)
    return subprocess.run([*prefix, *invoke_argv(*args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def invoke_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]



def upstream_airflow_wheel(proj, airflow: str) -> tuple[Path, str]:
    """(CAS path, filename) of the locked upstream apache-airflow wheel of ``airflow``,
    downloaded and sha256-checked on a miss (the network once; no whole-lock fetch)."""
    from rules.fetch import download, pypi_files
    from rules.lock import requirements_file

    cache = default_cache()
    lock = proj.locks[airflow]
    text = (REPO / lock.lock).read_text()
    if pypi_files.choices_fetched(cache, text):
        chosen = {c.name: c for c in pypi_files.load_choices(cache, text, lock.lock)}
        pick = chosen["apache-airflow"]
    else:
        entry = next(e for e in requirements_file.parse(text)[1] if e.name == "apache-airflow")
        tags = pypi_files.target_tags(proj.python.version, proj.python.platform)
        pick = pypi_files.choose(entry.name, entry.version,
                                 pypi_files.index_files(lock.index_url, entry.name,
                                                        entry.version), entry.hashes, tags)
    return download.fetch_verified(pick.url, pick.sha256, cache, pick.filename), pick.filename


def cas_layer(cache: Path, seed: bytes, repeat: int = 1000):
    """A rules.oci.layer.Layer of ``seed * repeat`` bytes, stored in ``cache``'s CAS (for
    layouts written by rules.oci.layout in tests; not a real tar)."""
    from rules.fetch.download import cas_path
    from rules.oci.layer import Layer

    data = seed * repeat
    sha = hashlib.sha256(data).hexdigest()
    cas_path(cache, sha).parent.mkdir(parents=True, exist_ok=True)
    cas_path(cache, sha).write_bytes(data)
    return Layer(f"sha256:{sha}", f"sha256:{sha}", len(data), 1)


def fetched(arch: str | None = None, airflow: str | None = None) -> None:
    """Fetch (the network once; a no-op when the cache has them) the .debs of the main lock,
    and, for another ``arch``, its lock's and the cross toolchain's; with ``airflow``, that
    lock's Python files too. Tests that need them fetch them rather than skip."""
    from rules.fetch import locked_inputs
    from rules.load import project

    proj, cache = project.load(REPO), default_cache()
    locked_inputs.fetch_debian(proj, cache)
    if arch and arch != proj.debian.arch:
        locked_inputs.fetch_debian(proj, cache, arch)
        locked_inputs.fetch_cross(proj, cache, arch)
    if airflow:
        locked_inputs.fetch_python(proj, airflow, cache)
