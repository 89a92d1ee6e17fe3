"""A real OCI registry for the tests: Debian's `docker-registry` (distribution 2.8) on
127.0.0.1, with TLS (a CA and a server certificate made here with `cryptography`) and htpasswd
basic auth (bcrypt, `htpasswd -B` from apache2-utils). Its storage, config, keys and the CA live
in one temp folder that is removed afterwards, with the process.

The registry can be stopped and started again on the same port and storage (the "registry
killed mid-push" tests), and is shared by the push tests and, later, the remote-cache ones.
"""

import contextlib
import datetime
import ipaddress
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.services import free_port

USER = "runtime"
PASSWORD = "s3cret-push"  # a test secret of a throwaway registry


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key): a CA and a server certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "runtime test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: {no_access_log}
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  tls:
    certificate: {cert}
    key: {key}
auth:
  htpasswd:
    realm: runtime-test
    path: {htpasswd}
"""


@dataclass
class Registry:
    """A running registry: `host` is 127.0.0.1:PORT, `ca` the CA file that signed its cert."""

    folder: Path
    port: int
    ca: Path
    config: Path
    proc: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self):
        self.log = self.folder / "registry.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.folder / "storage"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["docker-registry", "serve", str(self.config)],
                                         stdout=log, stderr=log, start_new_session=True)
        context = ssl.create_default_context(cafile=str(self.ca))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}: "
                                   f"{self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"https://{self.host}/v2/", context=context, timeout=2)
            except urllib.error.HTTPError as e:
                if e.code == 401:  # up, and asking for the credentials
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.host} within 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (SIGKILL: as a crash would); storage stays for a restart."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def uploads(self) -> list[str]:
        """The digests of the blob uploads completed so far (access log: each PUT that closed
        an upload with 201), in order; whoever the client was."""
        import urllib.parse

        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            match = re.search(r'"PUT (/v2/\S+/blobs/uploads/\S+) HTTP/[\d.]+" 201 ', line)
            if match:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(match[1]).query)
                found += query.get("digest", [])
        return found

    def docker_config(self, folder: Path, password: str = PASSWORD) -> Path:
        """A Docker config folder (for DOCKER_CONFIG) as `docker login` writes it."""
        import base64
        import json

        folder.mkdir(parents=True, exist_ok=True)
        auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
        (folder / "config.json").write_text(json.dumps({"auths": {self.host: {"auth": auth}}}))
        return folder


@contextlib.contextmanager
def registry(user: str = USER, password: str = PASSWORD, access_log: bool = False):
    """A fresh registry (empty storage) for the duration; everything removed afterwards.
    With `access_log`, registry.log gets a line per request (see `uploads`)."""
    if not shutil.which("docker-registry") or not shutil.which("htpasswd"):
        raise RuntimeError("apt-get install docker-registry apache2-utils")
    folder = Path(tempfile.mkdtemp(prefix="runtime-registry-"))
    reg = None
    try:
        ca, cert, key = _certificates(folder)
        htpasswd = folder / "htpasswd"
        proc = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True,
                              text=True, check=True)
        htpasswd.write_text(proc.stdout)
        port = free_port()
        config = folder / "config.yml"
        config.write_text(CONFIG.format(storage=folder / "storage", port=port, cert=cert,
                                        key=key, htpasswd=htpasswd,
                                        no_access_log=str(not access_log).lower()))
        reg = Registry(folder, port, ca, config)
        reg.start()
        yield reg
    finally:
        if reg:
            reg.stop()
        shutil.rmtree(folder, ignore_errors=True)
