"""Runtime build tasks: a thin invoke front end over the `rules` engine.

Run `./dev --list` (or `invoke --list` inside the dev venv) to see them.
"""

import json
import os
import shlex
import sys
from pathlib import Path

from invoke import Collection, task

# invoke puts this package's own folder on sys.path, not the checkout's, where `rules` is
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from rules.common import atomic, report  # noqa: E402
from rules.load import project  # noqa: E402
from rules.lock import cross_lock, debian_lock, pip_lock  # noqa: E402
from rules.common.cli import user_errors  # noqa: E402
from rules.common.errors import UserError  # noqa: E402
from rules.common.cache import default_cache  # noqa: E402


def _user_path(path: str) -> Path:
    """A path the user typed: relative to the folder `./dev` was started from (it runs the
    tasks from the checkout), else to this process's working folder."""
    return Path(os.environ.get("RUNTIME_CALLER_DIR") or ".", path)


@task(help={
    "runtime": "lock only the Airflow version of this Runtime line (e.g. 4.2)",
    "upgrade_package": "let this package move to its newest allowed version (repeatable)",
    "check": "offline: exit 1 with a diff when a lock no longer matches its inputs",
    "debian": "also (re)lock the Debian packages (default: yes)",
    "platform": "only the Debian lock of another platform (linux/arm64), beside the main one",
}, iterable=["upgrade_package"])
@user_errors
def lock(c, runtime=None, upgrade_package=None, check=False, debian=True, platform=None):
    """Write constraints/: one pip-compile lock per Airflow version, and the Debian lock."""
    proj = project.load()
    if platform:
        arch = _debian_arch(proj, platform)
        if arch == proj.debian.arch:
            raise UserError(f"{platform} is the main Debian lock's: `invoke lock` writes it")
        if check:
            debian_lock.load_arch(proj, arch)
            cross_lock.load(proj, arch)
            print(f"the Debian lock of linux/{arch} and its cross toolchain's are current")
            return
        with report.status(f"locking Debian packages for linux/{arch}"):
            result = debian_lock.prepare_arch(proj, arch)
        target = json.loads(next(iter(result.files.values()))) if result.files else None
        with report.status(f"locking the cross toolchain for linux/{arch}"):
            cross = cross_lock.prepare(proj, arch, target_lock=target)
        atomic.write_all({**result.files, **cross.files})  # both resolved, or nothing written
        report.table("locks", ("file", "action", "packages", "time"),
                     [(r.path, r.action, str(r.packages), f"{r.seconds:.1f}s")
                      for r in (result, cross)])
        return
    versions = pip_lock.airflow_versions(proj, runtime)
    if check:
        pip_lock.check_all(proj, versions)
        if debian:
            debian_lock.check(proj)
        print(f"locks are current: Airflow {', '.join(versions)}" + (", Debian" if debian else ""))
        return
    results = []
    for airflow in versions:
        plan = pip_lock.plan(proj, airflow)
        with report.status(f"locking Airflow {airflow} (lines {', '.join(plan.lines)})"):
            results.append(pip_lock.prepare(proj, plan, tuple(upgrade_package or ())))
    if debian:
        with report.status("locking Debian packages"):
            results.append(debian_lock.prepare(proj))
    # every lock resolved: only now is anything written (a failed lock changes no file)
    atomic.write_all({path: text for r in results for path, text in r.files.items()})
    report.table("locks", ("file", "action", "packages", "time"),
                 [(r.path, r.action, str(r.packages), f"{r.seconds:.1f}s") for r in results])


def _debian_arch(proj, platform: str) -> str:
    """linux/arm64 -> arm64 (the Debian architecture of an OCI platform)."""
    arch = {"linux/arm64": "arm64", "linux/arm64/v8": "arm64",
            "linux/amd64": "amd64"}.get(platform)
    if arch is None:
        raise UserError(f"unknown platform {platform!r}: linux/amd64, linux/arm64 (or all, "
                        "where a command builds several)")
    if arch != proj.debian.arch and arch not in debian_lock.ARCHES:
        raise UserError(f"no Debian lock for {platform}")
    return arch


