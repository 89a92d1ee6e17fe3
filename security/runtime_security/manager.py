"""The Runtime's security manager: the platform owns identities and role assignments.

Every request may carry ``Authorization: Bearer <token>`` (see ``tokens``): the user is created
or updated from the claims, its built-in roles (Admin, Op, User, Viewer) are set from the token
(custom roles stay), and the request runs as that user without creating a session. A browser
session is made by POSTing a token to ``/runtime/login`` (form field ``token``, or the header);
the session remembers the roles, subject and expiry of its token and ends as soon as the token
expires, the platform deletes the user, or the user's roles change.
Tokens of a subject are ordered by their iat (see ``watermark``): a token older than the newest
one already used for that subject is refused, so a replayed old token cannot give back roles.
A sign-in must come from this site: its Origin (or, without one, its Referer) must name this
host. A ``token`` in a URL's query is never used: it is dropped (a redirect to the same URL
without it, or 400 for other methods than GET) before anything can copy it into a login
redirect, and hidden in the access log's line of that request.
Nobody, not even Admin, can create, edit or delete users or roles through the UI or the REST
API. The password form is off unless RUNTIME_AUTH_PASSWORD_LOGIN=true, or unless the Astro
CLI's local environment runs the image (ASTRONOMER_ENVIRONMENT=local, as `astro dev start`
sets it: its users sign in as admin/admin) and RUNTIME_AUTH_PASSWORD_LOGIN is not set.
"""

import hashlib
import json
import logging
import os
import re
import secrets
import time
from urllib.parse import parse_qsl, urlencode, urlparse

from flask import Response, g, redirect, request, session
from flask_login import current_user, login_user, logout_user

from airflow.www.security import AirflowSecurityManager
from runtime_security import watermark
from runtime_security.tokens import BUILTIN_ROLES, InvalidToken, Verifier

log = logging.getLogger(__name__)

LOGIN_PATH = "/runtime/login"
SESSION_ROLES, SESSION_SUBJECT, SESSION_EXPIRES = "_runtime_roles", "_runtime_sub", "_runtime_exp"
# User and role management belongs to the platform: refused for everyone, whatever the method.
_UI_MANAGEMENT = re.compile(
    r"^/(users|roles)/(add|edit|delete|action|action_post|api)(/|$)"
    r"|^/(resetpassword|resetmypassword|userinfoeditview|register\w*)(/|$)"
    r"|^/api/v1/security(/|$)")
_API_MANAGEMENT = re.compile(r"^/api/v1/(users|roles)(/|$)")
_READ_METHODS = {"GET", "HEAD", "OPTIONS"}


def _fingerprint(role_names) -> str:
    return hashlib.sha256(",".join(sorted(role_names)).encode()).hexdigest()[:32]


def _builtin_names(user) -> list:
    return sorted(r.name for r in user.roles if r.name in BUILTIN_ROLES)


def _without_token(path: str, query: str) -> str:
    """path?query without its ``token`` parameters."""
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"]
    return path + ("?" + urlencode(kept) if kept else "")


def _hide_token_from_access_log(environ):
    """gunicorn writes the access log's request line from this request's environ once the
    response is sent: the token's value is replaced there."""
    query = environ.get("QUERY_STRING", "")
    hidden = urlencode([(k, "hidden" if k == "token" else v)
                        for k, v in parse_qsl(query, keep_blank_values=True)])
    environ["QUERY_STRING"] = hidden
    if environ.get("RAW_URI"):
        environ["RAW_URI"] = environ["RAW_URI"].partition("?")[0] + "?" + hidden


def _same_site(url) -> bool:
    parsed = urlparse(url or "")
    return parsed.scheme in ("http", "https") and parsed.netloc == request.host


def _from_this_site() -> bool:
    """Origin, when the browser sent one ("null" included), else Referer, names this host."""
    origin = request.headers.get("Origin")
    return _same_site(origin) if origin is not None else \
        _same_site(request.headers.get("Referer"))


def password_login_enabled(environ) -> bool:
    """RUNTIME_AUTH_PASSWORD_LOGIN decides when set (true/1/yes: on, anything else: off);
    unset or empty, the form is on only in the Astro CLI's local environment."""
    setting = environ.get("RUNTIME_AUTH_PASSWORD_LOGIN", "").strip().lower()
    if setting:
        return setting in ("1", "true", "yes")
    return environ.get("ASTRONOMER_ENVIRONMENT", "").strip().lower() == "local"


def _refuse(status: int, reason: str) -> Response:
    titles = {400: "Bad Request", 401: "Unauthorized", 405: "Method Not Allowed"}
    body = {"title": titles.get(status, "Forbidden"), "status": status, "detail": reason}
    resp = Response(json.dumps(body), status, mimetype="application/problem+json")
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="runtime"'
    return resp


