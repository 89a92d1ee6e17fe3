"""`invoke push`: build a Runtime line's images (a no-op when cached) and push them, with their
version and floating tags, to a registry repository; or push a layout given with --from.

The engine is rules.oci.push (order of blobs, manifests by digest, then tags) over
rules.oci.registry (oras-py based client). This file only reads the options, checks them
before any work, and prints what was sent.
"""

from pathlib import Path

from invoke import task

from rules.common.cli import user_errors
from rules.common.errors import UserError


@task(help={
    "runtime": "the Runtime line to build and push (e.g. 4.2)",
    "flavor": "onbuild, base or all (default); with --from the layout is pushed as it is",
    "to": "the registry repository: HOST[:PORT]/REPO (tags come from the build)",
    "from_": "push this OCI image layout (from `invoke image --out DIR`) instead of building",
    "out": "where the build writes its layout (default: out/runtime-<version>)",
    "username": "registry user (else the Docker config's credentials for the host)",
    "password_stdin": "read the password from standard input (with --username)",
    "ca_cert": "PEM file of the CA that signed the registry's certificate (else the "
               "system store)",
    "signing_key": "PEM private key to sign the provenance with when building (else "
                   "$RUNTIME_SIGNING_KEY; neither: unsigned)",
})
@user_errors
def push(c, to=None, runtime="4.2", flavor="all", from_=None, out=None, username=None,
         password_stdin=False, ca_cert=None, signing_key=None):
    """Push a Runtime line's images to an OCI registry: blobs first, then manifests by digest,
    then the tags (a tag never points at a half-pushed image)."""
    from rules.common import report
    from rules.oci import push as pushing
    from rules.oci.registry import Client, parse_target
    from tasks import _registry_options, _user_path

    if not to:
        raise UserError("--to HOST[:PORT]/REPO is required")
    target = parse_target(to)  # before any work
    options = _registry_options(username, password_stdin, ca_cert)
    if from_:
        if flavor != "all":
            raise UserError("--flavor chooses what to build; with --from the layout is pushed "
                            "as it is")
        layout = _user_path(from_).resolve()
        pushing.read_layout(layout)  # a clear error before connecting
    else:
        from rules.attest import provenance

        key = provenance.load_signing_key(str(_user_path(signing_key)) if signing_key
                                          else None)
        layout = _build(runtime, flavor, out, key)
    client = Client(target, options["ca_cert"], options["username"], options["password"])
    result = pushing.push(layout, client)
    report.table(f"pushed to {target}", ("tag", "digest"),
                 [(tag, digest) for tag, digest in result.tags.items()])
    images = [i for i in result.images if not i.subject]
    print(f"{len(images)} image(s) and {len(result.images) - len(images)} attached "
          f"artifact(s), {result.blobs_total} blobs: "
          f"{result.blobs_uploaded} uploaded ({result.bytes_uploaded} bytes), "
          f"{result.blobs_total - result.blobs_uploaded - result.blobs_mounted} already there; "
          f"{result.seconds:.1f}s")


def _build(runtime: str, flavor: str, out: str | None, signing_key=None) -> Path:
    """`invoke image`'s build (cached steps make it a no-op): the layout's folder."""
    from rules.common.cache import default_cache
    from rules.image import build as images
    from rules.load import project
    from tasks import _flavors, _user_path, system_deps

    proj = project.load()
    line = proj.line(runtime)
    flavors = _flavors(proj, line, flavor)
    system_deps.ensure(system_deps.BUILD_PACKAGES)
    out = _user_path(out) if out else Path(proj.root) / "out" / f"runtime-{line.version}"
    images.build(proj, runtime, flavors, out, default_cache(), signing_key=signing_key)
    return out.resolve()