@task
@user_errors
def lock_dev(c):
    """Lock the monorepo's own tools (tools/requirements-dev.in) for the host's Python 3.11."""
    pip_lock.lock_dev(project.find_root())


@task(help={"runtime": "fetch only what this Runtime line needs (default: every line)",
            "platform": "only what another platform's images need (linux/arm64): its Debian "
                        "lock's .debs, the cross toolchain's and the Python files chosen for "
                        "it; all: every platform's"})
@user_errors
def fetch(c, runtime=None, platform=None):
    """Download every locked input into the content-addressed cache, verifying sha256."""
    from rules.fetch import locked_inputs as fetching
    from tasks import system_deps

    system_deps.ensure(system_deps.BUILD_PACKAGES)
    proj = project.load()
    cache = default_cache()
    versions = pip_lock.airflow_versions(proj, runtime)
    if platform == "all":  # the main platform's inputs, then every other locked one's
        fetch(c, runtime=runtime)
        for arch in debian_lock.ARCHES:
            fetch(c, runtime=runtime, platform=f"linux/{arch}")
        return
    if platform:
        arch = _debian_arch(proj, platform)
        pip_lock.check_all(proj, versions)
        results = [fetching.fetch_debian(proj, cache, arch)]
        if arch != proj.debian.arch:
            results.append(fetching.fetch_cross(proj, cache, arch))
        results += [fetching.fetch_python(proj, airflow, cache, arch) for airflow in versions]
        report.table(f"fetched into {cache}", ("inputs", "files", "downloaded", "MB"),
                     [(r.what, str(r.files), str(r.downloaded), f"{r.bytes / 1e6:.0f}")
                      for r in results])
        return
    # a lock that no longer matches its inputs names old sources: refuse it before any download
    pip_lock.check_all(proj, versions)
    debian_lock.check(proj)
    results = [fetching.fetch_debian(proj, cache)]
    for airflow in versions:
        results.append(fetching.fetch_python(proj, airflow, cache))
    for airflow in versions:
        results.append(fetching.build_sdists(proj, airflow, cache))
    report.table(f"fetched into {cache}", ("inputs", "files", "downloaded", "MB"),
                 [(r.what, str(r.files), str(r.downloaded), f"{r.bytes / 1e6:.0f}")
                  for r in results])


@task
@user_errors
def lines(c):
    """Print the Runtime lines: Airflow, latest version, LTS and support (runtime/support.json),
    and the digest of the latest release (runtime/releases). An Airflow that BUILD would change
    in the line's next release shows as "next"."""
    from rules.release import releases as releasing
    from rules.release import support

    proj = project.load()
    policy = support.load(proj.root)
    published = releasing.records(proj.root)
    rows = []
    for ln in proj.lines.values():
        record = published.get(ln.version)
        digest = (record or {}).get("digests", {}).get("onbuild") or "not recorded"
        airflow = proj.airflow_version(ln.airflow)  # what BUILD builds now
        if record and record["airflow"] != airflow:
            airflow = f"{record['airflow']} (next: {airflow})"
        rows.append((ln.name, airflow, ln.version,
                     "LTS" if ln.lts else "", policy[ln.name].supported_until,
                     support.status(policy[ln.name]), record["date"] if record else "",
                     digest[:19]))
    report.table("Runtime lines", ("line", "Airflow", "latest", "LTS", "supported until",
                                   "status", "released", "digest (onbuild)"), rows)


