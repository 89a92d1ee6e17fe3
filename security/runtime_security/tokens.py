"""Platform-issued identities: verify a signed bearer token (JWT) and read its claims.

Only RS256 and ES256 are accepted, against a PEM public key file or a JWKS file; both files are
read again when they change, so the platform can rotate keys without a restart. A header with
``crit`` is refused (RFC 7515 4.1.11: this verifier understands no extension). Required claims:
sub, roles (a list of the built-in role names), iat, exp, aud, iss; nbf is checked when present;
email and name are optional. iat, exp and nbf must be NumericDates (JSON numbers, not strings,
finite, not negative); iat may not be later than now + leeway, exp not earlier than
now - leeway, nbf not later than now + leeway, and exp - iat must lie in (0, max lifetime].
Identities are validated and normalised (see ``_identity``): a sub must already be in NFKC
form, without white space or control characters, at most 64 characters; name and email are
NFKC-normalised and trimmed, and refused with control characters or over the user table's
limits. Subjects listed in the revoked file (one per line; the platform writes it when it
deletes a user) are refused. Any malformed token (whatever the parser raises, e.g.
RecursionError on a deeply nested header) is an InvalidToken. Configuration (environment):

  RUNTIME_AUTH_PUBLIC_KEY_FILE / RUNTIME_AUTH_JWKS_FILE   where the verification keys are
  RUNTIME_AUTH_AUDIENCE, RUNTIME_AUTH_ISSUER              expected aud and iss (required)
  RUNTIME_AUTH_LEEWAY                                     seconds of clock skew (default 30)
  RUNTIME_AUTH_MAX_TOKEN_BYTES                            longer tokens are refused (4096)
  RUNTIME_AUTH_MAX_LIFETIME                               longest exp - iat, seconds (86400)
  RUNTIME_AUTH_REVOKED_FILE                               subjects the platform deleted
"""

import json
import math
import os
import threading
import time
import unicodedata
from dataclasses import dataclass

import jwt
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import RSAAlgorithm

ALGORITHMS = ("RS256", "ES256")
BUILTIN_ROLES = ("Admin", "Op", "User", "Viewer")
# the user table's columns (Flask-AppBuilder: username, first_name, last_name, email are 64)
MAX_SUBJECT, MAX_NAME_PART, MAX_EMAIL = 64, 64, 64


class InvalidToken(Exception):
    """The token is refused; the message says why (safe to show: no token content)."""


@dataclass(frozen=True)
class Identity:
    subject: str
    email: str
    name: str
    roles: tuple
    expires: int  # the token's exp (a session made from it ends then)
    issued_at: float  # the token's iat (tokens of a subject are ordered by it)

    @property
    def first_and_last_name(self):
        """(first, last): the name split at its first space; the subject when it has none."""
        first, _, last = (self.name or self.subject).partition(" ")
        return first, last


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


def _header(token: str) -> dict:
    """The token's JOSE header, refused when it names a critical extension (none is
    understood here)."""
    try:
        header = jwt.get_unverified_header(token)
    except Exception:  # noqa: BLE001 - DecodeError, but also RecursionError, MemoryError...
        raise InvalidToken("malformed token") from None
    if not isinstance(header, dict):
        raise InvalidToken("malformed token")
    if "crit" in header:
        raise InvalidToken("header parameter crit: no critical extension is understood here")
    return header


