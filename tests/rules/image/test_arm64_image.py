"""The arm64 image, built on amd64 without emulating the build, checked by running it user-mode.

One `invoke image --platform all` of a line (RUNTIME_TEST_LINE, else 4.2) and its amd64 image
alone in the shared cache, and its arm64 image alone in an empty cache (under umask 077 and
another TZ: every action runs again there), then:

- the layout: each flavor's tag names an image index of a linux/amd64 and a linux/arm64/v8
  manifest, the first the image built alone, the second the arm64 image rebuilt in the empty
  cache, bit for bit; manifest.json (`docker load`) lists the host's platform only;
- the arm64 image's layers, unpacked into a root: no ELF file of another machine than aarch64;
- its python3.9 run with `qemu-aarch64-static -L` (user mode, chrooted; no binfmt handler is
  registered: a child python3.9 would be exec'd natively, so the CLI runs in-process):
  ``import airflow`` (the line's version, on aarch64), every module of every installed
  provider (a failure may only be a missing distribution the line does not lock), `airflow
  version`, and `airflow dags list` parsing a DAG on sqlite;
- .pyc of a sample of packages, compiled again by arm64's python3.9 under qemu: the same bytes
  as the image's (compiled by the build's amd64 python3.9).
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from rules.common.cache import default_cache
from rules.debian import extract_root, python_root
from rules.debian.chroot import CHROOT, CLEAN_ENV
from rules.load import project
from rules.fetch import download
from rules.lock import debian_lock
from rules.oci import layout as oci
from rules.python import wheel_install
from tests.fixtures import REPO, run_invoke

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="chroot and unshare need root")]

LINE = os.environ.get("RUNTIME_TEST_LINE", "4.2")
QEMU = shutil.which("qemu-aarch64-static")
# (a sample of packages whose .pyc are compiled again under qemu: small, pure, and in every lock)
PYC_SAMPLE = ("six.py", "attr", "markupsafe", "jinja2")


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _json(layout: Path, digest: str) -> dict:
    return json.loads(_blob(layout, digest).read_text())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(layout of --platform all and of linux/amd64 alone, made in the shared cache; layout of
    linux/arm64 alone, made in an empty cache under umask 077 and another TZ; work folder)."""
    from rules.fetch.locked_inputs import cache_of_fetched

    work = tmp_path_factory.mktemp("arm64")
    fetched = run_invoke(REPO, "fetch", "--platform", "linux/arm64", "--runtime", LINE,
                         timeout=1800)
    assert fetched.returncode == 0, fetched.stdout[-3000:] + fetched.stderr[-3000:]
    fresh = cache_of_fetched(default_cache(), work / "cache", kinds=("file choice",))
    both, alone, arm = work / "both", work / "alone", work / "arm"
    for out, args, env, umask in (
            (both, ("--platform", "all"), None, None), (alone, (), None, None),
            (arm, ("--platform", "linux/arm64"),
             {"RUNTIME_CACHE": str(fresh), "TZ": "Asia/Tokyo"}, 0o077)):
        proc = run_invoke(REPO, "image", "--runtime", LINE, *args, "--out", str(out),
                          timeout=3000, env=env, umask=umask)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    yield both, alone, arm, work
    shutil.rmtree(work, ignore_errors=True)


def _tagged(layout: Path) -> dict[str, dict]:
    index = json.loads((layout / "index.json").read_text())
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m
            for m in index["manifests"] if "annotations" in m
            and "org.opencontainers.image.ref.name" in m["annotations"]}


def test_each_tag_names_an_index_of_amd64_and_arm64_rebuilt_bit_for_bit(built):
    """Each platform's image of the index is the one built alone: arm64's in another cache
    (every action run again there, another umask and TZ), the same digest."""
    both, alone, arm, _ = built
    tags, plain, arm_alone = _tagged(both), _tagged(alone), _tagged(arm)
    assert tags and set(tags) == set(plain) == set(arm_alone)
    for tag, descriptor in tags.items():
        assert descriptor["mediaType"] == oci.INDEX, tag
        manifests = _json(both, descriptor["digest"])["manifests"]
        platforms = [m["platform"] for m in manifests]
        assert platforms == [{"architecture": "amd64", "os": "linux"},
                             {"architecture": "arm64", "os": "linux", "variant": "v8"}]
        assert manifests[0]["digest"] == plain[tag]["digest"]
        assert manifests[1]["digest"] == arm_alone[tag]["digest"]
        assert arm_alone[tag]["mediaType"] == oci.MANIFEST
        config = _json(both, _json(both, manifests[1]["digest"])["config"]["digest"])
        assert (config["architecture"], config.get("variant")) == ("arm64", "v8")
    docker = json.loads((both / "manifest.json").read_text())
    assert len(docker) == len({d["digest"] for d in plain.values()})
    for entry in docker:
        config = json.loads((both / entry["Config"]).read_text())
        assert config["architecture"] == oci.host_architecture()


