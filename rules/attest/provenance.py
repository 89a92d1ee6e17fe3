"""Build provenance of an image: an in-toto Statement v1 with a SLSA v1.0 provenance predicate,
signed as a DSSE envelope when the user gives a key.

What it says (https://slsa.dev/spec/v1.0/provenance):

* ``subject``: the image manifest (repository:tag, sha256 digest);
* ``buildDefinition.buildType``: ``BUILD_TYPE`` (`invoke image` of this repository: what the
  parameters mean is in docs/supply-chain.md);
* ``externalParameters``: the line, the flavor, the git commit and its tree;
* ``internalParameters``: SOURCE_DATE_EPOCH, and whether the checkout had uncommitted changes
  (then the commit does not describe the build, and `invoke verify`'s rebuild will say so);
* ``resolvedDependencies``: every lock (the Python lock of the line, the Debian lock) and every
  input of the build with its digest: each .deb and each chosen wheel or sdist with its URL,
  each Airflow patch, each Runtime module source file;
* ``runDetails.builder``: ``BUILDER_ID`` and its version: the engine's action format and layer
  recipe, and the sha256 of tools/requirements-dev.txt (which pins every tool of the build);
* ``runDetails.byproducts``: the image's SBOMs (SPDX and CycloneDX) by digest, so that the
  signature covers them too.

No clock and no random: the statement is the same bytes for the same commit (no
``startedOn``/``finishedOn``; ``invocationId`` is derived from the statement's content).

Signing: DSSE (https://github.com/secure-systems-lab/dsse) with securesystemslib's
``dsse.Envelope`` and ``CryptoSigner``, the in-toto project's own library (python-in-toto signs
with it). The key is a PEM private key (PKCS#8) the user supplies, ``--signing-key FILE`` or the
environment variable ``RUNTIME_SIGNING_KEY`` (a path, or the PEM itself); `invoke signing-key`
makes an ed25519 pair. ed25519 (RFC 8032) signatures are deterministic: the same statement and
key give the same envelope bytes, so two builds agree byte for byte (ECDSA and RSA-PSS keys are
accepted too, and then the envelope differs between builds while the statement does not).
Without a key the statement is written unsigned, as a bare in-toto statement, and every tool
says so.

The Statement itself is hand-written JSON (four fields): the in-toto-attestation Python binding
would bring protobuf for it; the format is checked by the tests against the spec's field names.
"""

import base64
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rules.common.errors import UserError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
DSSE_MEDIA = "application/vnd.dsse.envelope.v1+json"
BUILD_TYPE = "https://runtime.dev/buildtypes/invoke-image/v1"
BUILDER_ID = "https://runtime.dev/builders/invoke-image"
KEY_ENV = "RUNTIME_SIGNING_KEY"
RECIPE = 1


@dataclass(frozen=True)
class Source:
    commit: str
    tree: str
    dirty: bool


def git_source(root: Path) -> Source:
    """The commit, its tree, and whether tracked files differ from it."""
    def git(*args) -> str:
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    commit = git("rev-parse", "HEAD") or "unknown"
    tree = git("rev-parse", "HEAD^{tree}") or "unknown"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return Source(commit, tree, dirty)


def builder_version(root: Path) -> dict[str, str]:
    from rules.graph.action import FORMAT
    from rules.image.inputs import LAYER_RECIPE

    tools = Path(root) / "tools" / "requirements-dev.txt"
    return {"action format": str(FORMAT), "layer recipe": LAYER_RECIPE,
            "provenance recipe": str(RECIPE),
            "tools/requirements-dev.txt": "sha256:" + hashlib.sha256(tools.read_bytes())
            .hexdigest() if tools.exists() else "missing"}


def dependency(name: str, sha256: str, uri: str | None = None) -> dict:
    d = {"name": name, "digest": {"sha256": sha256}}
    if uri:
        d["uri"] = uri
    return d


