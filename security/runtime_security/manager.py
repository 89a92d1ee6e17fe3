"""The Runtime's security manager: the platform owns identities and role assignments.

Every request may carry ``Authorization: Bearer <token>`` (see ``tokens``): the user is created
or updated from the claims, its built-in roles (Admin, Op, User, Viewer) are set from the token
(custom roles stay), and the request runs as that user without creating a session. A browser
session is made by POSTing a token to ``/runtime/login`` (form field ``token``, or the header);
the session remembers the roles, subject and expiry of its token and ends as soon as the token
expires, the platform deletes the user, or the user's roles change.
Nobody, not even Admin, can create, edit or delete users or roles through the UI or the REST
API. The password form is off unless RUNTIME_AUTH_PASSWORD_LOGIN=true.
"""

import hashlib
import json
import logging
import os
import re
import secrets
import time
from urllib.parse import urlparse

from flask import Response, g, redirect, request, session
from flask_login import current_user, login_user, logout_user

from airflow.www.security import AirflowSecurityManager
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


def _refuse(status: int, reason: str) -> Response:
    body = {"title": "Unauthorized" if status == 401 else "Forbidden", "status": status,
            "detail": reason}
    resp = Response(json.dumps(body), status, mimetype="application/problem+json")
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="runtime"'
    return resp


class RuntimeSecurityManager(AirflowSecurityManager):
    def __init__(self, appbuilder):
        super().__init__(appbuilder)
        self.verifier = Verifier()
        self.password_login = os.environ.get("RUNTIME_AUTH_PASSWORD_LOGIN", "").lower() in (
            "1", "true", "yes")

    # FAB registers this with app.before_request (it sets g.user in the base class).
    def before_request(self):
        path = request.path
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
        origin = request.headers.get("Origin")
        if origin and urlparse(origin).netloc != request.host:
            return _refuse(403, "sign-in from another site is refused")
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
            target = "/home"
        return redirect(target)

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
        first, _, last = (identity.name or identity.subject).partition(" ")
        first, last = first[:64], last[:64]
        user = self.find_user(username=identity.subject)
        if user is not None and user.username != identity.subject:
            raise PermissionError("another user has this name in a different case")
        if user is None:
            email = identity.email or f"{identity.subject}@users.runtime.invalid"
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