@task(help={
    "runtime": "the Runtime line to release from (e.g. 4.2)",
    "bump": "patch (next release of the line), minor or major (the first of a new line)",
    "lts": "mark the released line LTS (support until the release date + 24 months)",
    "tests": "pytest -k expression for the image-tests gate (default: the whole suite)",
    "out": "where the released images go (default: out/release-VERSION)",
    "signing_key": "PEM private key to sign the images' provenance with (else "
                   "$RUNTIME_SIGNING_KEY; neither: unsigned, and the record says so)",
})
@user_errors
def release(c, runtime, bump="patch", lts=False, tests=None, out=None, signing_key=None):
    """Release the next version of a line: refused unless the locks are current, two builds
    agree on every digest and the image tests pass; then the release commit (BUILD,
    runtime/support.json) is tagged runtime-VERSION, and the record and notes are committed on
    top (nothing is pushed)."""
    import shutil
    from datetime import date

    from rules.attest import provenance
    from rules.common import output
    from rules.image import policy
    from tasks import dockerd, system_deps
    from rules.release import commits, releases as releasing

    system_deps.ensure(system_deps.BUILD_PACKAGES)
    key = provenance.load_signing_key(str(_user_path(signing_key)) if signing_key else None)
    proj = project.load()
    root = Path(proj.root)
    today = date.today()
    plan = releasing.plan(proj, runtime, bump, lts, today)
    # a release never replaces anything: the folder must be new or empty
    final = _user_path(out) if out else root / "out" / f"release-{plan.version}"
    final = output.check_folder(final, lambda _: False, "a folder of released images")
    releasing.check_patches(proj, plan)
    started = commits.checkout_state(root)
    commits.check_tag_free(root, plan.version)
    who = commits.identity(root)
    print(f"releasing {plan.version} (line {plan.new_line}, from {plan.old_version})")
    cache = default_cache()
    with releasing.scratch_clone(root, started.commit, cache) as copy:
        edited_files = releasing.apply_edits(copy, plan)
        release = commits.commit_paths(
            copy, edited_files, f"Release Runtime {plan.version} (line {plan.new_line})", who)
        edited = project.load(copy)
        with report.status("gate 1/3: lock check"):
            releasing.check_locks(edited, plan.new_line)
        staged = copy / "out" / "release"
        with report.status("gate 2/3: two builds of both flavors (two clones), compared"):
            digests = releasing.check_reproducible(edited, plan.new_line, staged, cache, key)
        with report.status(f"gate 3/3: image tests of line {plan.new_line}"), \
                dockerd.engine(cache) as host:
            summary = releasing.check_images(copy, plan.new_line, tests, host, digests,
                                             plan.version)
        print(f"image tests of line {plan.new_line}: {summary}")
        data = releasing.facts(edited, plan.new_line, digests, today, release)
        data["provenance_keyid"] = key.keyid if key else None
        previous = releasing.latest(root, plan.new_line) or releasing.latest(root, plan.line)
        img = edited.image(edited.line(plan.new_line))
        entry = releasing.notes_entry(data, previous, img)
        recorded = commits.commit_paths(
            copy, releasing.write_record(copy, data, entry),
            f"Record Runtime {plan.version}: digests and notes", who)
        # the commits first (refused with nothing changed if the checkout moved), the images
        # last: images can be built again from the tag, a release commit lost cannot
        commits.publish(root, copy, release, recorded, plan.version, started)
        final.parent.mkdir(parents=True, exist_ok=True)
        output.check_folder(final, lambda _: False, "a folder of released images")
        if final.exists():
            final.rmdir()  # empty, checked again just now
        shutil.move(staged, final)
    print(entry)
    report.table(f"Runtime {plan.version}", ("image", "digest"),
                 [(", ".join(policy.reference(img, t) for t in (
                     policy.tag(img, plan.version, f),
                     *policy.floating_tags(img, plan.version, f))), d)
                  for f, d in sorted(digests.items())])
    print(f"images: {final}; record: {releasing.RECORDS}/{plan.version}.json; "
          f"notes: {releasing.NOTES}; tag: {commits.tag_name(plan.version)} "
          f"({release[:12]}); the record commit {recorded[:12]} is on top (not pushed)")
    print(f"publish: git push origin {started.branch.removeprefix('refs/heads/')} "
          f"{commits.tag_name(plan.version)}; invoke push --from {final} --to REGISTRY/REPO "
          "(these very images: a build of HEAD would name the record commit)")