def resolved_dependencies(project, line, choices, arch: str | None = None) -> list[dict]:
    """Every lock and every input of the line's build, with its digest (``choices``: the
    lock's rules.fetch.pypi_files.Chosen list, for the image's platform). ``arch``: another
    architecture than the main lock's: its Debian lock and packages are inputs too (the main
    lock's root byte-compiles its standard library, rules.debian.arch_root), and so is the
    cross toolchain's lock and packages."""
    from rules.image import layers
    from rules.lock import debian_lock

    root = Path(project.root)
    deps = []
    lock = project.locks[line.airflow].lock
    debian_locks = [project.debian.lock]
    packages = list(debian_lock.load(project)["packages"])
    if arch:  # and the cross toolchain, which compiles its sdists (rules.python.cross_build)
        from rules.lock import cross_lock

        debian_locks += [debian_lock.arch_lock_path(project.debian, arch),
                         cross_lock.lock_path(project.debian, arch)]
        packages += debian_lock.packages_for(project, arch)
        packages += cross_lock.load(project, arch)["packages"]
    for path in (lock, *debian_locks):
        deps.append(dependency(path, hashlib.sha256((root / path).read_bytes()).hexdigest(),
                               f"git+file:{path}"))
    listed = set()
    for p in sorted(packages, key=lambda p: (p["name"], p["arch"], p["version"])):
        if p["sha256"] in listed:  # (a toolchain package the main lock holds too)
            continue
        listed.add(p["sha256"])
        deps.append(dependency(f"deb {p['name']}_{p['version']}_{p['arch']}", p["sha256"],
                               p["url"]))
    for c in sorted(choices, key=lambda c: c.filename):
        deps.append(dependency(f"pypi {c.filename}", c.sha256, c.url))
    patchset = project.patches.get(line.airflow)
    for path in (patchset.patches if patchset else ()):
        deps.append(dependency(path, hashlib.sha256((root / path).read_bytes()).hexdigest(),
                               f"git+file:{path}"))
    seen = set()
    for label in line.modules:
        for _, f in layers.module_files(project, project.modules[label]):
            rel = f.relative_to(root).as_posix()
            if rel not in seen:
                seen.add(rel)
                deps.append(dependency(rel, hashlib.sha256(f.read_bytes()).hexdigest(),
                                       f"git+file:{rel}"))
    for path in ("BUILD", "WORKSPACE"):
        if (root / path).exists():
            deps.append(dependency(path, hashlib.sha256((root / path).read_bytes())
                                   .hexdigest(), f"git+file:{path}"))
    return deps


def statement(subject_name: str, image_digest: str, line, flavor: str, source: Source,
              epoch: int, dependencies: list[dict], builder: dict, byproducts: list[dict],
              platform: str | None = None) -> dict:
    """The in-toto Statement v1 (a dict) of one image (``platform``: "linux/arm64" for an
    image of another platform than the build's own; absent for that one)."""
    external = {"line": line.name, "flavor": flavor,
                "source": {"commit": source.commit, "tree": source.tree}}
    if platform:
        external["platform"] = platform
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": {"SOURCE_DATE_EPOCH": epoch,
                                   "uncommittedChanges": source.dirty,
                                   "runtimeVersion": line.version},
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID, "version": builder},
            "byproducts": byproducts,
        },
    }
    body = {"_type": STATEMENT_TYPE,
            "subject": [{"name": subject_name,
                         "digest": {"sha256": image_digest.removeprefix("sha256:")}}],
            "predicateType": PREDICATE_TYPE, "predicate": predicate}
    predicate["runDetails"]["metadata"] = {
        "invocationId": "sha256:" + hashlib.sha256(canonical(body)).hexdigest()}
    return body


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# --- keys and signatures -------------------------------------------------------------------

@dataclass
class SigningKey:
    signer: object  # securesystemslib.signer.CryptoSigner
    public: object  # securesystemslib.signer.SSlibKey
    origin: str  # where it came from, for messages

    @property
    def keyid(self) -> str:
        return self.public.keyid