def test_verify_checks_every_platform_s_images_against_their_attestations(built):
    """`invoke verify` of the layout: the images of each index (both flavors, both platforms),
    their SBOMs listing what the image holds and their provenance naming it."""
    both = built[0]
    proc = run_invoke(REPO, "verify", str(both), "--allow-unsigned", "--no-rebuild",
                      timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    index = json.loads((both / "index.json").read_text())
    images = {m["digest"] for d in index["manifests"] if d["mediaType"] == oci.INDEX
              for m in _json(both, d["digest"])["manifests"]}
    assert len(images) == 4
    for digest in images:
        assert digest[:19] in proc.stdout
    assert "FAIL" not in proc.stdout


def test_arm64_provenance_names_its_platform_and_every_lock_it_was_built_from(built):
    """The arm64 image's provenance: its platform, the main, arm64 and cross toolchain Debian
    locks (the amd64 root compiles its standard library, the cross gcc its C sdists), and
    the cross toolchain's .debs among its dependencies."""
    from rules.attest import verify
    from rules.lock import cross_lock
    from rules.oci import referrers

    both = built[0]
    proj = project.load(REPO)
    layout = verify.Layout(both)
    for digest, _ in layout.images():
        config = _json(both, _json(both, digest)["config"]["digest"])
        entry = next(e for e in layout.referrers(digest)
                     if e.get("artifactType") == referrers.IN_TOTO)
        art = json.loads(layout.read(entry["digest"], "artifact"))
        statement = json.loads(layout.read(art["layers"][0]["digest"], "provenance"))
        build = statement["predicate"]["buildDefinition"]
        names = {d["name"] for d in build["resolvedDependencies"]}
        cross = cross_lock.lock_path(proj.debian, "arm64")
        if config["architecture"] == "arm64":
            assert build["externalParameters"]["platform"] == "linux/arm64"
            assert {proj.debian.lock, debian_lock.arch_lock_path(proj.debian, "arm64"),
                    cross} <= names
            assert any(n.startswith("deb gcc-10-aarch64-linux-gnu_") for n in names)
        else:
            assert "platform" not in build["externalParameters"]
            assert cross not in names


SYFT = shutil.which("syft") or str(Path(sys.executable).parent / "syft")


def test_syft_sees_exactly_the_arm64_sbom_s_packages(built, tmp_path):
    """syft (offline, no database) scans the arm64 image alone, copied out of the index by
    skopeo: the Debian and Python packages it finds are its SPDX SBOM's, none more or fewer
    (the upstream Airflow of the SBOM is pedigree, not in the image as such)."""
    from packaging.utils import canonicalize_name

    from rules.attest import verify
    from rules.oci import referrers

    both = built[0]
    proj = project.load(REPO)
    line = proj.line(LINE)
    tag = line.version
    index = _json(both, _tagged(both)[tag]["digest"])
    arm = next(m["digest"] for m in index["manifests"]
               if m["platform"]["architecture"] == "arm64")
    layout = verify.Layout(both)
    spdx = next(json.loads(layout.read(e["digest"], "artifact"))
                for e in layout.referrers(arm) if e.get("artifactType") == referrers.SPDX)
    data = layout.read(spdx["layers"][0]["digest"], "SPDX")
    debs, dists = verify.spdx_contents(data)
    pypi = {(str(canonicalize_name(p["name"])), p.get("versionInfo"))
            for p in json.loads(data)["packages"] if not p["SPDXID"].endswith("-upstream")
            and any(r["referenceLocator"].startswith("pkg:pypi/")
                    for r in p.get("externalRefs", []))}
    listed = {("deb", n, v) for n, v, _ in debs} | {("python", n, v) for n, v in pypi | dists}
    assert any(a == "arm64" for _, _, a in debs)
    one = tmp_path / "one"
    proc = subprocess.run(["skopeo", "copy", "-q", "--override-arch", "arm64",
                           "--override-variant", "v8", f"oci:{both}:{tag}", f"oci:{one}:scan"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((one / "index.json").read_text())["manifests"][0]["digest"] == arm
    proc = subprocess.run([SYFT, "scan", f"oci-dir:{one}", "-o", "json", "-q"],
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, SYFT_CHECK_FOR_APP_UPDATE="false"))
    assert proc.returncode == 0, proc.stderr
    found = {(a["type"], str(canonicalize_name(a["name"])) if a["type"] == "python"
              else a["name"], a["version"]) for a in json.loads(proc.stdout)["artifacts"]
             if a["type"] in ("deb", "python")}
    assert found == listed, ("syft only", found - listed, "SBOM only", listed - found)


@pytest.fixture(scope="module")
def arm64_root(built):
    """The arm64 image of the line's default flavor, unpacked (as root: owners kept)."""
    both, _, _, work = built
    proj = project.load(REPO)
    line = proj.line(LINE)
    from rules.image import policy

    image = proj.image(line)
    tag = policy.tag(image, line.version, image.flavors[0].name)
    index = _json(both, _tagged(both)[tag]["digest"])
    arm = next(m for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    root = work / "root"
    root.mkdir()
    for layer in _json(both, arm["digest"])["layers"]:
        with tarfile.open(_blob(both, layer["digest"])) as tar:
            tar.extractall(root, numeric_owner=True, filter="fully_trusted")
    return root


def test_no_shared_object_or_program_of_another_machine(arm64_root):
    shared = [p for p in arm64_root.rglob("*.so*") if p.is_file() and not p.is_symlink()]
    assert len(shared) > 500  # (the root's and the aarch64 wheels': a real image)
    assert extract_root.check_elf(arm64_root, "arm64") == []


PROBE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/tmp",
             "AIRFLOW_HOME": "/probe-home", "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
             "AIRFLOW__CORE__DAGS_FOLDER": "/probe-home/dags", "PYTHONDONTWRITEBYTECODE": "1",
             "AIRFLOW__CORE__LOAD_DEFAULT_CONNECTIONS": "False"}


def _run(root: Path, code: str | None, timeout: int = 900, args: tuple = ("-B", "/probe.py"),
         env: dict = PROBE_ENV) -> str:
    """Run ``code`` (or python3.9 ``args``) with the root's python3.9 under qemu-user,
    chrooted into the root."""
    if code is not None:
        (root / "probe.py").write_text(code)
    script = (f"mount --rbind /dev {root}/dev && mount -t proc proc {root}/proc && "
              f"mount -t tmpfs tmpfs {root}/tmp && env -i "
              + " ".join(f"{k}={v}" for k, v in sorted(env.items()))
              + f" {CHROOT} {root} /qemu -L / /usr/bin/python3.9 {' '.join(args)}")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--fork", "sh",
                           "-c", script], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


@pytest.fixture(scope="module")
def runnable(arm64_root):
    if QEMU is None:
        pytest.fail("qemu-aarch64-static is missing: apt-get install qemu-user-static "
                    "(the test task installs it)")
    shutil.copy(QEMU, arm64_root / "qemu")
    (arm64_root / "probe-home/dags").mkdir(parents=True)
    (arm64_root / "probe-home/dags/probe_dag.py").write_text(
        "from datetime import datetime\nfrom airflow import DAG\n"
        "from airflow.operators.bash import BashOperator\n"
        "with DAG('arm64_probe', start_date=datetime(2022, 1, 1),\n"
        "         schedule_interval=None) as dag:\n"
        "    BashOperator(task_id='hello', bash_command='echo hello')\n")
    return arm64_root


def test_airflow_imports_on_aarch64(runnable):
    proj = project.load(REPO)
    airflow = proj.airflow_version(proj.line(LINE).airflow)
    out = _run(runnable, "import airflow, platform\nprint(airflow.__version__, "
                         "platform.machine())\n")
    assert out.split()[-2:] == [airflow, "aarch64"]


PROVIDERS = r"""
import importlib, pkgutil
import airflow.providers
ok, bad = 0, []
for m in pkgutil.walk_packages(airflow.providers.__path__, "airflow.providers."):
    if ".example_dags" in m.name:
        continue
    try:
        importlib.import_module(m.name)
        ok += 1
    except ModuleNotFoundError as e:
        bad.append(("missing", m.name, e.name))
    except Exception as e:
        bad.append(("error", m.name, f"{type(e).__name__}: {e}"))
import json
print(json.dumps({"ok": ok, "bad": bad}))
"""


def test_every_provider_module_imports_or_lacks_only_an_unlocked_distribution(runnable):
    result = json.loads(_run(runnable, PROVIDERS, timeout=1500).splitlines()[-1])
    assert result["ok"] > 100
    errors = [b for b in result["bad"] if b[0] == "error"]
    assert errors == []  # an architecture problem (a wrong ELF, a missing symbol) lands here
    installed = _run(runnable, "import importlib.metadata as m, json\n"
                               "print(json.dumps(sorted({(d.metadata['Name'] or '').lower() "
                               "for d in m.distributions()})))\n").splitlines()[-1]
    top_levels = _run(runnable, "import pkgutil, json\nprint(json.dumps(sorted("
                                "m.name for m in pkgutil.iter_modules())))\n").splitlines()[-1]
    # a missing module is a provider package the line does not install, or a distribution
    # it does not lock: never one of the image's own top-level modules
    missing = {b[2].split(".")[0] for b in result["bad"]
               if not b[2].startswith("airflow.providers.")}
    assert not missing & set(json.loads(top_levels)), missing
    assert json.loads(installed)


CLI = """import sys
sys.argv = ["airflow", *{args!r}]
from airflow.__main__ import main
main()
"""


def test_airflow_cli_and_a_dag_parse(runnable):
    proj = project.load(REPO)
    airflow = proj.airflow_version(proj.line(LINE).airflow)
    assert _run(runnable, CLI.format(args=["version"])).strip().splitlines()[-1] == airflow
    _run(runnable, CLI.format(args=["db", "init"]), timeout=1500)  # (sqlite, in AIRFLOW_HOME)
    listed = _run(runnable, CLI.format(args=["dags", "list", "--output", "plain"]),
                  timeout=1500)
    assert "arm64_probe" in listed and "probe_dag.py" in listed


def _arm64_python_root(folder: Path, stdlib_from_main_lock: bool) -> Path:
    """rules.debian.python_root's recipe with the arm64 lock's packages (the build compiles
    .pyc in the amd64 one); ``stdlib_from_main_lock``: the pure modules of the standard library
    (not lib-dynload, not the sysconfig data) of the main lock's version instead of arm64's."""
    proj = project.load(REPO)
    cache = default_cache()
    arm = {p["name"]: p for p in debian_lock.packages_for(proj, "arm64")}
    main = {p["name"]: p for p in debian_lock.packages_for(proj)}
    root = folder / "root"
    root.mkdir(parents=True)
    for name in python_root.PACKAGES:
        subprocess.run(["dpkg-deb", "-x", str(download.cas_path(cache, arm[name]["sha256"])),
                        str(root)], check=True)
    if stdlib_from_main_lock:
        other = folder / "main"
        for name in ("libpython3.9-minimal", "libpython3.9-stdlib"):
            subprocess.run(["dpkg-deb", "-x", str(download.cas_path(
                cache, main[name]["sha256"])), str(other)], check=True)
        for source in sorted((other / "usr/lib/python3.9").rglob("*.py")):
            rel = source.relative_to(other)
            if "lib-dynload" in rel.parts or source.name.startswith("_sysconfigdata") \
                    or source.is_symlink():
                continue
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / rel)
    for name in python_root.MOUNT_POINTS:
        (root / name).mkdir(exist_ok=True)
    shutil.copy(QEMU, root / "qemu")
    _run(root, None, args=("-m", "compileall", "-q", "-j", "1", "--invalidation-mode",
                           "unchecked-hash", python_root.STDLIB), env=CLEAN_ENV)
    return root