@task(help={"runtime": "the Runtime line whose lock to verify (default: all Airflow versions)"})
@user_errors
def verify_lock(c, runtime=None):
    """Install each lock into bullseye's python3.9 (network) and run Airflow from it."""
    from rules.lock import lock_verify

    proj = project.load()
    for airflow in pip_lock.airflow_versions(proj, runtime):
        result = lock_verify.verify(proj, airflow)
        report.table(f"Airflow {airflow} lock", ("check", "result"), result.rows())


@task(help={"k": "only tests matching this pytest -k expression",
            "slow": "also run the network/slow tests (lock install in a bullseye root)"})
@user_errors
def test(c, k=None, slow=True):
    """Lint (ruff, ruff.toml), then run the test suite (pytest); installs the host packages it
    needs first."""
    from tasks import dockerd, system_deps

    c.run("ruff check --no-cache .", pty=False)
    system_deps.ensure()
    args = ["python", "-m", "pytest", "-ra"]
    if k:
        args += ["-k", shlex.quote(k)]
    if not slow:
        args += ["-m", "'not slow'"]
    if not slow:
        c.run(" ".join(args), pty=False)
        return
    with dockerd.engine(default_cache()) as host:
        c.run(" ".join(args), pty=False, env={"DOCKER_HOST": host})


@task(help={"runtime": "the Runtime line(s) whose images to check: 4.2, 3.0,5.0 or all",
            "k": "only checks matching this pytest -k expression",
            "report_dir": "keep the JUnit XML per line and acceptance.md (the table) here"})
@user_errors
def test_image(c, runtime="4.2", k=None, report_dir=None):
    """Acceptance checks of lines' images (both flavors) in a real Docker engine, against real
    PostgreSQL and Redis; prints a check × line table."""
    import tempfile

    from rules.common import output
    from tasks import dockerd, system_deps, test_matrix

    system_deps.ensure()
    proj = project.load()
    names = list(proj.lines) if runtime == "all" else runtime.split(",")
    for name in names:
        proj.line(name)  # an unknown line fails here, listing the known ones
    kept = None
    if report_dir:  # a folder, maybe the user's: only our report files are written in it
        kept = output.check_parent(_user_path(report_dir), "--report-dir")
        if kept.is_symlink() and not kept.exists():
            raise UserError(f"--report-dir {kept} is a symbolic link to nothing")
        if kept.exists() and not kept.is_dir():
            raise UserError(f"--report-dir {kept} is a file, not a folder")
    failed = []
    with tempfile.TemporaryDirectory(prefix="runtime-test-image-") as tmp, \
            dockerd.engine(default_cache()) as host:
        folder = kept or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        reports = {name: folder / f"acceptance-{name}.xml" for name in names}
        for name in names:
            args = ("python -m pytest -ra -m acceptance tests/acceptance "
                    f"--junitxml={shlex.quote(str(reports[name]))}")
            if k:
                args += f" -k {shlex.quote(k)}"
            run = c.run(args, pty=False, warn=True,
                        env={"DOCKER_HOST": host, "RUNTIME_TEST_LINE": name})
            if run.exited != 0:
                failed.append(name)
        columns, rows = test_matrix.matrix(reports)
        if report_dir:
            atomic.write_text(folder / "acceptance.md", test_matrix.markdown(columns, rows))
    report.table("acceptance checks", columns, rows)
    if failed:
        raise UserError(f"acceptance checks failed for line(s) {', '.join(failed)}")