def load_signing_key(path: str | None) -> SigningKey | None:
    """The key of ``--signing-key FILE``, else of $RUNTIME_SIGNING_KEY (a path, or the PEM
    itself), else None (unsigned provenance)."""
    origin = f"--signing-key {path}" if path else None
    text = None
    if path:
        try:
            text = Path(path).read_bytes()
        except OSError as e:
            raise UserError(f"--signing-key {path}: {e.strerror}") from None
    elif os.environ.get(KEY_ENV):
        value = os.environ[KEY_ENV]
        if value.lstrip().startswith("-----BEGIN"):
            text, origin = value.encode(), f"${KEY_ENV} (PEM)"
        else:
            origin = f"${KEY_ENV}={value}"
            try:
                text = Path(value).read_bytes()
            except OSError as e:
                raise UserError(f"{origin}: {e.strerror}") from None
    if text is None:
        return None
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner, SSlibKey

    try:
        private = load_pem_private_key(text, password=None)
    except (ValueError, TypeError) as e:
        raise UserError(f"{origin}: not an unencrypted PEM private key ({e})") from None
    try:
        public = SSlibKey.from_crypto(private.public_key())
        return SigningKey(CryptoSigner(private, public), public, origin)
    except Exception as e:  # an algorithm securesystemslib does not sign with
        raise UserError(f"{origin}: cannot sign with this key ({e})") from None


def generate_key(folder: Path) -> tuple[Path, Path, str]:
    """A new ed25519 pair in ``folder``: (private PEM, public PEM, keyid)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from securesystemslib.signer import SSlibKey

    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / "runtime-signing.key", folder / "runtime-signing.pub"
    for p in (private_path, public_path):
        if p.exists():
            raise UserError(f"{p} exists: not replaced")
    key = ed25519.Ed25519PrivateKey.generate()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    public_path.write_bytes(public_pem(key.public_key()))
    return private_path, public_path, SSlibKey.from_crypto(key.public_key()).keyid


def public_pem(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: Path):
    """A verifier's key: a PEM public key file, as securesystemslib's SSlibKey."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    from securesystemslib.signer import SSlibKey

    try:
        return SSlibKey.from_crypto(load_pem_public_key(Path(path).read_bytes()))
    except OSError as e:
        raise UserError(f"--public-key {path}: {e.strerror}") from None
    except (ValueError, TypeError) as e:
        raise UserError(f"--public-key {path}: not a PEM public key ({e})") from None


def sign(body: dict, key: SigningKey) -> bytes:
    """The DSSE envelope (JSON bytes) of a statement."""
    from securesystemslib.dsse import Envelope

    envelope = Envelope(canonical(body), PAYLOAD_TYPE, {})
    envelope.sign(key.signer)
    return canonical(envelope.to_dict()) + b"\n"


class SignatureError(UserError):
    exit_code = 1


def open_envelope(data: bytes, keys: list | None) -> dict:
    """The statement of a DSSE envelope, its signature checked against ``keys`` (a list of
    SSlibKey; None: not checked). Raises SignatureError naming what is wrong."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError

    try:
        envelope = Envelope.from_dict(json.loads(data))
    except Exception as e:
        raise SignatureError(f"the provenance is not a DSSE envelope ({e})") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"the envelope's payload type is {envelope.payload_type!r}")
    if keys is not None:
        if not envelope.signatures:
            raise SignatureError("the envelope has no signature")
        try:
            envelope.verify(keys, 1)
        except VerificationError as e:
            ids = ", ".join(sorted(envelope.signatures))
            raise SignatureError(f"no valid signature by the given key ({e}; signed by "
                                 f"keyid {ids})") from None
    try:
        return json.loads(envelope.payload)
    except ValueError as e:
        raise SignatureError(f"the signed payload is not JSON ({e})") from None


def keyid_of(data: bytes) -> list[str]:
    try:
        return [s.get("keyid", "") for s in json.loads(data).get("signatures", [])]
    except (ValueError, AttributeError):
        return []


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
