"""Releases: version planning and refusals, BUILD and policy edits, notes from facts (fast);
and `invoke release` end to end on a copy of the project (slow: real builds and image tests)."""

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from rules.image import policy
from rules.load import project
from rules.release import releases as release, support
from rules.common.errors import UserError
from tests.fixtures import REPO, run_invoke

TODAY = date(2026, 11, 30)
CURRENT = project.load(REPO).lines["4.2"].version  # line 4.2's latest release


def bumped(version: str, by: int = 1) -> str:
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + by}"


NEXT = bumped(CURRENT)


def newest_line(proj) -> str:
    """The line a minor release would follow (the newest), read from BUILD."""
    return max(proj.lines, key=lambda name: tuple(map(int, name.split("."))))


def next_minor(line: str) -> str:
    major, minor = line.split(".")
    return f"{major}.{int(minor) + 1}"


NEWEST = newest_line(project.load(REPO))
NEW_LINE = next_minor(NEWEST)


@pytest.fixture
def copy(tmp_path):
    """The project as a git repository of its own (a release names the commit it is built
    from). Never the checkout's .git: in a git worktree that is a file naming the shared
    repository, and the tests' commits would land on the worktree's branch."""
    dst = tmp_path / "repo"
    shutil.copytree(REPO, dst, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", "out", "__pycache__",
                                                  ".pytest_cache"))
    subprocess.run(["git", "-C", str(dst), "init", "-q"], check=True, capture_output=True)
    for key, value in (("user.name", "Release Manager"), ("user.email", "rm@localhost")):
        subprocess.run(["git", "-C", str(dst), "config", key, value], check=True)
    commit(dst)
    return dst