@task(help={"runtime": "the Runtime line to build (e.g. 4.2)",
            "flavor": "a flavor of the line's runtime_image (runtime/BUILD: onbuild, base) or all",
            "out": "output folder of the OCI layout (default: out/runtime-<version>; with "
                   "--push-to, no layout unless --out is given)",
            "load": "load the images into the Docker engine (Docker SDK)",
            "explain": "say, for each action that ran, which of its inputs changed since the "
                       "last build of this line",
            "remote_cache": "HOST[:PORT]/REPO: look action results up there before running "
                            "them, store them there after (default: WORKSPACE's remote_cache; "
                            "'off' to build without it)",
            "remote_cache_read_only": "read the remote cache, never write it (untrusted "
                                      "builds: pull requests)",
            "push_to": "HOST[:PORT]/REPO: publish the images there with their tags (layers "
                       "mounted from the remote cache when it is on the same registry)",
            "username": "registry user for --remote-cache and --push-to (else the Docker "
                        "config's credentials for each host)",
            "password_stdin": "read the password from standard input (with --username)",
            "ca_cert": "PEM file of the CA that signed the registries' certificates",
            "signing_key": "PEM private key to sign each image's provenance with (else "
                           "$RUNTIME_SIGNING_KEY: a path or the PEM; neither: unsigned)",
            "platform": "linux/amd64 (default), linux/arm64, or all: one image index per "
                        "flavor holding both (--load loads the host's platform)"})
@user_errors
def image(c, runtime="4.2", flavor="all", out=None, load=False, explain=False,
          remote_cache=None, remote_cache_read_only=False, push_to=None, username=None,
          password_stdin=False, ca_cert=None, signing_key=None, platform=None):
    """Build a Runtime line's image(s): offline, daemonless, reproducible OCI layers; with a
    remote cache and --push-to, publish them without downloading their layers."""
    from rules.image import build as images
    from tasks import system_deps

    proj = project.load()
    line = proj.line(runtime)
    flavors = _flavors(proj, line, flavor)
    arches = _arches(proj, platform)
    foreign = [a for a in arches if a != proj.debian.arch]
    if foreign and push_to:
        raise UserError(f"--push-to builds linux/{proj.debian.arch} alone for now: write the "
                        f"layout (--out) and `invoke push --from` it (each tag then names its "
                        "image index)")
    if foreign and remote_cache not in (None, "off"):
        raise UserError(f"--remote-cache is not used for linux/{foreign[0]} builds yet: "
                        "leave it out (or --remote-cache off)")
    if load and proj.debian.arch not in arches:
        from rules.oci.layout import host_architecture

        if host_architecture() not in arches:
            raise UserError(f"--load loads the host's platform (linux/{host_architecture()}),"
                            f" which --platform {platform} does not build: use --platform "
                            "all, or load the layout elsewhere")
    options = _registry_options(username, password_stdin, ca_cert)
    url, read_only = _remote_cache_choice(proj, None if foreign else remote_cache,
                                          remote_cache_read_only)
    if foreign and url:  # (WORKSPACE's remote_cache: not for these builds yet, said)
        print(f"remote cache: not used for linux/{foreign[0]} builds yet (WORKSPACE's "
              f"{url} is left alone)")
        url = None
    from rules.attest import provenance

    key = provenance.load_signing_key(str(_user_path(signing_key)) if signing_key else None)
    target = None
    if push_to:
        from rules.oci.registry import Client, parse_target

        target = Client(parse_target(push_to), **options)  # checked before any work
    if load and target is not None and out is None:
        raise UserError("--load needs a layout: give --out with --push-to")
    if out is not None or target is None:
        out = _user_path(out) if out else Path(proj.root) / "out" / f"runtime-{line.version}"
    system_deps.ensure(system_deps.BUILD_PACKAGES)
    remote = None
    if url:
        from rules.graph import remote as remotes

        remote = remotes.open_cache(url, read_only, **options)
    result = images.build(proj, runtime, flavors, out, default_cache(), remote, target,
                          signing_key=key, arches=arches)
    report.image_summary(result)
    from rules.attest import attach

    for text in attach.summary(result.attestations):
        print(f"attached: {text}")
    if remote is not None:
        print(remote.summary())
    if url:
        print(f"locked inputs fetched: {result.fetched[0]} file(s), {result.fetched[1]:,} bytes")
    if result.push is not None:
        p = result.push
        for tag, digest in p.tags.items():
            print(f"pushed {p.target}:{tag}  {digest}")
        print(f"{len(p.images)} image(s), {p.blobs_total} blobs: {p.blobs_uploaded} uploaded "
              f"({p.bytes_uploaded:,} bytes), {p.blobs_mounted} mounted, "
              f"{p.blobs_total - p.blobs_uploaded - p.blobs_mounted} already there")
        if out is None:
            print("no OCI layout written (--push-to without --out: the layers stay in the "
                  "registry)")
    if explain:
        print("explain: " + ("every action was in the cache" if not result.explained else
                             f"{len(result.explained)} action(s) ran"))
        for reason in result.explained:
            print(f"  {reason}")
    if load:
        from rules.oci import docker_load

        for tag in docker_load.load(out):
            print(f"loaded {tag}")


