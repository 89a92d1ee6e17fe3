"""The security manager against a real webserver process, over HTTP: platform-issued tokens
(minted in the image by tests/acceptance/in_image/mint_tokens.py with its own PyJWT), a role
matrix in the
UI and the REST API, an attack matrix, key rotation, role changes that end sessions, and custom
roles that survive the token's sync, token ordering (replays of older tokens, across gunicorn
workers and a restart), claim and header checks, identity normalisation and the sign-in's
same-site rule. sqlite, a scheduler to register the DAG, one webserver (two gunicorn workers)
on 127.0.0.1. The flavors share every layer, so the base flavor stands for both."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests import services
from tests.acceptance.containers import (AIRFLOW, DAGS, LINE, QUIET_AIRFLOW, RUNTIME, container,
    wait_until)
from tests.acceptance.platform_tokens import AUDIENCE, AUTH_ENV, ISSUER, mint
from rules.common.cache import default_cache

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]
ARTIFACTS = Path(os.environ.get("RUNTIME_TEST_ARTIFACTS",
                                default_cache() / "artifacts")) / "security" / LINE
DAG_ID = "runtime_acceptance"
SEED_RUN, SEED_DATE = "seed", "2022-06-01T00:00:00+00:00"
ROLES = ("Viewer", "User", "Op", "Admin")
EVERYONE, EDITORS, OPERATORS, NOBODY = set(ROLES), {"User", "Op", "Admin"}, {"Op", "Admin"}, set()
# Airflow's default permissions, plus the platform's rule: no user or role edits for anyone.
EXPECTED = {"list DAGs": EVERYONE, "view logs": EVERYONE, "trigger a DAG": EDITORS,
            "clear a task": EDITORS, "edit a connection": OPERATORS,
            "edit a variable": OPERATORS, "create a user": NOBODY, "change roles": NOBODY}
START = ("airflow db init >/dev/null 2>&1 && (airflow scheduler >/tmp/scheduler.log 2>&1 &) && "
         "exec airflow webserver --hostname 127.0.0.1 --port {0}")


@pytest.fixture(scope="module")
def auth_dir(images):
    with tempfile.TemporaryDirectory(prefix="runtime-auth-") as tmp:
        Path(tmp).chmod(0o755)
        tokens = mint(images["base"], tmp)
        shutil.copyfile(Path(tmp) / "jwks.json", Path(tmp) / "jwks-first.json")
        yield Path(tmp), tokens


@pytest.fixture(scope="module")
def server(images, auth_dir):
    directory, tokens = auth_dir
    port = services.free_port()
    env = {**QUIET_AIRFLOW, **AUTH_ENV, "AIRFLOW__WEBSERVER__WORKERS": "2"}
    name = f"runtime-security-{port}"
    with container(images["base"], "bash", "-c", START.format(port), name=name, network="host",
                   env=env,
                   volumes={str(directory): "/auth:ro", str(DAGS): "/usr/local/airflow/dags:ro"}):
        base = f"http://127.0.0.1:{port}"
        admin = {"Authorization": f"Bearer {tokens['good']['Admin']}"}
        wait_until(lambda: _status(f"{base}/api/v1/dags/{DAG_ID}", headers=admin) == 200, 300,
                   "the webserver serving the DAG")
        seed = requests.post(f"{base}/api/v1/dags/{DAG_ID}/dagRuns", headers=admin, timeout=30,
                             json={"dag_run_id": SEED_RUN, "execution_date": SEED_DATE})
        assert seed.status_code == 200, seed.text
        yield base, tokens, name


def _status(url, **kw):
    try:
        return requests.get(url, timeout=10, allow_redirects=False, **kw).status_code
    except requests.RequestException:
        return None


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def browser_session(base, token) -> requests.Session:
    """A browser's session made from the platform's token (the platform's page posts it, so
    the browser sends this site's Origin)."""
    s = requests.Session()
    r = s.post(f"{base}/runtime/login", data={"token": token}, headers={"Origin": base},
               allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["Location"].endswith("/home"), r.text
    return s


def csrf(session, base) -> str:
    page = session.get(f"{base}/home", timeout=30)
    return re.search(r'name="csrf_token" content="([^"]+)"', page.text).group(1)


def ui_outcome(response) -> str:
    location = response.headers.get("Location", "")
    if response.status_code == 403 or (response.status_code == 302 and "/login" in location):
        return "refused"
    if response.status_code in (200, 302):
        return "allowed"
    return f"HTTP {response.status_code}"


def api_outcome(response) -> str:
    if response.status_code == 403:
        return "refused"
    if response.status_code in (200, 204):
        return "allowed"
    return f"HTTP {response.status_code}: {response.text[:120]}"


def ui_cell(base, token, action, role, user_ids) -> str:
    s = browser_session(base, token)
    form = {"csrf_token": csrf(s, base)}
    kw = {"allow_redirects": False, "timeout": 60}
    suffix = f"{role.lower()}_ui"
    if action == "list DAGs":
        r = s.get(f"{base}/home", **kw)
        return ui_outcome(r) if r.status_code != 200 or DAG_ID in r.text else "DAG missing"
    if action == "view logs":
        return ui_outcome(s.get(f"{base}/get_logs_with_metadata", params={
            "dag_id": DAG_ID, "task_id": "extract", "execution_date": SEED_DATE,
            "try_number": "1", "metadata": "null"}, **kw))
    if action == "trigger a DAG":
        return ui_outcome(s.post(f"{base}/trigger", params={"dag_id": DAG_ID},
                                 data={**form, "conf": "{}"}, **kw))
    if action == "clear a task":
        return ui_outcome(s.post(f"{base}/clear", data={
            **form, "dag_id": DAG_ID, "task_id": "extract", "execution_date": SEED_DATE,
            "confirmed": "false"}, **kw))
    if action == "edit a connection":
        return ui_outcome(s.post(f"{base}/connection/add", data={
            **form, "conn_id": f"c_{suffix}", "conn_type": "http"}, **kw))
    if action == "edit a variable":
        return ui_outcome(s.post(f"{base}/variable/add", data={
            **form, "key": f"v_{suffix}", "val": "1"}, **kw))
    if action == "create a user":
        return ui_outcome(s.post(f"{base}/users/add", data={
            **form, "first_name": "M", "last_name": "X", "username": f"made_{suffix}",
            "email": f"made_{suffix}@example.com", "roles": "1", "password": "Pw-123456",
            "conf_password": "Pw-123456"}, **kw))
    if action == "change roles":
        return ui_outcome(s.post(f"{base}/users/edit/{user_ids[role]}", data={
            **form, "first_name": "M", "last_name": "X", "username": role.lower(),
            "email": f"{role.lower()}@example.com", "roles": "1", "active": "y"}, **kw))
    raise AssertionError(action)


def api_cell(base, token, action, role) -> str:
    h, kw = bearer(token), {"timeout": 60, "allow_redirects": False}
    suffix = f"{role.lower()}_api"
    dag = f"{base}/api/v1/dags/{DAG_ID}"
    if action == "list DAGs":
        return api_outcome(requests.get(f"{base}/api/v1/dags", headers=h, **kw))
    if action == "view logs":
        return api_outcome(requests.get(
            f"{dag}/dagRuns/{SEED_RUN}/taskInstances/extract/logs/1", headers=h, **kw))
    if action == "trigger a DAG":
        return api_outcome(requests.post(f"{dag}/dagRuns", headers=h, json={
            "dag_run_id": f"run_{suffix}"}, **kw))
    if action == "clear a task":
        return api_outcome(requests.post(f"{dag}/clearTaskInstances", headers=h, json={
            "dry_run": True, "task_ids": ["extract"]}, **kw))
    if action == "edit a connection":
        return api_outcome(requests.post(f"{base}/api/v1/connections", headers=h, json={
            "connection_id": f"c_{suffix}", "conn_type": "http"}, **kw))
    if action == "edit a variable":
        return api_outcome(requests.post(f"{base}/api/v1/variables", headers=h, json={
            "key": f"v_{suffix}", "value": "1"}, **kw))
    if action == "create a user":
        return api_outcome(requests.post(f"{base}/api/v1/users", headers=h, json={
            "username": f"made_{suffix}", "email": f"made_{suffix}@example.com",
            "first_name": "M", "last_name": "X", "roles": [{"name": "Admin"}],
            "password": "Pw-123456"}, **kw))
    if action == "change roles":
        return api_outcome(requests.patch(
            f"{base}/api/v1/users/{role.lower()}", params={"update_mask": "roles"}, headers=h,
            json={"roles": [{"name": "Admin"}]}, **kw))
    raise AssertionError(action)


def users(name) -> list[dict]:
    """The users as the database holds them (Airflow's CLI in the server container; some
    versions print log lines before the JSON)."""
    out = subprocess.run(["docker", "exec", name, "airflow", "users", "list", "--output",
                          "json"], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.strip() in ("[", "[]") or line.lstrip().startswith("[{"):
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
    raise AssertionError(f"no JSON in: {out[-500:]}")


def user_roles(name, username) -> list[str]:
    rows = users(name)
    found = [r for r in rows if r["username"] == username]
    if not found:
        return []
    roles = found[0]["roles"]
    return sorted(roles if isinstance(roles, list) else re.findall(r"\w+", roles))


def test_role_matrix_in_ui_and_rest_api(server):
    base, tokens, name = server
    for role in ROLES:  # the users exist once they have called once
        assert requests.get(f"{base}/api/v1/dags", headers=bearer(tokens["good"][role]),
                            timeout=30).status_code in (200, 403)
    user_ids = {r["username"].title(): r["id"] for r in users(name)}
    got, want = {}, {}
    for action, allowed in EXPECTED.items():
        for role in ROLES:
            token = tokens["good"][role]
            expected = "allowed" if role in allowed else "refused"
            want[(action, role, "UI")] = want[(action, role, "REST")] = expected
            got[(action, role, "UI")] = ui_cell(base, token, action, role, user_ids)
            got[(action, role, "REST")] = api_cell(base, token, action, role)
    write_matrix(got)
    wrong = {cell: (got[cell], want[cell]) for cell in want if got[cell] != want[cell]}
    assert not wrong, "\n".join(f"{c}: got {g}, want {w}" for c, (g, w) in wrong.items())
    for role in ROLES:  # nobody's roles changed, and no user was made
        assert user_roles(name, role.lower()) == [role]
    assert not [u for u in user_ids if u.lower().startswith("made_")]
    assert user_roles(name, "made_admin_api") == [] and user_roles(name, "made_admin_ui") == []


def write_matrix(got):
    """The observed matrix as a markdown table, kept as an artifact."""
    lines = ["| action | " + " | ".join(f"{r} UI | {r} REST" for r in ROLES) + " |",
             "|---" * (1 + 2 * len(ROLES)) + "|"]
    for action in EXPECTED:
        cells = [got[(action, r, s)] for r in ROLES for s in ("UI", "REST")]
        lines.append(f"| {action} | " + " | ".join(cells) + " |")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "role-matrix.md").write_text(
        f"Runtime {RUNTIME.version} (Airflow {RUNTIME.airflow})\n\n" + "\n".join(lines) + "\n")


ATTACKS = ("garbage", "alg-none", "hs256-public-key-as-secret", "wrong-key", "expired",
           "nbf-in-future", "wrong-aud", "wrong-iss", "roles-not-a-list", "unknown-role",
           "empty-roles", "payload-altered", "deleted-user", "oversized", "no-exp", "no-sub",
           "es256-with-rsa-kid", "rs256-with-ec-kid", "unknown-kid",
           # (issue 19) crit, claim types and lifetime, deep nesting, identities
           "crit", "exp-string", "exp-huge", "iat-string", "nbf-string", "iat-in-future",
           "no-iat", "lifetime-too-long", "deep-header", "sub-with-spaces", "sub-with-control",
           "sub-not-nfkc", "name-with-control", "email-with-newline", "name-too-long")


@pytest.mark.parametrize("attack", ("no token", "basic auth") + ATTACKS)
def test_attack_is_refused_with_no_session(server, attack):
    base, tokens, name = server
    if attack == "no token":
        headers = {}
    elif attack == "basic auth":
        headers = {"Authorization": "Basic YWRtaW46YWRtaW4="}  # admin:admin
    else:
        headers = bearer(tokens["bad"][attack])
    api = requests.get(f"{base}/api/v1/dags", headers=headers, timeout=30)
    assert api.status_code in (401, 403), (api.status_code, api.text[:200])
    # The cookies it handed out, if any, authenticate nothing.
    after = requests.get(f"{base}/api/v1/dags", cookies=api.cookies, timeout=30)
    assert after.status_code == 401
    if attack in ATTACKS:  # the same token at the browser's sign-in, from this site
        assert api.status_code == 401, (api.status_code, api.text[:200])
        assert "Traceback" not in api.text
        s = requests.Session()
        login = s.post(f"{base}/runtime/login", data={"token": tokens["bad"][attack]},
                       headers={"Origin": base}, allow_redirects=False, timeout=30)
        assert login.status_code == 401, (login.status_code, login.text[:200])
        home = s.get(f"{base}/home", allow_redirects=False, timeout=30)
        assert home.status_code == 302 and "/login" in home.headers["Location"]
    if attack == "deleted-user":
        assert user_roles(name, "deleted-user") == []
    if attack.startswith("sub-"):  # no look-alike of a user was made
        assert not [u for u in users(name) if u["username"] not in ROLES_AND_PEOPLE]


def test_password_form_is_off(server):
    base, _, _ = server
    assert requests.get(f"{base}/login/", timeout=30).status_code == 403
    s = requests.Session()
    posted = s.post(f"{base}/login/", data={"username": "admin", "password": "admin"},
                    allow_redirects=False, timeout=30)
    assert posted.status_code in (400, 403)  # (400: Airflow's CSRF check answers first)
    home = s.get(f"{base}/home", allow_redirects=False, timeout=30)
    assert home.status_code == 302 and "/login" in home.headers["Location"]


def test_es256_and_clock_leeway(server, auth_dir, images):
    base, tokens, _ = server
    skewed = mint(images["base"], auth_dir[0], "skewed")["good"]["skewed"]  # expired 10 s ago
    for name, token in (("es256", tokens["good"]["es256"]), ("skewed", skewed)):
        r = requests.get(f"{base}/api/v1/dags", headers=bearer(token), timeout=30)
        assert r.status_code == 200, (name, r.text[:200])


VERIFY = """
import json, sys
from runtime_security.tokens import InvalidToken, Verifier
out = {}
for name, token in json.load(sys.stdin).items():
    try:
        out[name] = list(Verifier().verify(token).roles)
    except InvalidToken as e:
        out[name] = str(e)
print(json.dumps(out))
"""


def test_a_pem_public_key_and_a_size_limit(images, auth_dir):
    """The verifier alone, in the image: one PEM key instead of a JWKS, a smaller size limit."""
    directory, tokens = auth_dir
    sample = {"viewer": tokens["good"]["Viewer"], "es256": tokens["good"]["es256"],
              "wrong-key": tokens["bad"]["wrong-key"]}
    limit = max(map(len, sample.values()))
    sample["oversized"] = tokens["bad"]["oversized"]  # validly signed, but over the limit
    env = {"RUNTIME_AUTH_PUBLIC_KEY_FILE": "/auth/rsa-1.pub.pem", "RUNTIME_AUTH_AUDIENCE":
           AUDIENCE, "RUNTIME_AUTH_ISSUER": ISSUER, "RUNTIME_AUTH_MAX_TOKEN_BYTES": str(limit)}
    proc = subprocess.run(
        ["docker", "run", "--rm", "-i", "--network", "none", "-v", f"{directory}:/auth:ro",
         *(f"-e{k}={v}" for k, v in env.items()), "--entrypoint", "python3.9", images["base"],
         "-c", VERIFY], input=json.dumps(sample), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["viewer"] == ["Viewer"]
    assert result["es256"] == "invalid token: cannot verify"  # an RSA key cannot check ES256
    assert result["wrong-key"] == "invalid token: InvalidSignatureError"
    assert result["oversized"] == "token too large"


def test_rest_api_makes_no_session(server):
    base, tokens, _ = server
    r = requests.get(f"{base}/api/v1/dags", headers=bearer(tokens["good"]["Admin"]), timeout=30)
    assert r.status_code == 200
    assert requests.get(f"{base}/api/v1/dags", cookies=r.cookies, timeout=30).status_code == 401


def test_new_roles_end_the_old_session(server):
    base, tokens, name = server
    s = browser_session(base, tokens["good"]["carol-op"])
    assert s.get(f"{base}/connection/list/", allow_redirects=False, timeout=30).status_code == 200
    # The platform demotes carol: her next token says Viewer.
    r = requests.get(f"{base}/api/v1/dags", headers=bearer(tokens["good"]["carol-viewer"]),
                     timeout=30)
    assert r.status_code == 200 and user_roles(name, "carol") == ["Viewer"]
    ended = s.get(f"{base}/connection/list/", allow_redirects=False, timeout=30)
    assert ended.status_code == 401
    again = s.get(f"{base}/home", allow_redirects=False, timeout=30)
    assert again.status_code == 302 and "/login" in again.headers["Location"]


def test_custom_roles_are_left_alone(server):
    base, tokens, name = server
    token = tokens["good"]["dave-viewer"]
    assert requests.get(f"{base}/api/v1/dags", headers=bearer(token), timeout=30).ok
    for cmd in (["airflow", "roles", "create", "Auditors"],
                ["airflow", "users", "add-role", "--username", "dave", "--role", "Auditors"]):
        subprocess.run(["docker", "exec", name, *cmd], capture_output=True, check=True)
    assert user_roles(name, "dave") == ["Auditors", "Viewer"]
    assert requests.get(f"{base}/api/v1/dags", headers=bearer(token), timeout=30).ok
    assert user_roles(name, "dave") == ["Auditors", "Viewer"]


def test_keys_rotate_without_restart(server, auth_dir):
    base, tokens, _ = server
    directory, _ = auth_dir
    old, new = bearer(tokens["good"]["Viewer"]), bearer(tokens["good"]["rotated"])
    assert requests.get(f"{base}/api/v1/dags", headers=new, timeout=30).status_code == 401
    try:
        (directory / "jwks.json.tmp").write_bytes((directory / "jwks-rotated.json").read_bytes())
        (directory / "jwks.json.tmp").replace(directory / "jwks.json")
        time.sleep(1.1)  # a different mtime even on coarse clocks
        assert requests.get(f"{base}/api/v1/dags", headers=new, timeout=30).status_code == 200
        assert requests.get(f"{base}/api/v1/dags", headers=old, timeout=30).status_code == 401
    finally:
        (directory / "jwks.json.tmp").write_bytes((directory / "jwks-first.json").read_bytes())
        (directory / "jwks.json.tmp").replace(directory / "jwks.json")


def test_deleting_a_user_ends_their_session(server, auth_dir):
    base, tokens, _ = server
    directory, _ = auth_dir
    s = browser_session(base, tokens["good"]["es256"])  # erin
    assert s.get(f"{base}/home", allow_redirects=False, timeout=30).status_code == 200
    revoked = directory / "revoked.txt"
    before = revoked.read_text()
    try:
        (directory / "revoked.tmp").write_text(before + "erin\n")
        (directory / "revoked.tmp").replace(revoked)
        time.sleep(1.1)
        ended = s.get(f"{base}/home", allow_redirects=False, timeout=30)
        assert ended.status_code == 401 and "deleted by the platform" in ended.text
        again = s.get(f"{base}/home", allow_redirects=False, timeout=30)
        assert again.status_code == 302 and "/login" in again.headers["Location"]
    finally:
        (directory / "revoked.tmp").write_text(before)
        (directory / "revoked.tmp").replace(revoked)


def test_sign_in_from_another_site_is_refused(server):
    base, tokens, _ = server
    r = requests.post(f"{base}/runtime/login", data={"token": tokens["good"]["Viewer"]},
                      headers={"Origin": "https://evil.example.com"}, allow_redirects=False,
                      timeout=30)
    assert r.status_code == 403
    assert requests.get(f"{base}/home", cookies=r.cookies, allow_redirects=False,
                        timeout=30).status_code == 302


def test_airflow_version_is_the_lines(server):
    """(The server under test runs the line's Airflow.)"""
    base, tokens, _ = server
    r = requests.get(f"{base}/api/v1/version", headers=bearer(tokens["good"]["Viewer"]),
                     timeout=30)
    assert r.status_code == 200 and r.json()["version"] == AIRFLOW


# every user the tests make from valid tokens (lower-case role names for the role matrix)
ROLES_AND_PEOPLE = {r.lower() for r in ROLES} | {
    "carol", "dave", "erin", "frank", "gina", "zoe", "yan", "rex", "sam", "tia"}


CLAIM_CHECKS = {  # bad token: the verifier's reason, exactly
    "crit": "header parameter crit: no critical extension is understood here",
    "deep-header": "malformed token",
    "exp-string": "claim exp must be a NumericDate (a number of seconds)",
    "iat-string": "claim iat must be a NumericDate (a number of seconds)",
    "nbf-string": "claim nbf must be a NumericDate (a number of seconds)",
    "exp-huge": "token lifetime (exp - iat) must be more than 0 and at most 86400 s",
    "lifetime-too-long": "token lifetime (exp - iat) must be more than 0 and at most 86400 s",
    "iat-in-future": "claim iat is in the future",
    "no-iat": "claim iat is required",
    "sub-with-spaces": "claim sub must be 1-64 characters in NFKC form, without white space "
                       "or control characters",
    "sub-with-control": "claim sub must be 1-64 characters in NFKC form, without white space "
                        "or control characters",
    "sub-not-nfkc": "claim sub must be 1-64 characters in NFKC form, without white space "
                    "or control characters",
    "name-with-control": "claim name contains control characters",
    "email-with-newline": "claim email contains control characters",
    "name-too-long": "claim name: first name and rest must be at most 64 characters each",
}


def run_verifier(images, directory, sample, **env) -> dict:
    """Verifier().verify of each token, in the image (roles, or the reason it refused)."""
    env = {"RUNTIME_AUTH_PUBLIC_KEY_FILE": "/auth/rsa-1.pub.pem", "RUNTIME_AUTH_AUDIENCE":
           AUDIENCE, "RUNTIME_AUTH_ISSUER": ISSUER, **env}
    proc = subprocess.run(
        ["docker", "run", "--rm", "-i", "--network", "none", "-v", f"{directory}:/auth:ro",
         *(f"-e{k}={v}" for k, v in env.items()), "--entrypoint", "python3.9", images["base"],
         "-c", VERIFY], input=json.dumps(sample), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_claim_types_crit_and_identities_are_checked(images, auth_dir):
    """The verifier alone: each malformed token refused for its own reason (not merely by a
    later check), a good token still accepted, and RUNTIME_AUTH_MAX_LIFETIME honoured."""
    directory, tokens = auth_dir
    sample = {name: tokens["bad"][name] for name in CLAIM_CHECKS}
    sample["viewer"] = tokens["good"]["Viewer"]
    result = run_verifier(images, directory, sample)
    assert result.pop("viewer") == ["Viewer"]
    assert result == CLAIM_CHECKS
    # the good tokens live an hour: a cap of ten minutes refuses them
    capped = run_verifier(images, directory, {"viewer": tokens["good"]["Viewer"]},
                          RUNTIME_AUTH_MAX_LIFETIME="600")
    assert capped == {"viewer": "token lifetime (exp - iat) must be more than 0 and at most "
                                "600 s"}


def api_status(base, token) -> int:
    return requests.get(f"{base}/api/v1/dags", headers=bearer(token), timeout=30).status_code


def login_status(base, token) -> int:
    return requests.post(f"{base}/runtime/login", data={"token": token},
                         headers={"Origin": base}, allow_redirects=False,
                         timeout=30).status_code


# Several requests each: the webserver runs two gunicorn workers, each must know the order.
TRIES = 6


def test_an_older_token_cannot_give_roles_back(server):
    """Demoted (rex), promoted (sam), and two tokens of one iat with other roles (tia)."""
    base, tokens, name = server
    order = tokens["order"]
    assert api_status(base, order["rex-admin-old"]) == 200
    admin_session = browser_session(base, order["rex-admin-old"])
    assert admin_session.get(f"{base}/connection/list/", allow_redirects=False,
                             timeout=30).status_code == 200
    assert api_status(base, order["rex-viewer-new"]) == 200
    assert user_roles(name, "rex") == ["Viewer"]
    # the session made from the older token ended with the roles it had
    assert admin_session.get(f"{base}/connection/list/", allow_redirects=False,
                             timeout=30).status_code == 401
    for _ in range(TRIES):  # the replayed Admin token authenticates nothing, changes nothing
        assert api_status(base, order["rex-admin-old"]) == 401
        assert login_status(base, order["rex-admin-old"]) == 401
    assert user_roles(name, "rex") == ["Viewer"]
    assert api_status(base, order["rex-viewer-new"]) == 200  # (the newest still works)

    assert api_status(base, order["sam-viewer-old"]) == 200
    assert api_status(base, order["sam-admin-new"]) == 200
    for _ in range(TRIES):
        assert api_status(base, order["sam-viewer-old"]) == 401
        assert login_status(base, order["sam-viewer-old"]) == 401
    assert user_roles(name, "sam") == ["Admin"]

    assert api_status(base, order["tia-admin"]) == 200
    assert user_roles(name, "tia") == ["Admin"]
    assert api_status(base, order["tia-viewer"]) == 401
    assert user_roles(name, "tia") == []  # no built-in role until a newer token
    for token in (order["tia-admin"], order["tia-viewer"]):
        assert api_status(base, token) == 401
        assert login_status(base, token) == 401


def test_a_malformed_token_gives_401_and_no_stack_trace(server):
    """A header nested 1,400 levels deep raised RecursionError: HTTP 500 with a traceback."""
    base, tokens, name = server
    deep = tokens["bad"]["deep-header"]
    assert len(deep) < 4096
    for response in (requests.get(f"{base}/api/v1/dags", headers=bearer(deep), timeout=30),
                     requests.get(f"{base}/home", headers=bearer(deep), timeout=30),
                     requests.post(f"{base}/runtime/login", data={"token": deep},
                                   headers={"Origin": base}, timeout=30)):
        assert response.status_code == 401, (response.status_code, response.text[:300])
        assert "Traceback" not in response.text and "RecursionError" not in response.text
    # and a production image does not show stack traces on the pages of other errors (an
    # unparsable date makes this page raise in Airflow 2.2)
    proc = subprocess.run(["docker", "exec", name, "airflow", "config", "get-value",
                           "webserver", "expose_stacktrace"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
    page = requests.get(f"{base}/rendered-templates", headers=bearer(tokens["good"]["Viewer"]),
                        params={"dag_id": DAG_ID, "task_id": "extract",
                                "execution_date": "not-a-date"}, timeout=30)
    assert page.status_code == 500
    assert "Traceback" not in page.text and "contact server admin" in page.text, page.text


def test_spaced_names_are_normalised_and_the_users_api_works(server):
    base, tokens, name = server
    for token in ("zoe-spaced", "yan-blank-name"):
        assert api_status(base, tokens["good"][token]) == 200
    assert api_status(base, tokens["bad"]["sub-with-spaces"]) == 401
    listed = requests.get(f"{base}/api/v1/users", headers=bearer(tokens["good"]["Admin"]),
                          params={"limit": 100}, timeout=30)
    assert listed.status_code == 200, listed.text[:300]
    by_name = {u["username"]: u for u in listed.json()["users"]}
    assert (by_name["zoe"]["first_name"], by_name["zoe"]["last_name"],
            by_name["zoe"]["email"]) == ("Zoe", "Quinn", "zoe@example.com")
    assert by_name["yan"]["first_name"] == "yan"
    assert not [u for u in by_name if u.strip() != u or u not in ROLES_AND_PEOPLE]


def test_sign_in_needs_this_sites_origin_or_referer(server):
    base, tokens, _ = server
    token = tokens["good"]["Viewer"]
    refused = ({}, {"Origin": "null"}, {"Referer": "https://evil.example.com/page"},
               {"Origin": "https://evil.example.com", "Referer": f"{base}/"},
               {"Origin": base.replace("127.0.0.1", "localhost")})
    for headers in refused:
        r = requests.post(f"{base}/runtime/login", data={"token": token}, headers=headers,
                          allow_redirects=False, timeout=30)
        assert r.status_code == 403, (headers, r.status_code)
        assert requests.get(f"{base}/home", cookies=r.cookies, allow_redirects=False,
                            timeout=30).status_code == 302
    # the header form of the sign-in too
    r = requests.post(f"{base}/runtime/login", headers=bearer(token), allow_redirects=False,
                      timeout=30)
    assert r.status_code == 403
    for headers in ({"Origin": base}, {"Referer": f"{base}/some/page?x=1"}):
        s = requests.Session()
        r = s.post(f"{base}/runtime/login", data={"token": token}, headers=headers,
                   allow_redirects=False, timeout=30)
        assert r.status_code == 302, (headers, r.status_code, r.text[:200])
        assert s.get(f"{base}/home", allow_redirects=False, timeout=30).status_code == 200


def test_a_token_in_the_url_is_dropped(server):
    base, tokens, name = server
    token = tokens["good"]["Viewer"]
    r = requests.get(f"{base}/home", params={"token": token, "x": "1"}, timeout=30)
    hops = [h.headers.get("Location", "") for h in r.history] + [r.url]
    assert len(hops) > 1 and all(token not in hop for hop in hops), hops
    assert "x=1" in hops[0]  # (the rest of the query stays)
    assert r.status_code in (401, 403)  # nobody was signed in by it
    login = requests.post(f"{base}/runtime/login", params={"token": token},
                          headers={"Origin": base}, allow_redirects=False, timeout=30)
    assert login.status_code == 400
    # after a sign-in, the page it goes to next carries no token either (another user's
    # token here, so that the log check below is about the GET alone)
    other = tokens["good"]["User"]
    r = requests.post(f"{base}/runtime/login", params={"next": f"/home?token={other}&y=2"},
                      data={"token": other}, headers={"Origin": base}, allow_redirects=False,
                      timeout=30)
    assert r.status_code == 302 and r.headers["Location"].endswith("/home?y=2"), \
        r.headers.get("Location")
    time.sleep(1)
    logged = container_logs(name)
    # gunicorn's access log has the two requests, with the token hidden, and no other line
    # (a login URL's next=, say) repeats it
    assert "GET /home?token=hidden&x=1 " in logged and \
        "POST /runtime/login?token=hidden " in logged, logged[-2000:]
    assert token not in logged


def container_logs(name) -> str:
    proc = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
    return proc.stdout + proc.stderr


def test_token_order_survives_a_restart(server):
    """(Last: it restarts the server.) The order is in the metadata database."""
    base, tokens, name = server
    order = tokens["order"]
    admin = bearer(tokens["good"]["Admin"])
    subprocess.run(["docker", "restart", "-t", "5", name], capture_output=True, check=True)
    wait_until(lambda: _status(f"{base}/api/v1/dags/{DAG_ID}", headers=admin) == 200, 300,
               "the restarted webserver")
    for _ in range(TRIES):
        assert api_status(base, order["rex-admin-old"]) == 401
        assert login_status(base, order["rex-admin-old"]) == 401
        assert api_status(base, order["sam-viewer-old"]) == 401
    assert api_status(base, order["rex-viewer-new"]) == 200
    assert api_status(base, order["sam-admin-new"]) == 200
    assert user_roles(name, "rex") == ["Viewer"] and user_roles(name, "sam") == ["Admin"]


def test_token_order_holds_between_two_webservers_on_postgresql(images, auth_dir,
                                                               postgres_server):
    """Two webservers (two workers each) on one PostgreSQL database: the order one of them
    learnt holds on the other."""
    directory, tokens = auth_dir
    order, pg = tokens["order"], postgres_server
    database = pg.create_database("security_order")
    env = {**QUIET_AIRFLOW, **AUTH_ENV, "AIRFLOW__WEBSERVER__WORKERS": "2",
           "AIRFLOW__CORE__SQL_ALCHEMY_CONN": pg.url(database)}
    volumes = {str(directory): "/auth:ro"}
    init = subprocess.run(["docker", "run", "--rm", "--network", "host",
                           *(f"-e{k}={v}" for k, v in env.items()), images["base"],
                           "airflow", "db", "init"], capture_output=True, text=True, timeout=600)
    assert init.returncode == 0, init.stderr[-2000:]
    ports = services.free_port(), services.free_port()
    with container(images["base"], "airflow", "webserver", "--hostname", "127.0.0.1", "--port",
                   str(ports[0]), name=f"runtime-security-pg-{ports[0]}", network="host",
                   env=env, volumes=volumes), \
            container(images["base"], "airflow", "webserver", "--hostname", "127.0.0.1",
                      "--port", str(ports[1]), name=f"runtime-security-pg-{ports[1]}",
                      network="host", env=env, volumes=volumes):
        one, two = (f"http://127.0.0.1:{port}" for port in ports)
        for base in (one, two):
            wait_until(lambda url=f"{base}/api/v1/version": _status(
                url, headers=bearer(tokens["good"]["Viewer"])) == 200, 300,
                f"the webserver at {base}")
        assert api_status(one, order["rex-admin-old"]) == 200
        assert api_status(two, order["rex-viewer-new"]) == 200
        assert api_status(two, order["sam-viewer-old"]) == 200
        assert api_status(one, order["sam-admin-new"]) == 200
        for _ in range(TRIES // 2):
            for base in (one, two):
                assert api_status(base, order["rex-admin-old"]) == 401
                assert login_status(base, order["rex-admin-old"]) == 401
                assert api_status(base, order["sam-viewer-old"]) == 401
        assert api_status(one, order["rex-viewer-new"]) == 200
        assert api_status(two, order["sam-admin-new"]) == 200
    roles = pg.psql("SELECT u.username, r.name FROM ab_user u JOIN ab_user_role ur ON "
                    "ur.user_id = u.id JOIN ab_role r ON r.id = ur.role_id WHERE u.username "
                    "IN ('rex', 'sam') ORDER BY 1", database)
    assert roles == [["rex", "Viewer"], ["sam", "Admin"]]
    marks = pg.psql("SELECT subject FROM runtime_token_watermark ORDER BY 1", database)
    assert [m[0] for m in marks] == ["rex", "sam", "viewer"]
