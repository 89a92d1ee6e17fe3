"""`invoke audit`: the security fixes and advisories the locks are missing (rules.lock.audit),
offline from what was last fetched; `--refresh` fetches first. Always lists what it could not
check. Exit codes: 1 when anything is pending; else 2 when not every Debian archive's index
could be compared (an incomplete audit is not a clean one); else 0. Python advisories that no
reachable source could give are said, not counted as a failure: on a network without one the
audit would otherwise never pass."""

from invoke import Exit, task

from rules.common.cli import user_errors
from rules.common.errors import UserError


@task(help={"runtime": "only the Python lock of this line (the Debian lock is shared)",
            "refresh": "first fetch the Debian indexes and the Python advisories (network)",
            "advisories_url": "per-version JSON API of the Python advisories, with {name} and "
                              "{version} (default: PyPI's)"})
@user_errors
def audit(c, runtime=None, refresh=False, advisories_url=None):
    """List the locked Debian packages with a newer version in the archive and the locked
    Python distributions with a known advisory, from the data last fetched; say what could not
    be checked. Exit 1 when something is pending."""
    from rules.common import report as out
    from rules.common.cache import default_cache
    from rules.load import project
    from rules.lock import audit as auditing, pip_lock

    proj = project.load()
    cache = default_cache()
    airflows = pip_lock.airflow_versions(proj, runtime)
    if refresh:
        with out.status("fetching the Debian indexes"):
            auditing.refresh_debian(proj, cache)
        with out.status("fetching the Python advisories"):
            snapshot = auditing.refresh_python(proj, airflows, cache,
                                               advisories_url or auditing.ADVISORIES_URL)
        last = snapshot["last_refresh"]
        if last["unusable"]:
            print(f"refresh: Python advisories not fetched: {last['unusable']}")
        elif last["failed"]:
            print(f"refresh: {len(last['failed'])} pins failed (kept what was fetched before): "
                  + ", ".join(last["failed"][:5]))
    result = auditing.audit(proj, airflows, cache)
    if result.debian:
        out.table("Debian packages with a newer version in the archive",
                  ("package", "locked", "newer", "in", "kind"),
                  [(f.name, f.locked, f.newer, f.archive,
                    "security fix" if f.security else "stable update")
                   for f in sorted(result.debian, key=lambda f: (not f.security, f.name))])
    for airflow, found in result.python.items():
        if found:
            patched = proj.airflow_version(airflow)
            patchset = proj.patches.get(airflow)
            backports = ", ".join(p.rsplit("/", 1)[-1] for p in patchset.patches) \
                if patchset else "none"
            out.table(f"Python advisories, lock of Airflow {airflow} (the image has "
                      f"apache-airflow {patched}, checked as {airflow}; its backports: "
                      f"{backports})",
                      ("distribution", "locked", "advisory", "fixed in", "summary"),
                      [(a.name, a.locked, ", ".join((a.id, *a.aliases)),
                        ", ".join(a.fixed_in), a.summary) for a in found])
    print("checked:")
    for line in result.checked:
        print(f"  {line}")
    print("NOT checked:")
    for line in result.not_checked:
        print(f"  {line}")
    security = sum(f.security for f in result.debian)
    debian = (f"{len(result.debian)} Debian packages ({security} with a security fix)"
              + ("" if result.debian_complete else ", some archives not compared")) \
        if result.debian_checked else "Debian: not checked"
    python = (f"{sum(len(a) for a in result.python.values())} Python advisories"
              + ("" if result.python_complete else ", some pins not checked")) \
        if result.python else "Python advisories: not checked"
    print(f"pending: {debian}; {python}")
    if result.pending:
        raise Exit(code=1)
    if not result.debian_complete:
        raise UserError("incomplete: not every Debian archive's index could be compared with "
                        "the lock (see NOT checked); run `invoke audit --refresh` (network)")