def _arches(proj, platform: str | None) -> tuple[str, ...]:
    """The Debian architectures `--platform` names: all is the main one and every locked one."""
    if platform in (None, "", f"linux/{proj.debian.arch}"):
        return (proj.debian.arch,)
    if platform == "all":
        return (proj.debian.arch, *debian_lock.ARCHES)
    return (_debian_arch(proj, platform),)


def _flavors(proj, line, flavor: str) -> tuple[str, ...]:
    """The flavors `--flavor` names (all: the line's runtime_image's), or a one-line error."""
    from rules.image.config import flavors as flavors_of

    known = flavors_of(proj, line)
    flavors = known if flavor == "all" else (flavor,)
    if any(f not in known for f in flavors):
        raise UserError(f"unknown flavor {flavor!r}; flavors: {', '.join(known)}, all")
    return tuple(flavors)


def _registry_options(username, password_stdin, ca_cert) -> dict:
    """Credentials and CA for the registries of `invoke image` (as `invoke push` reads them)."""
    if (username is None) != (not password_stdin):
        raise UserError("--username and --password-stdin go together (or neither: the "
                        "Docker config's credentials are used)")
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UserError("--password-stdin: no password on standard input")
    if ca_cert:
        ca_cert = _user_path(ca_cert).resolve()
        if not ca_cert.is_file():
            raise UserError(f"--ca-cert {ca_cert}: no such file")
    return {"ca_cert": ca_cert, "username": username, "password": password}


def _remote_cache_choice(proj, flag, read_only) -> tuple[str | None, bool]:
    """(URL, read-only) of the remote cache: the command line wins over WORKSPACE's
    remote_cache(); --remote-cache off builds without one. (The registry client is imported
    only when there is one: oras-py's imports cost about a second.)"""
    declared = proj.remote_cache
    if flag == "off":
        return None, False
    url = flag or (declared.url if declared else None)
    if not url:
        if read_only:
            raise UserError("--remote-cache-read-only needs a remote cache (--remote-cache "
                            "HOST[:PORT]/REPO, or remote_cache() in WORKSPACE)")
        return None, False
    from rules.oci.registry import parse_target

    try:
        parse_target(url)
    except UserError as e:
        raise UserError(str(e).replace("--to", "--remote-cache", 1)) from None
    return url, bool(read_only or (declared.read_only if declared and not flag else False))


@task(help={"runtime": "the Runtime line (e.g. 4.2)",
            "inputs": "also list every input of each action (name and digest)"})