def _numeric_date(claims, name, required=True):
    """A NumericDate claim (RFC 7519 2): a JSON number, finite and not negative."""
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidToken(f"claim {name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value < 0:
        raise InvalidToken(f"claim {name} must be a NumericDate (a number of seconds)")
    return value


def _refused_character(text: str) -> bool:
    """Control, format, surrogate, private-use or unassigned characters, or line breaks."""
    return any(unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp")
               for c in text)


def _text_claim(claims, name) -> str:
    value = claims.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidToken(f"claim {name} must be a string")
    if _refused_character(value):
        raise InvalidToken(f"claim {name} contains control characters")
    return " ".join(unicodedata.normalize("NFKC", value).split())


def _identity(claims, roles, expires, issued) -> Identity:
    """The validated identity: sub as given (refused unless already normalised), name and
    email normalised (NFKC, trimmed, inner white space collapsed)."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT \
            or _refused_character(subject) or any(c.isspace() for c in subject) \
            or unicodedata.normalize("NFKC", subject) != subject:
        raise InvalidToken(f"claim sub must be 1-{MAX_SUBJECT} characters in NFKC form, "
                           f"without white space or control characters")
    name, email = _text_claim(claims, "name"), _text_claim(claims, "email")
    first, _, last = name.partition(" ")
    if len(first) > MAX_NAME_PART or len(last) > MAX_NAME_PART:
        raise InvalidToken(f"claim name: first name and rest must be at most "
                           f"{MAX_NAME_PART} characters each")
    if email:
        local, at, domain = email.partition("@")
        if not at or not local or not domain or "@" in domain or " " in email \
                or len(email) > MAX_EMAIL:
            raise InvalidToken(f"claim email must be one address of at most {MAX_EMAIL} "
                               f"characters")
    return Identity(subject, email, name, roles, expires, issued)


class Verifier:
    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        self.audience = env.get("RUNTIME_AUTH_AUDIENCE", "")
        self.issuer = env.get("RUNTIME_AUTH_ISSUER", "")
        self.leeway = int(env.get("RUNTIME_AUTH_LEEWAY", "30"))
        self.max_bytes = int(env.get("RUNTIME_AUTH_MAX_TOKEN_BYTES", "4096"))
        self.max_lifetime = int(env.get("RUNTIME_AUTH_MAX_LIFETIME", "86400"))
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
        if not isinstance(token, str) or len(token) > self.max_bytes:
            raise InvalidToken("token too large")
        try:
            return self._verify(token)
        except InvalidToken:
            raise
        except Exception:  # noqa: BLE001 - whatever a malformed token makes a parser raise
            raise InvalidToken("malformed token") from None

    def _verify(self, token: str) -> Identity:
        header = _header(token)
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
        try:  # (the times are checked below, with their types)
            claims = jwt.decode(token, key, algorithms=[alg], audience=self.audience,
                                issuer=self.issuer,
                                options={"verify_exp": False, "verify_nbf": False,
                                         "verify_iat": False, "require_exp": False,
                                         "require_iat": False, "require_nbf": False,
                                         "verify_aud": True, "verify_iss": True})
        except jwt.InvalidTokenError as e:
            raise InvalidToken(f"invalid token: {type(e).__name__}") from None
        except Exception:  # noqa: BLE001 - e.g. a key of the wrong type for the algorithm
            raise InvalidToken("invalid token: cannot verify") from None
        if not isinstance(claims, dict):
            raise InvalidToken("malformed token")
        issued, expires = self._check_times(claims)
        roles = claims.get("roles")
        if not isinstance(roles, list) or not roles or \
                not all(isinstance(r, str) for r in roles):
            raise InvalidToken("claim roles must be a non-empty list of role names")
        unknown = sorted(set(roles) - set(BUILTIN_ROLES))
        if unknown:
            raise InvalidToken(f"unknown role names: {', '.join(unknown)}")
        identity = _identity(claims, tuple(sorted(set(roles))), expires, issued)
        if self.revoked(identity.subject):
            raise InvalidToken("this user was deleted by the platform")
        return identity

    def _check_times(self, claims):
        """(iat, exp) once iat, exp and nbf are NumericDates and now lies in the token's life."""
        now = time.time()
        issued, expires = _numeric_date(claims, "iat"), _numeric_date(claims, "exp")
        not_before = _numeric_date(claims, "nbf", required=False)
        if issued > now + self.leeway:
            raise InvalidToken("claim iat is in the future")
        if expires < now - self.leeway:
            raise InvalidToken("invalid token: ExpiredSignatureError")
        if not_before is not None and not_before > now + self.leeway:
            raise InvalidToken("invalid token: ImmatureSignatureError")
        if not 0 < expires - issued <= self.max_lifetime:
            raise InvalidToken(f"token lifetime (exp - iat) must be more than 0 and at most "
                               f"{self.max_lifetime} s")
        return issued, int(expires)

    def revoked(self, subject: str) -> bool:
        return self._revoked is not None and subject in self._revoked.get()