def _compiled_again(root: Path, site: Path) -> dict[str, tuple[bytes, bytes]]:
    """rel path -> (the image's .pyc, arm64's) for the sample, compiled as
    rules.python.wheel_install runs compile_driver (-B, the chroot's clean environment)."""
    tree_site = root / "mnt/t/site"
    tree_site.mkdir(parents=True)
    for name in PYC_SAMPLE:
        path = site / name
        if path.is_dir():
            shutil.copytree(path, tree_site / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        elif path.exists():
            shutil.copy(path, tree_site / name)
    shutil.copy(REPO / "rules/python/compile_driver.py", root / "mnt/compile_driver.py")
    _run(root, None, args=("-B", "/mnt/compile_driver.py", f"/{wheel_install.SITE}",
                           "/mnt/t"), env=CLEAN_ENV)
    return {pyc.relative_to(tree_site).as_posix(): ((site / pyc.relative_to(tree_site))
                                                     .read_bytes(), pyc.read_bytes())
            for pyc in sorted(tree_site.rglob("*.pyc"))}


def test_package_bytecode_is_what_arm64_python_writes(runnable, tmp_path):
    """The image's .pyc were compiled by the build's amd64 python3.9 (rules.python
    compile_driver in rules.debian.python_root). arm64's python3.9 under qemu, with the
    standard library of the same Debian version, writes the very same bytes. (The arm64
    lock's own python3.9 is an older Debian version, 3.9.2-1: this mirror serves no arm64 file
    of bullseye-security. With its standard library, a few .pyc differ in marshal's
    reference flags only -- which objects the compiling process holds -- and load as equal
    code objects; docs/arm64.md.)"""
    site = runnable / wheel_install.SITE
    pairs = _compiled_again(_arm64_python_root(tmp_path / "same", True), site)
    assert len(pairs) > 20
    assert [rel for rel, (image, arm64) in pairs.items() if image != arm64] == []
