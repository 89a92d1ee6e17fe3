"""A client for one repository of an OCI distribution registry: HEAD/GET/upload blobs (with
cross-repo mount), PUT/GET manifests by digest or tag, byte for byte.

Built on oras-py (PyPI `oras`, the ORAS project's Python SDK): its auth backends (Basic, and the
Bearer token exchange of Docker Hub, GHCR, ECR...), its Docker-config credential lookup
(`auths`, `credHelpers`, `credsStore`) and its requests session. Five of its calls are not fit
for pushing images, each measured against docker-registry 2.8 with TLS and htpasswd (see
docs/push.md and tools/bench_push.py):

* `upload_blob`/`put_upload` first sends every request without credentials: with basic auth the
  registry answers 401 to the 94 MB layer PUT and closes the connection mid-body, which fails
  as `SSLEOFError` (stock oras-py cannot push the 4.2 image to such a registry at all). Here
  known credentials are sent up front (Basic) or after the first challenge (Bearer), and a
  request with a body is made only after a body-less one (the upload POST) has authenticated.
* `put_upload` reads the whole blob into memory (`fd.read()`); here the file is streamed with
  its Content-Length, in 1 MiB writes.
* `upload_manifest` takes a dict and sends `json=`: requests re-serializes it with other
  separators, so the registry stores a manifest whose digest is not the built one. Here the
  manifest's bytes are sent as built.
* `do_request` retries a refused connection 5 times, sleeping 3 + 5 + 11 + 29 + 83 s: a
  registry that died mid-push hangs the push for over two minutes. Here it fails at once with a
  one-line `RegistryError` (a `UserError`).
* `find_docker_config` ignores DOCKER_CONFIG; here it is respected (as docker does).

Cross-repo mount (`upload_blob(..., mount_from=REPO)`) is the distribution API's
`POST /blobs/uploads/?mount=DIGEST&from=REPO`: 201 means the registry linked the blob without
receiving it; 202 (not mountable) goes on as an ordinary upload in the session it opened.
"""

import json
import os
import re
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import oras.auth
import oras.provider
import requests
from requests.adapters import HTTPAdapter

from rules.common.errors import UserError

# the distribution reference grammar (distribution/reference/regexp.go), without tag or digest
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?"
_REFERENCE = re.compile(rf"^(?P<host>{_HOST})/(?P<repo>{_COMPONENT}(?:/{_COMPONENT})*)$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$")

MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.oci.image.index.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.docker.distribution.manifest.list.v2+json")
CHUNK = 1 << 20  # bytes per socket write of a blob body
TIMEOUT = (10, 600)  # connect, read (a registry verifies a large blob before it answers)


class RegistryError(UserError):
    """A registry refused, failed or stopped answering: one line naming it and the cause.
    ``status`` is the HTTP status when the registry answered (401, 403...), else None."""

    exit_code = 1

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status

    @property
    def denied(self) -> bool:
        """The registry refused these credentials (or this operation to them)."""
        return self.status in (401, 403)


@dataclass(frozen=True)
class Target:
    """Where to push: HOST[:PORT]/REPO (no tag, no digest: the tags come from the build)."""

    host: str
    repo: str

    def __str__(self) -> str:
        return f"{self.host}/{self.repo}"


def parse_target(text: str) -> Target:
    """Check `--to` before any work: HOST[:PORT]/REPO in the distribution grammar."""
    match = _REFERENCE.match(text or "")
    if not match:
        why = ""
        if text and "/" not in text:
            why = " (a registry host and a repository are both needed)"
        elif text and re.search(r"[:@][^/]*$", text.split("/", 1)[1]):
            why = " (no tag or digest: the build's tags are pushed)"
        elif text and text != text.lower():
            why = " (repository names are lower case)"
        raise UserError(f"--to {text!r} is not a registry repository: expected "
                        f"HOST[:PORT]/REPO, e.g. registry.example.com:5000/runtime{why}")
    host = match["host"]
    if "." not in host and ":" not in host and host != "localhost":
        raise UserError(f"--to {text!r}: {host!r} is not a registry host (one has a dot or a "
                        f"port, or is localhost: {host}.example.com/..., {host}:5000/...)")
    return Target(host, match["repo"])