class RuntimeSecurityManager(AirflowSecurityManager):
    def __init__(self, appbuilder):
        super().__init__(appbuilder)
        self.verifier = Verifier()
        self.password_login = password_login_enabled(os.environ)

    # FAB registers this with app.before_request (it sets g.user in the base class).
    def before_request(self):
        path = request.path
        if "token" in request.args:  # (never read from a URL: keep it out of redirects and logs)
            target = _without_token(path, request.query_string.decode("latin-1"))
            _hide_token_from_access_log(request.environ)
            if request.method not in _READ_METHODS:
                return _refuse(400, "a token is not accepted in the URL")
            return redirect(target)
        if _UI_MANAGEMENT.search(path) or (
                _API_MANAGEMENT.search(path) and request.method not in _READ_METHODS):
            return _refuse(403, "users and roles are managed by the platform")
        if path.rstrip("/") == "/login" and not self.password_login:
            return _refuse(403, f"sign in through the platform (POST a token to {LOGIN_PATH})")
        if path == LOGIN_PATH:
            return self._session_login()
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            try:
                user = self.user_from_token(header[7:].strip())
            except InvalidToken as e:
                return _refuse(401, str(e))
            except PermissionError as e:
                return _refuse(403, str(e))
            self._use_for_this_request(user)
        elif current_user.is_authenticated and SESSION_ROLES in session:
            problem = self._session_problem()
            if problem:
                logout_user()
                session.clear()
                return _refuse(401, f"{problem}: sign in again through the platform")
        g.user = current_user
        return None

    def _session_problem(self):
        """Why a session made from a token must end now (or None): the token it came from
        expired, the platform deleted the user, or the user's roles changed since."""
        if time.time() > session.get(SESSION_EXPIRES, 0) + self.verifier.leeway:
            return "your sign-in expired"
        try:
            if self.verifier.revoked(session.get(SESSION_SUBJECT, "")):
                return "this user was deleted by the platform"
        except InvalidToken as e:
            return str(e)
        if session[SESSION_ROLES] != _fingerprint(_builtin_names(current_user)):
            return "your roles changed"
        return None

    def _session_login(self):
        if request.method != "POST":
            return _refuse(405, f"POST a token to {LOGIN_PATH}")
        if not _from_this_site():
            return _refuse(403, "sign-in from another site is refused (Origin or Referer "
                                "must name this site)")
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else \
            request.form.get("token", "")
        try:
            user = self.user_from_token(token)
        except InvalidToken as e:
            return _refuse(401, str(e))
        except PermissionError as e:
            return _refuse(403, str(e))
        session.clear()
        session.permanent = True  # (Airflow's own hook, which sets it, has not run yet)
        login_user(user, remember=False)
        session[SESSION_ROLES] = _fingerprint(_builtin_names(user))
        session[SESSION_SUBJECT], session[SESSION_EXPIRES] = user.username, g.runtime_token_exp
        target = request.args.get("next", "/home")
        parsed = urlparse(target)
        if parsed.scheme or parsed.netloc or not target.startswith("/") or "\\" in target \
                or target.startswith("//"):
            return redirect("/home")
        return redirect(_without_token(parsed.path, parsed.query))

    @staticmethod
    def _use_for_this_request(user):
        # What flask_login.login_user does, minus the session: the API stays stateless.
        from flask import _request_ctx_stack

        _request_ctx_stack.top.user = user

    def user_from_token(self, token: str):
        identity = self.verifier.verify(token)
        g.runtime_token_exp = identity.expires
        wanted = [self.find_role(name) for name in identity.roles]
        if not all(wanted):
            raise InvalidToken("a role of the token does not exist here")
        session = self.get_session
        try:
            user = self._sync_user(identity, wanted)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return user

    def _check_order(self, identity):
        """Refuse a token older than the newest one used for its subject (uncommitted: the
        watermark is committed with the roles it allows)."""
        order = watermark.admit(self.get_session, identity.subject, identity.issued_at,
                                _fingerprint(identity.roles))
        if order == watermark.OLDER:
            raise InvalidToken("a newer token of this user was already used: sign in again "
                               "through the platform")
        if order == watermark.CONFLICT:
            # Two tokens of the same iat disagree: neither is used, and the user keeps no
            # built-in role (ending its sessions) until the platform issues a newer token.
            user = self.find_user(username=identity.subject)
            if user is not None and _builtin_names(user):
                user.roles = [r for r in user.roles if r.name not in BUILTIN_ROLES]
                self.get_session.merge(user)
            self.get_session.commit()
            log.warning("two tokens of %s issued at %s carry different roles: both refused",
                        identity.subject, identity.issued_at)
            raise InvalidToken("another token of this user, issued at the same time, carries "
                               "other roles: sign in again through the platform")

    def _sync_user(self, identity, wanted):
        """The token's user, created or updated from its claims, once its order is checked."""
        self._check_order(identity)
        first, last = identity.first_and_last_name
        user = self.find_user(username=identity.subject)
        if user is not None and user.username != identity.subject:
            raise PermissionError("another user has this name in a different case")
        if user is None:
            email = identity.email or _placeholder_email(identity.subject)
            user = self.add_user(identity.subject, first, last or "-", email, wanted,
                                 password=secrets.token_urlsafe(32))
            if not user:
                raise PermissionError("the platform's user could not be created here")
            log.info("created user %s with roles %s", identity.subject, identity.roles)
            return user
        if not user.active:
            raise PermissionError("this user is deactivated")
        custom = [r for r in user.roles if r.name not in BUILTIN_ROLES]
        roles_changed = _builtin_names(user) != sorted(identity.roles)
        profile = {"first_name": first, "last_name": last or "-"}
        if identity.email:
            profile["email"] = identity.email
        profile_changed = any(getattr(user, k) != v for k, v in profile.items())
        if roles_changed or profile_changed:
            for key, value in profile.items():
                setattr(user, key, value)
            user.roles = custom + wanted
            if self.update_user(user) is False:  # (FAB rolled back: the old roles stay)
                raise PermissionError("the platform's user could not be updated here")
            if roles_changed:
                log.info("roles of %s are now %s", identity.subject, identity.roles)
        return user


def _placeholder_email(subject: str) -> str:
    """A unique address for a user whose token has none (the column holds 64 characters)."""
    email = f"{subject}@users.runtime.invalid"
    if len(email) > 64:
        email = hashlib.sha256(subject.encode()).hexdigest()[:40] + "@users.runtime.invalid"
    return email