def commit(root: Path) -> None:
    """Commit everything in the copy: a release is built from a clean checkout."""
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@localhost",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@localhost")
    for args in (["add", "-A"], ["commit", "-q", "--allow-empty", "-m", "test state"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, env=env,
                       capture_output=True)


def snapshot(root: Path) -> dict[str, bytes]:
    files = [root / "BUILD", root / support.POLICY, root / release.NOTES,
             *sorted((root / release.RECORDS).glob("*.json"))]
    return {str(p.relative_to(root)): p.read_bytes() for p in files if p.exists()}


def test_a_patch_release_is_the_next_version_of_the_line():
    plan = release.plan(project.load(REPO), "4.2", "patch", False, TODAY)
    assert (plan.new_line, plan.old_version, plan.version) == ("4.2", CURRENT, NEXT)
    assert plan.lts and plan.supported_until == support.load(REPO)["4.2"].supported_until


def test_a_minor_release_starts_a_new_line_and_lts_sets_its_support():
    plan = release.plan(project.load(REPO), NEWEST, "minor", True, TODAY)
    assert (plan.new_line, plan.version, plan.lts) == (NEW_LINE, f"{NEW_LINE}.0", True)
    assert plan.supported_until == "2028-11-30"


@pytest.mark.parametrize("line, bump, message", [
    ("4.1", "minor", "refused: 4.2.0 is already published"),
    ("4.2", "major", "refused: 5.0.0 is already published"),
    ("4.2", "sideways", "unknown bump 'sideways'; bumps: patch, minor, major"),
    ("9.9", "patch", "unknown runtime line '9.9'; known lines: "
     + ", ".join(project.load(REPO).lines)),
])
def test_refused_plans(line, bump, message):
    with pytest.raises(UserError) as e:
        release.plan(project.load(REPO), line, bump, False, TODAY)
    assert str(e.value).startswith(message)


def test_a_release_that_would_go_backwards_is_refused(copy):
    record = json.loads((copy / release.RECORDS / f"{CURRENT}.json").read_text())
    record["version"] = bumped(CURRENT, 5)
    (copy / release.RECORDS / f"{record['version']}.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match=rf"refused: {NEXT} would go backwards: line 4.2 has "
                                        rf"already published {record['version']}"):
        release.plan(project.load(copy), "4.2", "patch", False, TODAY)


def test_edits_move_the_version_or_add_the_new_line(copy):
    before = project.load(copy)
    release.apply_edits(copy, release.plan(before, "4.2", "patch", False, TODAY))
    release.apply_edits(copy, release.plan(project.load(copy), NEWEST, "minor", False, TODAY))
    proj = project.load(copy)
    expected = {n: ln.version for n, ln in before.lines.items()}
    expected.update({"4.2": NEXT, NEW_LINE: f"{NEW_LINE}.0"})
    assert {n: ln.version for n, ln in proj.lines.items()} == expected
    assert proj.lines[NEW_LINE].airflow == before.lines[NEWEST].airflow
    assert not proj.lines[NEW_LINE].lts
    assert support.load(copy)[NEW_LINE].supported_until == "2027-11-30"


def test_notes_say_what_changed_between_the_two_records():
    old = {"version": "4.2.0", "airflow": "2.2.4", "patches": {},
           "python_packages": {"apache-airflow": "2.2.4", "boto3": "1.20.0", "six": "1.16.0"},
           "debian_packages": {"libssl1.1": "1.1.1n-0+deb11u3"}}
    new = {"version": "4.2.1", "line": "4.2", "lts": True, "date": "2026-11-30",
           "airflow": "2.2.4+runtime.1", "built_from": "0123456789abcdef",
           "patches": {"0001-x.patch": {"subject": "Fix x", "upstream": "apache/airflow#1"}},
           "python_packages": {"apache-airflow": "2.2.4+runtime.1", "boto3": "1.21.0",
                               "attrs": "21.4.0"},
           "debian_packages": {"libssl1.1": "1.1.1n-0+deb11u4"},
           "digests": {"onbuild": "sha256:aa", "base": "sha256:bb"}}
    text = release.notes_entry(new, old, project.load(REPO).images["//runtime:image"])
    assert text.splitlines()[0] == "## Runtime 4.2.1 (line 4.2, LTS) — 2026-11-30"
    for line in ["Changes since 4.2.0:",
                 "- Apache Airflow 2.2.4+runtime.1 (was 2.2.4)",
                 "- Backported fix added: Fix x (apache/airflow#1; 0001-x.patch)",
                 "- Python packages updated: apache-airflow 2.2.4 → 2.2.4+runtime.1, "
                 "boto3 1.20.0 → 1.21.0",
                 "- Python packages added: attrs 21.4.0",
                 "- Python packages removed: six 1.16.0",
                 "- Debian packages updated: libssl1.1 1.1.1n-0+deb11u3 → 1.1.1n-0+deb11u4",
                 "- Image `runtime:4.2.1` (onbuild): `sha256:aa`; floating tag `runtime:4.2`",
                 "- Image `runtime:4.2.1-base` (base): `sha256:bb`; floating tag "
                 "`runtime:4.2-base`"]:
        assert line in text.splitlines(), (line, text)


def test_every_line_has_a_baseline_record():
    proj = project.load(REPO)
    published = release.records(REPO)
    for line in proj.lines.values():
        assert published[line.version]["line"] == line.name


def test_a_new_line_that_already_exists_is_refused(copy):
    build = copy / "BUILD"
    text = build.read_text()
    version = project.load(copy).lines[NEWEST].version
    start = text.index(f"runtime_line(\n    name = \"{NEWEST}\",")
    block = text[start:text.index("\n)\n", start) + 3]
    build.write_text(text + "\n" + block.replace(f'"{NEWEST}"', f'"{NEW_LINE}"')
                     .replace(f'"{version}"', f'"{NEW_LINE}.3"')
                     .replace("\n)\n", "\n)  # the next line\n"))
    policy = support.load(copy)
    policy[NEW_LINE] = policy[NEWEST]
    support.save(copy, policy)
    with pytest.raises(UserError, match=rf"refused: line {re.escape(NEW_LINE)} already exists "
                                        rf"\(its current release is {re.escape(NEW_LINE)}.3\)"):
        release.plan(project.load(copy), NEWEST, "minor", False, TODAY)
    # a block closed by ")  # comment" is still one block: a patch release of it edits only it
    plan = release.plan(project.load(copy), NEW_LINE, "patch", False, TODAY)
    release.apply_edits(copy, plan)
    assert {n: ln.version for n, ln in project.load(copy).lines.items()}[NEW_LINE] == \
        f"{NEW_LINE}.4"
    assert build.read_text().count("runtime_line(") == text.count("runtime_line(") + 1


def test_changed_backports_need_a_new_revision(copy):
    proj = project.load(copy)
    record = json.loads((copy / release.RECORDS / f"{CURRENT}.json").read_text())
    record.update(version=bumped(CURRENT, 7), airflow=proj.airflow_version("2.2.4"),
                  patches={Path(p).name: {"sha256": "0" * 64}
                           for p in proj.patches["2.2.4"].patches})
    (copy / release.RECORDS / f"{record['version']}.json").write_text(json.dumps(record))
    plan = release.Plan("4.2", "4.2", record["version"], bumped(CURRENT, 8), True, "2030-01-01")
    with pytest.raises(UserError, match=r"refused: the backports of Airflow 2.2.4 changed since "
                                        rf"{record['version']}, but it is still "
                                        r"2.2.4\+runtime.\d+: raise `revision` in "
                                        r"//runtime/patches:airflow-2.2.4"):
        release.check_patches(proj, plan)


def test_uncommitted_changes_refuse_the_release(copy):
    commit(copy)
    (copy / "README.md").write_text("edited\n")
    before = snapshot(copy)
    proc = run_invoke(copy, "release", "--runtime", "4.2", "--bump", "patch")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "error: refused: the checkout has uncommitted changes (README.md)" in proc.stderr
    assert snapshot(copy) == before


def test_refused_release_via_cli_changes_nothing(copy):
    before = snapshot(copy)
    proc = run_invoke(copy, "release", "--runtime", "4.1", "--bump", "minor")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "error: refused: 4.2.0 is already published" in proc.stderr
    assert snapshot(copy) == before and not (copy / "out").exists()


def test_a_stale_lock_refuses_the_release_before_building(copy):
    providers = copy / "providers" / "BUILD"
    providers.write_text(providers.read_text().replace('"redis",', '"redis",\n    "slack",'))
    commit(copy)
    before = snapshot(copy)
    proc = run_invoke(copy, "release", "--runtime", "4.2", "--bump", "patch")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "error: refused: the lock check failed" in proc.stderr
    assert snapshot(copy) == before and not (copy / "out").exists()


def test_lines_prints_the_policy_and_latest_releases():
    proc = run_invoke(REPO, "lines")
    assert proc.returncode == 0, proc.stderr
    row = next(r for r in proc.stdout.splitlines() if r.strip("│ ").startswith("4.2 "))
    cells = [c.strip() for c in row.strip("│").split("│")]
    proj = project.load(REPO)
    assert cells[:5] == ["4.2", proj.airflow_version("2.2.4"), proj.lines["4.2"].version, "LTS",
                         support.load(REPO)["4.2"].supported_until]


# End to end: real builds (the second with an empty action cache) and real image tests. -----
def release_cli(copy: Path, *args: str) -> subprocess.CompletedProcess:
    """`invoke release` with the copy's own code (so a test can make that code misbehave)."""
    env = dict(os.environ, PYTHONPATH=str(copy))
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(copy),
                           "release", *args], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=3600)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.mark.slow
