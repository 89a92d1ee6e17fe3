"""Auth backend of Airflow's stable REST API (``[api] auth_backend(s)``).

The security manager has already authenticated the request from its bearer token (or from a
browser session made with one) before the API view runs; this backend only lets an
authenticated request through and answers 401 to the rest."""

from functools import wraps

from flask import Response
from flask_login import current_user

CLIENT_AUTH = None


def init_app(_app):
    """Nothing to set up: the security manager does the work."""


def requires_authentication(function):
    @wraps(function)
    def decorated(*args, **kwargs):
        if current_user.is_authenticated:
            return function(*args, **kwargs)
        return Response("Unauthorized", 401, {"WWW-Authenticate": 'Bearer realm="runtime"'})

    return decorated