def docker_config_path() -> Path:
    """The Docker CLI's config file: $DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    folder = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    return Path(folder) / "config.json"


class Client:
    """One registry repository. Thread-safe for concurrent blob uploads."""

    def __init__(self, target: Target, ca_cert: str | None = None,
                 username: str | None = None, password: str | None = None, workers: int = 4):
        self.target = target
        self.base = f"https://{target.host}/v2"
        self.verify = str(ca_cert) if ca_cert else True
        self._oras = oras.provider.Registry(hostname=target.host, tls_verify=self.verify,
                                            auth_backend="basic")
        self.session = self._oras.session
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(workers, 4))
        self.session.mount("https://", adapter)
        self._lock = threading.Lock()
        self._credentials = (username, password) if username is not None else None
        self.auth = None  # an oras auth backend once the registry asked for credentials

    # --- connection and auth -----------------------------------------------------------

    def _credentials_for(self) -> str | None:
        """base64 user:password: --username/--password-stdin, else the Docker config."""
        if self._credentials:
            return oras.auth.utils.get_basic_auth(*self._credentials)
        path = docker_config_path()
        if not path.exists():
            return None
        try:
            config = json.loads(path.read_text())
        except ValueError as e:
            raise UserError(f"{path}: not JSON ({e})") from None
        backend = oras.auth.get_auth_backend("basic", self.session, tls_verify=self.verify)
        backend._auth_config = {"auths": dict(config.get("auths") or {}),
                                "credsStore": config.get("credsStore"),
                                "credHelpers": dict(config.get("credHelpers") or {})}
        auths = backend._auth_config["auths"]
        for key, value in list(auths.items()):  # `docker login` may key by URL
            bare = re.sub(r"^https?://", "", key).split("/")[0]
            auths.setdefault(bare, value)
        for host in oras.utils.iter_localhosts(self.target.host):
            if backend._load_auth(host):  # oras-py's lookup: auths, credHelpers, credsStore
                return backend._basic_auth
        return None

    def connect(self) -> "Client":
        """Ping /v2/ and authenticate: a wrong password fails here, before any upload."""
        response = self._send("GET", f"{self.base}/")
        if response.status_code == 401:
            challenge = response.headers.get("Www-Authenticate", "")
            basic = self._credentials_for()
            if challenge.lower().startswith("bearer"):
                self.auth = oras.auth.get_auth_backend("token", self.session,
                                                       tls_verify=self.verify)
            else:
                self.auth = oras.auth.get_auth_backend("basic", self.session,
                                                       tls_verify=self.verify)
            if basic:
                self.auth._basic_auth = basic
            elif not challenge.lower().startswith("bearer"):
                raise RegistryError(f"{self.target.host}: 401 Unauthorized: no credentials "
                                    f"(docker login {self.target.host}, or --username and "
                                    f"--password-stdin)", 401)
            response = self._authenticated("GET", f"{self.base}/", response)
        self._check(response, "GET /v2/")
        return self

    def _send(self, method: str, url: str, body=None, headers=None) -> requests.Response:
        headers = dict(headers or {})
        if self.auth is not None:
            headers.update(self.auth.get_auth_header())
        try:
            return self.session.request(method, url, data=body() if body else None,
                                        headers=headers, verify=self.verify, timeout=TIMEOUT,
                                        allow_redirects=method in ("GET", "HEAD"))
        except requests.exceptions.SSLError as e:
            if "CERTIFICATE_VERIFY_FAILED" in str(e):
                raise RegistryError(f"{self.target.host}: its TLS certificate is not trusted "
                                    f"({_reason(e)}); give the registry's CA with "
                                    f"--ca-cert") from None
            raise RegistryError(f"{self.target.host}: the connection broke during {method} "
                                f"{_short(url)} ({_reason(e)})") from None
        except requests.exceptions.ConnectionError as e:
            raise RegistryError(f"{self.target.host}: {method} {_short(url)} failed: the "
                                f"registry does not answer ({_reason(e)})") from None
        except requests.exceptions.RequestException as e:
            raise RegistryError(f"{self.target.host}: {method} {_short(url)} failed: "
                                f"{_reason(e)}") from None

    def _authenticated(self, method, url, response, body=None, headers=None):
        """Answer a 401 challenge once (Bearer: fetch a token for its scope) and resend."""
        with self._lock:
            _, changed = self.auth.authenticate_request(response, {}, refresh=True)
        if not changed:
            raise RegistryError(f"{self.target.host}: 401 Unauthorized", 401)
        return self._send(method, url, body, headers)

    def _request(self, method: str, url: str, body=None, headers=None) -> requests.Response:
        """`body` is a callable returning a fresh body (a request may be sent twice)."""
        response = self._send(method, url, body, headers)
        if response.status_code == 401 and self.auth is not None:
            response = self._authenticated(method, url, response, body, headers)
        return response

    def _check(self, response: requests.Response, what: str, ok=(200, 201, 202, 204)):
        if response.status_code in ok:
            return response
        detail = _errors(response)
        if response.status_code == 401:
            raise RegistryError(f"{self.target.host}: 401 Unauthorized: wrong username or "
                                f"password{detail}", 401)
        raise RegistryError(f"{self.target.host}: {what} answered {response.status_code} "
                            f"{response.reason}{detail}", response.status_code)

    def _url(self, kind: str, ref: str, repo: str | None = None) -> str:
        return f"{self.base}/{repo or self.target.repo}/{kind}/{ref}"

    # --- blobs -------------------------------------------------------------------------

    def blob_exists(self, digest: str, repo: str | None = None) -> bool:
        response = self._request("HEAD", self._url("blobs", digest, repo))
        if response.status_code == 404:
            return False
        self._check(response, f"HEAD blob {digest[:19]}")
        return True

    def get_blob(self, digest: str, repo: str | None = None) -> bytes:
        """A small blob's bytes (an artifact, a config), checked against its digest."""
        import hashlib

        response = self._check(self._request("GET", self._url("blobs", digest, repo)),
                               f"GET blob {digest[:19]}")
        if "sha256:" + hashlib.sha256(response.content).hexdigest() != digest:
            raise RegistryError(f"{self.target.host}: blob {digest} has other bytes")
        return response.content

    def download_blob(self, digest: str, path: Path, repo: str | None = None) -> int:
        """Stream a blob into ``path`` (a new file), checking its sha256 on the way: bytes
        that do not match the digest raise a ``RegistryError`` and leave no file. Its size."""
        import hashlib

        url = self._url("blobs", digest, repo)
        headers = dict(self.auth.get_auth_header()) if self.auth is not None else {}
        try:
            response = self.session.get(url, headers=headers, verify=self.verify,
                                        timeout=TIMEOUT, stream=True)
            if response.status_code == 401 and self.auth is not None:
                response.close()
                response = self._authenticated("GET", url, response)
            self._check(response, f"GET blob {digest[:19]}", ok=(200,))
            h, size = hashlib.sha256(), 0
            with open(path, "xb") as f:
                for chunk in response.iter_content(CHUNK):
                    h.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
        except requests.exceptions.RequestException as e:
            Path(path).unlink(missing_ok=True)
            raise RegistryError(f"{self.target.host}: GET blob {digest[:19]} failed: "
                                f"{_reason(e)}") from None
        except BaseException:
            Path(path).unlink(missing_ok=True)
            raise
        if "sha256:" + h.hexdigest() != digest:
            Path(path).unlink(missing_ok=True)
            raise RegistryError(f"{self.target.host}: blob {digest} has other bytes "
                                f"(sha256:{h.hexdigest()[:12]}...)")
        return size

    def mount_blob(self, digest: str, mount_from: str) -> bool:
        """Link a blob of repository ``mount_from`` (same registry) into this one without
        sending it: True if the registry mounted it; False if it cannot (the upload session
        it opened instead is cancelled)."""
        url = (f"{self.base}/{self.target.repo}/blobs/uploads/?"
               + urllib.parse.urlencode({"mount": digest, "from": mount_from}))
        response = self._check(self._request("POST", url, headers={"Content-Length": "0"}),
                               f"POST blob mount {digest[:19]}", ok=(201, 202))
        if response.status_code == 201:
            return True
        location = response.headers.get("Location")
        if location:
            self._request("DELETE", urllib.parse.urljoin(f"https://{self.target.host}/",
                                                         location))
        return False

    def upload_blob(self, path: Path, digest: str, size: int,
                    mount_from: str | None = None) -> bool:
        """Upload one blob (monolithic POST then PUT, streamed from `path`). With
        `mount_from`, ask the registry to link it from that repository first. True if bytes
        were sent, False if it was mounted."""
        url = f"{self.base}/{self.target.repo}/blobs/uploads/"
        if mount_from:
            url += "?" + urllib.parse.urlencode({"mount": digest, "from": mount_from})
        response = self._check(self._request("POST", url, headers={"Content-Length": "0"}),
                               f"POST blob upload {digest[:19]}", ok=(201, 202))
        if response.status_code == 201:
            return False
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{self.target.host}: the upload of {digest} got no Location")
        location = urllib.parse.urljoin(f"https://{self.target.host}/", location)
        put = location + ("&" if "?" in location else "?") + urllib.parse.urlencode(
            {"digest": digest})

        def body():
            return _FileBody(path, size)

        self._check(self._request("PUT", put, body, {"Content-Type": "application/octet-stream",
                                                     "Content-Length": str(size)}),
                    f"PUT blob {digest[:19]}", ok=(201,))
        return True

    # --- manifests ---------------------------------------------------------------------

    def put_manifest(self, ref: str, data: bytes, media_type: str) -> str:
        """PUT a manifest's exact bytes under a digest or a tag; the registry's digest."""
        response = self._check(self._request("PUT", self._url("manifests", ref),
                                             lambda: data, {"Content-Type": media_type}),
                               f"PUT manifest {ref}", ok=(201,))
        return response.headers.get("Docker-Content-Digest", "")

    def get_manifest(self, ref: str, repo: str | None = None) -> tuple[bytes, str] | None:
        """(bytes, media type) of a manifest by tag or digest, or None if there is none."""
        response = self._request("GET", self._url("manifests", ref, repo),
                                 headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if response.status_code == 404:
            return None
        self._check(response, f"GET manifest {ref}")
        return response.content, response.headers.get("Content-Type", "")

    def get_manifest_checked(self, ref: str) -> tuple[bytes, str] | None:
        """(bytes, digest) of a manifest by tag, or None: the bytes are checked against the
        digest the registry names (Docker-Content-Digest), as a pull by tag does."""
        import hashlib

        response = self._request("GET", self._url("manifests", ref),
                                 headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if response.status_code == 404:
            return None
        self._check(response, f"GET manifest {ref}", ok=(200,))
        actual = "sha256:" + hashlib.sha256(response.content).hexdigest()
        named = response.headers.get("Docker-Content-Digest") or actual
        if named != actual:
            raise RegistryError(f"{self.target.host}: manifest {ref} is named {named} but its "
                                f"bytes are {actual}")
        return response.content, actual

    def has_referrers_api(self, digest: str) -> bool:
        """Whether the registry answers the OCI 1.1 referrers API (`GET /v2/<repo>/referrers/
        <digest>` with an image index); docker-registry 2.8 answers 404."""
        response = self._request("GET", self._url("referrers", digest),
                                 headers={"Accept": MANIFEST_TYPES[1]})
        if response.status_code != 200:
            return False
        return "image.index" in response.headers.get("Content-Type", "")

    def referrers(self, digest: str) -> list[dict]:
        """The descriptors of the artifacts attached to ``digest``: from the referrers API,
        else from the tag schema's index (sha256-<hex>); [] when there are none."""
        response = self._request("GET", self._url("referrers", digest),
                                 headers={"Accept": MANIFEST_TYPES[1]})
        if response.status_code == 200 and "image.index" in response.headers.get(
                "Content-Type", ""):
            return list(json.loads(response.content).get("manifests") or [])
        algorithm, _, hexdigest = digest.partition(":")
        found = self.get_manifest(f"{algorithm}-{hexdigest}")
        if found is None:
            return []
        try:
            return list(json.loads(found[0]).get("manifests") or [])
        except ValueError:
            raise RegistryError(f"{self.target.host}: the referrers index of {digest} is not "
                                f"JSON") from None

    def manifest_digest(self, ref: str, repo: str | None = None) -> str | None:
        """The digest a tag points at now (HEAD), or None."""
        response = self._request("HEAD", self._url("manifests", ref, repo),
                                 headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if response.status_code == 404:
            return None
        self._check(response, f"HEAD manifest {ref}")
        return response.headers.get("Docker-Content-Digest")


class _FileBody:
    """A blob file as a request body: read in 1 MiB pieces, its length known up front."""

    def __init__(self, path: Path, size: int):
        self.path, self.size = path, size

    def __len__(self):
        return self.size

    def __iter__(self):
        with open(self.path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk


def _short(url: str) -> str:
    """/v2/REPO/blobs/uploads/UUID?_state=... -> /v2/REPO/blobs/uploads/UUID (no query)."""
    return urllib.parse.urlsplit(url).path


def _reason(error: Exception) -> str:
    """The innermost cause of a requests error, short (no pool or URL noise)."""
    text = str(error)
    for pattern in (r"\[Errno \d+\] ([^'\")]+)", r"certificate verify failed: ([^(]+)",
                    r"Read timed out", r"EOF occurred in violation of protocol",
                    r"RemoteDisconnected\('([^']+)'", r"Connection aborted"):
        match = re.search(pattern, text)
        if match:
            return match.group(match.lastindex or 0).strip().rstrip("'\")")
    return text[:200]


def _errors(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        messages = [f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict)]
    except ValueError:
        messages = []
    return f" ({'; '.join(messages)})" if messages else ""