def test_release_end_to_end(copy, tmp_path):
    from rules.attest import provenance

    private, public, keyid = provenance.generate_key(tmp_path / "keys")
    commit(copy)
    started_at = git(copy, "rev-parse", "HEAD")
    previous = release.latest(REPO, "4.2")
    proc = release_cli(copy, "--runtime", "4.2", "--bump", "patch", "--signing-key",
                       str(private),
                       "--tests", "test_airflow_version_and_pip_show_report_the_patched_wheel")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proj = project.load(copy)
    assert proj.lines["4.2"].version == NEXT
    record = json.loads((copy / release.RECORDS / f"{NEXT}.json").read_text())
    out = copy / "out" / f"release-{NEXT}"
    index = json.loads((out / "index.json").read_text())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
            for m in index["manifests"] if "artifactType" not in m}
    img = proj.image(proj.lines["4.2"])
    assert refs == {tag: digest for flavor, digest in record["digests"].items()
                    for tag in (policy.tag(img, NEXT, flavor),
                                *policy.floating_tags(img, NEXT, flavor))}
    assert set(refs) == {NEXT, "4.2", f"{NEXT}-base", "4.2-base"}
    assert record["airflow"] == proj.airflow_version("2.2.4")
    notes = (copy / release.NOTES).read_text()
    assert notes.startswith(release.NOTES_TITLE + f"\n## Runtime {NEXT} (line 4.2, LTS) — ")
    entry = notes.split("\n## ")[1]
    assert f"Changes since {previous['version']}:" in entry
    if previous["airflow"] != record["airflow"]:
        assert f"- Apache Airflow {record['airflow']} (was {previous['airflow']})" in entry
    for name in set(record["patches"]) - set(previous["patches"]):
        assert f"{record['patches'][name]['upstream']}; {name})" in entry
    assert "- Debian packages: unchanged" in entry and "- Python packages updated: " not in \
        entry.replace("- Python packages updated: apache-airflow", "")
    assert record["digests"]["onbuild"] in entry and record["digests"]["base"] in entry
    # the release is a commit, tagged; the record and notes are a commit on top
    tag = f"runtime-{NEXT}"
    assert record["tag"] == tag and git(copy, "rev-parse", f"{tag}^{{commit}}") == \
        record["built_from"]
    assert git(copy, "rev-parse", "HEAD^") == record["built_from"]
    assert git(copy, "rev-parse", "HEAD^^") == started_at
    assert git(copy, "status", "--porcelain") == ""
    assert sorted(git(copy, "diff", "--name-only", "HEAD^", "HEAD").splitlines()) == \
        sorted([release.NOTES, f"{release.RECORDS}/{NEXT}.json"])
    assert f"tagged `{tag}`" in entry
    # checked out and built, the tag gives the recorded digests
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(copy), str(checkout)], check=True)
    git(checkout, "checkout", "-q", tag)
    built = run_invoke(checkout, "image", "--runtime", "4.2", "--out", str(tmp_path / "again"))
    assert built.returncode == 0, built.stderr
    again = json.loads((tmp_path / "again" / "index.json").read_text())
    assert {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
            for m in again["manifests"] if "artifactType" not in m} == refs
    assert record["provenance_keyid"] == keyid and f"signed with key `{keyid}`" in entry
    # `invoke verify` finds the image signed, and the recorded release of that tag
    proc = run_invoke(copy, "verify", str(out), "--no-rebuild", "--public-key", str(public),
                      "--tag", NEXT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(r for r in proc.stdout.splitlines() if r.startswith("│ release "))
    assert "PASS" in row and tag in row, proc.stdout
    # the same version again is refused, and so is going back below it
    (copy / "BUILD").write_text((copy / "BUILD").read_text().replace(f'"{NEXT}"', f'"{CURRENT}"'))
    again = run_invoke(copy, "release", "--runtime", "4.2", "--bump", "patch")
    assert again.returncode == 2 and f"refused: {NEXT} is already published" in again.stderr


def test_a_minor_release_passes_its_own_lock_gate(copy):
    """A new line on the same Airflow uses the same lock: the lock must stay current."""
    plan = release.plan(project.load(copy), newest_line(project.load(copy)), "minor", False,
                        TODAY)
    release.apply_edits(copy, plan)
    edited = project.load(copy)
    assert plan.new_line in edited.lines
    release.check_locks(edited, plan.new_line)  # gate 1 of `invoke release`


@pytest.mark.slow
def test_a_minor_release_end_to_end(copy):
    proj = project.load(copy)
    line = newest_line(proj)
    plan = release.plan(proj, line, "minor", False, TODAY)
    commit(copy)
    proc = release_cli(copy, "--runtime", line, "--bump", "minor",
                       "--tests", "test_version_label_env_and_file_agree")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    edited = project.load(copy)
    assert edited.lines[plan.new_line].version == plan.version
    assert edited.lines[line].version == proj.lines[line].version  # the old line stays
    record = json.loads((copy / release.RECORDS / f"{plan.version}.json").read_text())
    assert record["line"] == plan.new_line and set(record["digests"]) == {"onbuild", "base"}
    index = json.loads((copy / "out" / f"release-{plan.version}" / "index.json").read_text())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
            for m in index["manifests"] if "artifactType" not in m}
    assert refs[plan.version] == refs[plan.new_line] == record["digests"]["onbuild"]
    assert plan.new_line in support.load(copy)
    proc = run_invoke(copy, "lock", "--check")  # the released checkout's locks are current
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_failing_image_tests_refuse_the_release(copy):
    (copy / "tests" / "acceptance" / "test_zz_broken.py").write_text(
        "import pytest\n\npytestmark = pytest.mark.acceptance\n\n\n"
        "def test_broken_on_purpose():\n    assert False, 'this release must not ship'\n")
    commit(copy)
    before = snapshot(copy)
    proc = release_cli(copy, "--runtime", "4.2", "--bump", "patch",
                       "--tests", "broken_on_purpose")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "refused: the image tests of line 4.2 failed" in proc.stderr
    assert "this release must not ship" in proc.stderr
    assert snapshot(copy) == before and not (copy / "out" / f"release-{NEXT}").exists()


@pytest.mark.slow
def test_a_build_that_is_not_reproducible_refuses_the_release(copy):
    oci = copy / "rules" / "oci" / "layout.py"
    text = oci.read_text()
    assert '"annotations": self.annotations,' in text  # (the line this test makes unstable)
    oci.write_text(text.replace(
        '"annotations": self.annotations,',
        '"annotations": dict(self.annotations, built=__import__("time").time_ns()),'))
    commit(copy)
    before = snapshot(copy)
    proc = release_cli(copy, "--runtime", "4.2", "--bump", "patch")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "refused: the reproducibility check failed (onbuild: sha256:" in proc.stderr
    assert snapshot(copy) == before and not (copy / "out" / f"release-{NEXT}").exists()