@user_errors
def graph(c, runtime="4.2", inputs=False):
    """Print the action graph of a line's image (as Bazel's aquery): kind, label, key, inputs
    and whether the action cache holds it; nothing runs."""
    from rules.image import graph as graphs

    proj = project.load()
    rows = graphs.describe(proj, runtime, default_cache())
    report.table(f"actions of Runtime {proj.line(runtime).version}",
                 ("kind", "label", "key", "inputs", "cached"),
                 [(r.kind, r.label, r.key[:12], str(len(r.inputs)), r.cached) for r in rows])
    if inputs:
        for r in rows:
            print(f"{r.kind}: {r.label}  {r.key}")
            for name, value in sorted(r.inputs.items()):
                print(f"    {name} = {value}")


@task(help={"runtime": "the Runtime line (e.g. 4.2)",
            "out": "output folder (default: out/pex)"})
@user_errors
def pex(c, runtime="4.2", out=None):
    """Build the line's Python environment as a reproducible PEX (runs on python3.9)."""
    from rules.python import pex_build

    proj = project.load()
    out = _user_path(out) if out else Path(proj.root) / "out" / "pex"
    path, digest = pex_build.build(proj, runtime, out, default_cache())
    print(f"{path}  sha256:{digest}")
    print(pex_build.run(proj, runtime, path, ["version"], default_cache()).strip())


@task(help={"pip_compile_timeout": "also run plain pip-compile on 2.2.4 for this many seconds "
                                   "(0: skip; it needs 9+ minutes to finish)",
            "image": "also benchmark the image build against docker build (root, dockerd)",
            "logs": "also benchmark the task log handler, 100,000 lines (dockerd, image 4.2)",
            "push": "also benchmark invoke push against skopeo copy (local TLS registry)",
            "remote": "also benchmark the remote cache: publish from an empty cache without "
                      "the bytes (local TLS registry)",
            "layers": "also benchmark what a push sends after one small dependency is bumped "
                      "(local TLS registry; the lock and fetch need PyPI)",
            "workload": "instead: the workload benchmark of the concurrency defaults, DAG runs "
                        "under container limits (dockerd, PostgreSQL, Redis; about 30 min)",
            "workload_options": "options for tools/bench_workload.py, e.g. '--tasks 40 "
                                "--executors LocalExecutor' (its --help lists them)"})
def bench(c, pip_compile_timeout=0, image=True, logs=True, push=True, remote=True,
          layers=True, workload=False, workload_options=""):
    """Print figures side by side: locking, our image build against docker build, and the task
    log handler against Airflow's file handler. --workload: the concurrency defaults' DAG runs
    under container limits instead."""
    from tasks import dockerd

    if workload:
        from tasks import system_deps

        system_deps.ensure(system_deps.WORKLOAD_BENCH_PACKAGES)
        with dockerd.engine(default_cache()) as host:
            c.run(f"python tools/bench_workload.py {workload_options}", pty=False,
                  env={"DOCKER_HOST": host})
        return

    c.run(f"python tools/bench_lock.py --pip-compile-timeout {int(pip_compile_timeout)}",
          pty=False)
    if push:
        c.run("python tools/bench_push.py", pty=False)
    if remote:
        c.run("python tools/bench_remote.py", pty=False)
    if layers:
        c.run("python tools/bench_layers.py", pty=False)
    if image or logs:
        with dockerd.engine(default_cache()) as host:
            if image:
                c.run("python tools/bench_image.py", pty=False, env={"DOCKER_HOST": host})
            if logs:
                c.run("python tools/bench_logging.py", pty=False, env={"DOCKER_HOST": host})


from tasks.audit import audit as _audit  # noqa: E402
from tasks.push import push as _push  # noqa: E402
from tasks.verify import signing_key as _signing_key, verify as _verify  # noqa: E402
ns = Collection(lock, lock_dev, fetch, lines, release, verify_lock, test, test_image, image,
                graph, pex, bench, _push, _verify, _signing_key, _audit)
