"""`invoke verify IMAGE` (check an image against its SBOMs and signed provenance, and rebuild
it from the commit the provenance names) and `invoke signing-key` (make an ed25519 key pair
for `invoke image --signing-key`).

The engine is rules.attest.verify; this file reads the options, prints a verdict per check and
exits 1 when any check failed.
"""

import sys
from pathlib import Path

from invoke import task

from rules.common.cli import user_errors
from rules.common.errors import UserError


@task(help={
    "image": "an OCI layout folder (invoke image --out), or HOST[:PORT]/REPO@sha256:<hex>",
    "public_key": "PEM public key the provenance must be signed with (invoke signing-key "
                  "writes one); else $RUNTIME_VERIFY_KEY",
    "allow_unsigned": "accept an unsigned provenance (or no --public-key): the signature "
                      "check is then not a failure",
    "rebuild": "rebuild the image from the commit the provenance names and compare digests "
               "(default: yes; --no-rebuild skips it)",
    "repo": "the git repository to clone the commit from (default: this checkout)",
    "tag": "check only this image of the layout (a tag or a digest)",
    "release": "require each image to be the recorded release of its version (a build of "
               "another commit carrying the version then fails instead of being skipped)",
    "username": "registry user (else the Docker config's credentials for the host)",
    "password_stdin": "read the password from standard input (with --username)",
    "ca_cert": "PEM file of the CA that signed the registry's certificate",
})
@user_errors
def verify(c, image, public_key=None, allow_unsigned=False, rebuild=True, repo=None, tag=None,
           username=None, password_stdin=False, ca_cert=None, release=False):
    """Verify an image: its blobs, its attestations, the provenance's signature, that the SBOMs
    list exactly what the image holds, and that the commit it names rebuilds it bit for bit."""
    import os
    import tempfile

    from rules.attest import provenance, verify as verifying
    from rules.common import report
    from rules.common.cache import default_cache
    from rules.load import project
    from tasks import _registry_options, _user_path

    key_path = public_key or os.environ.get("RUNTIME_VERIFY_KEY")
    keys = [provenance.load_public_key(_user_path(key_path))] if key_path else None
    root = project.find_root()
    repo = None if not rebuild else (repo or str(root))
    invoke = [sys.executable, "-m", "invoke"]
    cache = default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="runtime-verify-", dir=cache) as tmp:
        if "@sha256:" in image:
            from rules.oci.registry import Client, parse_target

            where, _, hexdigest = image.partition("@sha256:")
            options = _registry_options(username, password_stdin, ca_cert)
            client = Client(parse_target(where), **options).connect()
            with report.status(f"downloading {image}"):
                layout = verifying.download(client, f"sha256:{hexdigest}", Path(tmp) / "image")
        else:
            path = _user_path(image)
            if not path.is_dir():
                raise UserError(f"{image}: neither an OCI layout folder nor "
                                f"HOST/REPO@sha256:<hex>")
            layout = verifying.Layout(path)
        with report.status("verifying" + (" (rebuilding from the commit the provenance "
                                           "names)" if repo else "")):
            reports = verifying.verify_layout(layout, keys, allow_unsigned, repo, cache,
                                              invoke, tag, checkout=str(root),
                                              release=release)
    for r in reports:
        report.table(f"verify {r.image}", ("check", "verdict", "detail"),
                     [(ch.name, ch.verdict, ch.detail) for ch in r.checks])
    failed = [r.image for r in reports if r.failed]
    if failed:
        raise UserError(f"verification failed: {', '.join(failed)}", 1)
    print(f"verified: {', '.join(r.image for r in reports)}")


@task(help={"out": "folder to write runtime-signing.key (private, mode 600) and "
                   "runtime-signing.pub into (default: the current folder)"})
@user_errors
def signing_key(c, out="."):
    """Make an ed25519 key pair for signing provenance (`invoke image --signing-key FILE`, or
    RUNTIME_SIGNING_KEY=FILE) and verifying it (`invoke verify --public-key FILE`)."""
    from rules.attest import provenance
    from tasks import _user_path

    private, public, keyid = provenance.generate_key(_user_path(out))
    print(f"private key: {private} (keep it secret)\npublic key:  {public}\nkeyid:       "
          f"{keyid}")
