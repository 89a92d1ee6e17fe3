"""Platform-issued identities: verify a signed bearer token (JWT) and read its claims.

Only RS256 and ES256 are accepted, against a PEM public key file or a JWKS file; both files are
read again when they change, so the platform can rotate keys without a restart. Required
claims: sub, roles (a list of the built-in role names), exp, aud, iss; nbf is checked when
present; email and name are optional. Subjects listed in the revoked file (one per line; the
platform writes it when it deletes a user) are refused. Configuration (environment):

  RUNTIME_AUTH_PUBLIC_KEY_FILE / RUNTIME_AUTH_JWKS_FILE   where the verification keys are
  RUNTIME_AUTH_AUDIENCE, RUNTIME_AUTH_ISSUER              expected aud and iss (required)
  RUNTIME_AUTH_LEEWAY                                     seconds of clock skew (default 30)
  RUNTIME_AUTH_MAX_TOKEN_BYTES                            longer tokens are refused (4096)
  RUNTIME_AUTH_REVOKED_FILE                               subjects the platform deleted
"""

import json
import os
import threading
from dataclasses import dataclass

import jwt
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import RSAAlgorithm

ALGORITHMS = ("RS256", "ES256")
BUILTIN_ROLES = ("Admin", "Op", "User", "Viewer")


class InvalidToken(Exception):
    """The token is refused; the message says why (safe to show: no token content)."""


@dataclass(frozen=True)
class Identity:
    subject: str
    email: str
    name: str
    roles: tuple
    expires: int  # the token's exp (a session made from it ends then)


class _WatchedFile:
    """A file parsed again whenever its size, mtime or inode changes."""

    def __init__(self, path, parse):
        self.path, self.parse = path, parse
        self._stamp, self._value = None, None
        self._lock = threading.Lock()

    def get(self):
        try:
            st = os.stat(self.path)
        except OSError:
            raise InvalidToken(f"verification file {self.path} is missing") from None
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                with open(self.path, encoding="utf-8") as f:
                    self._value = self.parse(f.read())
                self._stamp = stamp
            return self._value


def _parse_pem(text):
    return {None: text.encode()}


_CURVES = {"P-256": ec.SECP256R1}


def _b64_int(text):
    import base64

    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def _ec_from_jwk(jwk):
    # (PyJWT 1.7 reads RSA JWKs only)
    curve = _CURVES[jwk["crv"]]()
    numbers = ec.EllipticCurvePublicNumbers(_b64_int(jwk["x"]), _b64_int(jwk["y"]), curve)
    return numbers.public_key(default_backend())


def _parse_jwks(text):
    keys = {}
    for jwk in json.loads(text).get("keys", []):
        if jwk.get("kty") == "RSA":
            keys[jwk.get("kid")] = RSAAlgorithm.from_jwk(json.dumps(jwk))
        elif jwk.get("kty") == "EC" and jwk.get("crv") in _CURVES:
            keys[jwk.get("kid")] = _ec_from_jwk(jwk)
    return keys


def _parse_lines(text):
    return {line.strip() for line in text.splitlines() if line.strip()
            and not line.startswith("#")}


class Verifier:
    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        self.audience = env.get("RUNTIME_AUTH_AUDIENCE", "")
        self.issuer = env.get("RUNTIME_AUTH_ISSUER", "")
        self.leeway = int(env.get("RUNTIME_AUTH_LEEWAY", "30"))
        self.max_bytes = int(env.get("RUNTIME_AUTH_MAX_TOKEN_BYTES", "4096"))
        jwks, pem = env.get("RUNTIME_AUTH_JWKS_FILE"), env.get("RUNTIME_AUTH_PUBLIC_KEY_FILE")
        self._keys = _WatchedFile(jwks, _parse_jwks) if jwks else \
            _WatchedFile(pem, _parse_pem) if pem else None
        revoked = env.get("RUNTIME_AUTH_REVOKED_FILE")
        self._revoked = _WatchedFile(revoked, _parse_lines) if revoked else None

    @property
    def configured(self) -> bool:
        return self._keys is not None and bool(self.audience) and bool(self.issuer)

    def verify(self, token: str) -> Identity:
        if not self.configured:
            raise InvalidToken("token sign-in is not configured on this deployment")
        if len(token) > self.max_bytes:
            raise InvalidToken("token too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"algorithm {alg!r} is not accepted")
        keys = self._keys.get()
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed token")
        if kid in keys:
            key = keys[kid]
        elif len(keys) == 1:
            key = next(iter(keys.values()))
        else:
            raise InvalidToken("no key for this token")
        try:
            claims = jwt.decode(token, key, algorithms=[alg], audience=self.audience,
                                issuer=self.issuer, leeway=self.leeway,
                                options={"require_exp": True, "require_iat": False,
                                         "require_nbf": False, "verify_aud": True,
                                         "verify_iss": True})
        except jwt.InvalidTokenError as e:
            raise InvalidToken(f"invalid token: {type(e).__name__}") from None
        except Exception:  # noqa: BLE001 - e.g. a key of the wrong type for the algorithm
            raise InvalidToken("invalid token: cannot verify") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > 64:
            raise InvalidToken("claim sub is missing or invalid")
        roles = claims.get("roles")
        if not isinstance(roles, list) or not roles or \
                not all(isinstance(r, str) for r in roles):
            raise InvalidToken("claim roles must be a non-empty list of role names")
        unknown = sorted(set(roles) - set(BUILTIN_ROLES))
        if unknown:
            raise InvalidToken(f"unknown role names: {', '.join(unknown)}")
        if self.revoked(subject):
            raise InvalidToken("this user was deleted by the platform")
        email, name = claims.get("email") or "", claims.get("name") or ""
        if not isinstance(email, str) or not isinstance(name, str):
            raise InvalidToken("claims email and name must be strings")
        return Identity(subject, email[:64], name, tuple(sorted(set(roles))), int(claims["exp"]))

    def revoked(self, subject: str) -> bool:
        return self._revoked is not None and subject in self._revoked.get()
