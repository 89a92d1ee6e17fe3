"""rules.lock.audit: which locked Debian packages have a newer version in an index, which
locked Python pins have advisories (served by a local HTTP server in PyPI's JSON shape), and
that an unusable source is recorded as not checked, with its reason."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rules.load import project
from rules.lock import audit, requirements_file
from tests.fixtures import REPO

LOCKED = [{"name": "curl", "version": "7.74.0-1.3+deb11u1"},
          {"name": "tzdata", "version": "2021a-1+deb11u8"},
          {"name": "bash", "version": "5.1-2+deb11u1"},
          {"name": "passwd", "version": "1:4.8.1-1"}]


def test_a_newer_version_in_any_index_is_a_fix_and_the_newest_is_named():
    indexes = {
        "bullseye": [{"Package": "curl", "Version": "7.74.0-1.3+deb11u7"},
                     {"Package": "bash", "Version": "5.1-2+deb11u1"},
                     {"Package": "passwd", "Version": "1:4.8.1-1"}],
        "bullseye-security": [{"Package": "curl", "Version": "7.74.0-1.3+deb11u16"},
                              {"Package": "passwd", "Version": "4.9-1"}],  # (lower: epoch)
        "bullseye-updates": [{"Package": "tzdata", "Version": "2025b-0+deb11u1"}],
    }
    fixes = {f.name: f for f in audit.debian_fixes(LOCKED, indexes)}
    assert set(fixes) == {"curl", "tzdata"}
    assert (fixes["curl"].newer, fixes["curl"].archive, fixes["curl"].security) == \
        ("7.74.0-1.3+deb11u16", "bullseye-security", True)
    assert (fixes["tzdata"].newer, fixes["tzdata"].security) == ("2025b-0+deb11u1", False)


def test_a_security_fix_stays_one_when_a_point_release_has_it_or_a_newer_version():
    indexes = {"bullseye": [{"Package": "curl", "Version": "7.74.0-1.3+deb11u3"}],
               "bullseye-security": [{"Package": "curl", "Version": "7.74.0-1.3+deb11u2"}]}
    [fix] = audit.debian_fixes(LOCKED[:1], indexes)
    assert (fix.newer, fix.archive, fix.security) == ("7.74.0-1.3+deb11u3", "bullseye", True)
    indexes["bullseye"][0]["Version"] = "7.74.0-1.3+deb11u2"  # (the same version in both)
    [fix] = audit.debian_fixes(LOCKED[:1], indexes)
    assert fix.security


def document(*vulns):
    return {"info": {}, "vulnerabilities": list(vulns)}


def test_advisories_leave_out_withdrawn_ones():
    doc = document({"id": "PYSEC-1", "aliases": ["CVE-1"], "fixed_in": ["2.0"],
                    "summary": None, "details": "Bad thing.\nMore.", "withdrawn": None},
                   {"id": "PYSEC-2", "aliases": [], "fixed_in": [], "details": "x",
                    "withdrawn": "2024-01-01T00:00:00Z"})
    [one] = audit.advisories_of("x", "1.0", doc)
    assert (one.id, one.aliases, one.fixed_in, one.summary) == \
        ("PYSEC-1", ("CVE-1",), ("2.0",), "Bad thing.")


@pytest.fixture
def advisory_server():
    """A PyPI-shaped JSON API on 127.0.0.1: one advisory for the lock's pinned Airflow, none
    for the rest; ``state["status"]`` turns every answer into an HTTP error."""
    state = {"status": 200, "requests": 0}
    proj = project.load(REPO)
    text = (REPO / proj.locks["2.2.4"].lock).read_text()
    pins = {e.name: e.version for e in requirements_file.parse(text)[1]}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["requests"] += 1
            _, _, name, version, _ = self.path.split("/")
            if state["status"] != 200 or pins.get(name) != version:
                self.send_error(state["status"] if state["status"] != 200 else 404)
                return
            vulns = [{"id": "PYSEC-2022-TEST", "aliases": ["CVE-2022-0001"],
                      "fixed_in": ["9.9.9"], "summary": "a test advisory", "withdrawn": None}] \
                if name == "apache-airflow" else []
            body = json.dumps(document(*vulns)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_port}/pypi/{{name}}/{{version}}/json"
    state["pins"] = pins
    yield state
    server.shutdown()


def test_advisories_are_fetched_kept_and_read_back_offline(advisory_server, tmp_path):
    proj = project.load(REPO)
    snapshot = audit.refresh_python(proj, ["2.2.4"], tmp_path, advisory_server["url"])
    assert snapshot["last_refresh"]["unusable"] is None
    assert snapshot["last_refresh"]["failed"] == []
    asked = advisory_server["requests"]
    assert asked == len(advisory_server["pins"]) + 1  # every pin, and the probe
    report = audit.Report()
    audit.audit_python(proj, ["2.2.4"], tmp_path, report)  # from the cache only
    assert advisory_server["requests"] == asked
    [found] = report.python["2.2.4"]
    assert (found.name, found.locked, found.id) == \
        ("apache-airflow", advisory_server["pins"]["apache-airflow"], "PYSEC-2022-TEST")
    assert report.not_checked == [] and "advisories from http://127.0.0.1" in report.checked[0]
    assert report.python_complete


def test_an_unusable_source_is_asked_once_and_reported_as_not_checked(advisory_server,
                                                                       tmp_path):
    proj = project.load(REPO)
    advisory_server["status"] = 404
    snapshot = audit.refresh_python(proj, ["2.2.4"], tmp_path, advisory_server["url"])
    assert "HTTP Error 404" in snapshot["last_refresh"]["unusable"]
    assert advisory_server["requests"] == 1
    report = audit.Report()
    audit.audit_python(proj, ["2.2.4"], tmp_path, report)
    assert report.python == {} and not report.python_complete
    assert "could not use the source" in report.not_checked[0]
    assert "HTTP Error 404" in report.not_checked[0]


def test_a_failed_refresh_keeps_the_advisories_fetched_before(advisory_server, tmp_path):
    proj = project.load(REPO)
    audit.refresh_python(proj, ["2.2.4"], tmp_path, advisory_server["url"])
    advisory_server["status"] = 503
    audit.refresh_python(proj, ["2.2.4"], tmp_path, advisory_server["url"])
    report = audit.Report()
    audit.audit_python(proj, ["2.2.4"], tmp_path, report)
    assert [a.id for a in report.python["2.2.4"]] == ["PYSEC-2022-TEST"]


def test_pins_that_failed_keep_what_was_fetched_before(advisory_server, tmp_path):
    proj = project.load(REPO)
    audit.refresh_python(proj, ["2.2.4"], tmp_path, advisory_server["url"])
    pins = advisory_server["pins"]
    count = len(pins)
    airflow = pins["apache-airflow"]
    pins.clear()
    pins["apache-airflow"] = airflow  # (the server now answers 404 for every other pin)
    snapshot = audit.refresh_python(proj, ["2.2.4"], tmp_path, advisory_server["url"])
    assert len(snapshot["last_refresh"]["failed"]) == count - 1
    report = audit.Report()
    audit.audit_python(proj, ["2.2.4"], tmp_path, report)
    assert [a.id for a in report.python["2.2.4"]] == ["PYSEC-2022-TEST"]
    assert report.python_complete  # every pin has data: fetched now or before
    # another source: what the first one said is not used for it
    audit.refresh_python(proj, ["2.2.4"], tmp_path, advisory_server["url"] + "?mirror=2")
    report = audit.Report()
    audit.audit_python(proj, ["2.2.4"], tmp_path, report)
    assert not report.python_complete
    assert f"no advisory data for {count - 1} pins" in "\n".join(report.not_checked)


@pytest.mark.parametrize("damage", ["[1]", "{}", '{"sha256": "00", "date": "x"}', "not json"])
def test_a_damaged_index_pointer_is_said_not_a_traceback(tmp_path, damage):
    from rules.debian import debian_index

    proj = project.load(REPO)
    mirror, suite = proj.debian.archives[-1]
    pointer = debian_index._pointer(tmp_path, mirror, suite, "main", proj.debian.arch)
    pointer.parent.mkdir(parents=True)
    pointer.write_text(damage)
    report = audit.audit(proj, ["2.2.4"], tmp_path)
    assert not report.debian_complete
    assert any(f"Debian {suite} main/" in line and "cannot be read" in line
               for line in report.not_checked), report.not_checked


def test_an_older_inrelease_than_the_one_fetched_before_is_refused(tmp_path):
    from rules.common.errors import UserError
    from rules.debian import debian_index

    newer = {"Date": "Sat, 12 Sep 2026 09:27:08 UTC"}
    older = {"Date": "Sat, 09 Aug 2025 08:55:05 UTC"}
    args = (tmp_path, "http://deb.example", "s-security", "main", "amd64")
    debian_index._remember(*args, "a" * 64, newer)
    with pytest.raises(UserError, match="replayed or rolled-back archive"):
        debian_index._remember(*args, "b" * 64, older)
    assert "a" * 64 in debian_index._pointer(*args).read_text()
    debian_index._remember(*args, "c" * 64, newer)  # (the same date again is fine)


def test_nothing_fetched_says_so_for_every_archive(tmp_path):
    report = audit.audit(project.load(REPO), ["2.2.4"], tmp_path)
    assert not report.debian_checked and report.python == {}
    text = "\n".join(report.not_checked)
    for _, suite in project.load(REPO).debian.archives:
        assert f"Debian {suite} main/" in text
    assert "Python advisories: never fetched" in text
    assert "vulnerability database" in text
