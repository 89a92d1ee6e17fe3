"""`invoke verify IMAGE`: check an image against its attestations, and rebuild it.

IMAGE is an OCI layout folder (what `invoke image --out` writes: every image in it is checked)
or ``HOST[:PORT]/REPO@sha256:<hex>`` in a registry (its blobs are downloaded into a scratch
layout first, each checked against its digest). Per image, each check gives a verdict:

1. ``blobs``: the manifest, config and every layer have the bytes their digests name.
2. ``attestations``: an SPDX SBOM, a CycloneDX SBOM and a provenance are attached (referrers
   whose ``subject`` is this manifest), each blob with the bytes its digest names.
3. ``signature``: the provenance's DSSE signature verifies with the given public key
   (securesystemslib); an unsigned provenance fails unless ``allow_unsigned``.
4. ``provenance``: the statement is an in-toto Statement v1 with a SLSA v1 predicate whose
   subject is this manifest's digest, and whose byproducts are these two SBOMs (by digest):
   this is what binds the SBOMs to the signature.
5. ``sbom contents``: the packages the SBOMs list (both formats, the same set) are exactly what
   the image holds: the Debian packages of the dpkg status file and the Python distributions
   of the dist-info folders, read from the image's own layers (name, version; arch for .debs).
6. ``rebuild``: the commit the provenance names is cloned from the repository (``git clone``,
   ``git checkout``) into a scratch folder and built there with a fresh cache that shares only
   the fetched inputs (rules.fetch.locked_inputs.cache_of_fetched): the image digest must be
   the same, and so must the SBOMs. Skipped with ``rebuild=False``.
7. ``release``: when the checkout holds a release record of the image's Runtime version
   (rules.release; in any of its refs), the record lists this digest for the flavor and names
   the commit the provenance names, and the tag ``runtime-VERSION`` points at that commit: the
   image is the release, built from that tag. Skipped for a build that is not a recorded
   release (no record of its version, or a record of another commit: a development build
   after it, which carries the version it follows), unless ``release`` is asked: then it fails.

Every expected failure is a failed check with its reason, never a traceback; the task exits
non-zero when any check fails.
"""

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from rules.attest import provenance
from rules.oci import referrers
from rules.oci.layout import INDEX
from rules.common.errors import UserError

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
REF_NAME = "org.opencontainers.image.ref.name"
SITE = "usr/local/lib/python3.9/dist-packages/"


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped
    detail: str

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "SKIP"}[self.ok]


@dataclass
class Report:
    image: str  # name (tag) and digest
    checks: list[Check]

    @property
    def failed(self) -> bool:
        return any(c.ok is False for c in self.checks)


class Layout:
    """An OCI layout folder: blobs by digest, the index's manifests."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.index = json.loads((self.path / "index.json").read_bytes())
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: not an OCI image layout ({e})") from None
        self.checked: set[str] = set()  # blobs already hashed (the flavors share layers)
        self.contents: dict[tuple, tuple[set, set]] = {}  # layers -> what they hold

    def blob_path(self, digest: str) -> Path:
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
            raise Broken(f"{str(digest)[:80]!r} is not a sha256 digest")
        return self.path / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def read(self, digest: str, what: str) -> bytes:
        """A blob's bytes, checked against its digest (raises Broken)."""
        path = self.blob_path(digest)
        try:
            data = path.read_bytes()
        except OSError:
            raise Broken(f"{what} {digest[:19]} is missing") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise Broken(f"{what} {digest[:19]} has other bytes than its digest names")
        return data

    def check_file(self, digest: str, size: int, what: str) -> None:
        if digest in self.checked:
            return
        path = self.blob_path(digest)
        if not path.is_file():
            raise Broken(f"{what} {digest[:19]} is missing")
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if "sha256:" + h.hexdigest() != digest or path.stat().st_size != size:
            raise Broken(f"{what} {digest[:19]} has other bytes than its digest names")
        self.checked.add(digest)

    def images(self) -> list[tuple[str, list[str]]]:
        """(manifest digest, tags) of the images (not the attached artifacts); the images of
        an image index (a tag of several platforms) each carry the index's tags."""
        found: dict[str, list[str]] = {}
        for entry in self.index.get("manifests", []):
            if entry.get("artifactType"):
                continue
            digests = [entry["digest"]]
            if entry.get("mediaType") == INDEX:
                try:
                    digests = self.index_images(entry["digest"])
                except (Broken, ValueError, KeyError, TypeError, AttributeError) as e:
                    raise UserError(f"{self.path}: image index {str(entry['digest'])[:19]}: "
                                    f"{e}") from None
            elif entry.get("mediaType") != MANIFEST:
                continue
            tag = (entry.get("annotations") or {}).get(REF_NAME)
            for digest in digests:
                tags = found.setdefault(digest, [])
                if tag and tag not in tags:
                    tags.append(tag)
        return list(found.items())

    def index_images(self, digest: str) -> list[str]:
        """The images of an image index, each checked against the platform the index gives
        it (its config's os, architecture and variant), one image per platform: an index
        whose entries were swapped would make a pull on amd64 run the arm64 image."""
        index = json.loads(self.read(digest, "image index"))
        out, seen = [], set()
        for m in index.get("manifests", []):
            if m.get("mediaType") != MANIFEST:
                raise Broken(f"it names a {m.get('mediaType')!r}, not an image manifest")
            manifest = json.loads(self.read(m["digest"], "manifest"))
            config = json.loads(self.read(manifest["config"]["digest"], "config"))
            said = m.get("platform") or {}
            actual = {k: config.get(k) for k in ("os", "architecture", "variant")}
            if {k: said.get(k) for k in actual} != actual:
                raise Broken(f"its entry {m['digest'][:19]} says platform {said}, the image's "
                             f"config says {actual}")
            key = tuple(sorted(actual.items(), key=lambda kv: kv[0]))
            if key in seen:
                raise Broken(f"two images for platform {actual}")
            seen.add(key)
            out.append(m["digest"])
        if not out:
            raise Broken("it names no image")
        return out

    def referrers(self, subject: str) -> list[dict]:
        out = []
        for entry in self.index.get("manifests", []):
            if not entry.get("artifactType"):
                continue
            try:
                manifest = json.loads(self.read(entry["digest"], "artifact manifest"))
            except (Broken, ValueError):
                out.append(entry)  # (the check reads it again and names what is wrong)
                continue
            if (manifest.get("subject") or {}).get("digest") == subject:
                out.append(entry)
        return out


class Broken(Exception):
    """What a check found wrong (its message names it)."""


class Skipped(str):
    """A check's detail when it was not made (allowed by an option): verdict SKIP."""


# --- the image's own contents ------------------------------------------------------------

def image_contents(layout: Layout, manifest: dict) -> tuple[set, set]:
    """({(deb name, version, arch)}, {(canonical python name, version)}) from the layers: the
    dpkg status file (last layer that has it) and the METADATA of every dist-info under the
    image's site-packages (whiteouts applied). Read once per set of layers."""
    key = tuple(layer["digest"] for layer in manifest["layers"])
    if key not in layout.contents:
        layout.contents[key] = _contents(layout, manifest)
    return layout.contents[key]


def _contents(layout: Layout, manifest: dict) -> tuple[set, set]:
    status = None
    metadata: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        path = layout.blob_path(layer["digest"])
        with gzip.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                base = name.rsplit("/", 1)[-1]
                if base.startswith(".wh."):
                    gone = name[: -len(base)] + base[4:]
                    metadata = {k: v for k, v in metadata.items()
                                if k != gone and not k.startswith(gone + "/")}
                    continue
                if name == "var/lib/dpkg/status" and member.isfile():
                    status = tar.extractfile(member).read()
                elif (name.startswith(SITE) and name.endswith(".dist-info/METADATA")
                      and name.count("/") == SITE.count("/") + 1 and member.isfile()):
                    metadata[name] = tar.extractfile(member).read()
    debs = set()
    if status:
        from debian import deb822

        for para in deb822.Packages.iter_paragraphs(status.decode("utf-8", "replace"),
                                                    use_apt_pkg=False):
            if para.get("Status", "").endswith(" installed"):
                debs.add((para["Package"], para["Version"], para.get("Architecture", "")))
    dists = set()
    for text in metadata.values():
        from packaging.metadata import parse_email

        raw, _ = parse_email(text)
        dists.add((str(canonicalize_name(raw.get("name", ""))), raw.get("version", "")))
    return debs, dists


def spdx_contents(data: bytes) -> tuple[set, set]:
    """(debs, python distributions) an SPDX document says the image CONTAINS."""
    from packageurl import PackageURL

    doc = json.loads(data)
    described = {r["relatedSpdxElement"] for r in doc.get("relationships", [])
                 if r["relationshipType"] == "DESCRIBES"}
    contained = {r["relatedSpdxElement"] for r in doc.get("relationships", [])
                 if r["relationshipType"] == "CONTAINS" and r["spdxElementId"] in described}
    debs, dists = set(), set()
    for p in doc.get("packages", []):
        if p["SPDXID"] not in contained:
            continue
        purls = [r["referenceLocator"] for r in p.get("externalRefs", [])
                 if r.get("referenceType") == "purl"]
        purl = PackageURL.from_string(purls[0]) if purls else None
        if purl and purl.type == "deb":
            debs.add((purl.name, purl.version, (purl.qualifiers or {}).get("arch", "")))
        else:
            dists.add((str(canonicalize_name(p["name"])), p.get("versionInfo", "")))
    return debs, dists


def cyclonedx_contents(data: bytes) -> tuple[set, set]:
    from packageurl import PackageURL

    debs, dists = set(), set()
    for c in json.loads(data).get("components", []):
        purl = PackageURL.from_string(c["purl"]) if c.get("purl") else None
        if purl and purl.type == "deb":
            debs.add((purl.name, purl.version, (purl.qualifiers or {}).get("arch", "")))
        else:
            dists.add((str(canonicalize_name(c["name"])), c.get("version", "")))
    return debs, dists


def _difference(what: str, listed: set, found: set) -> str:
    extra, missing = sorted(listed - found), sorted(found - listed)
    parts = []
    if extra:
        parts.append(f"{len(extra)} {what} listed but not in the image "
                     f"({', '.join('=='.join(e[:2]) for e in extra[:5])})")
    if missing:
        parts.append(f"{len(missing)} {what} in the image but not listed "
                     f"({', '.join('=='.join(m[:2]) for m in missing[:5])})")
    return "; ".join(parts)


# --- the checks ----------------------------------------------------------------------------

def check_image(layout: Layout, digest: str, keys, allow_unsigned: bool
                ) -> tuple[list[Check], dict | None, dict]:
    """Checks 1-5 of one image: (checks, the statement if readable, the SBOM digests)."""
    checks: list[Check] = []
    statement, sboms = None, {}

    def run(title: str, fn) -> object:
        try:
            detail = fn()
            checks.append(Check(title, None if isinstance(detail, Skipped) else True, detail))
            return True
        except Broken as e:
            checks.append(Check(title, False, str(e)))
        except UserError as e:
            checks.append(Check(title, False, str(e)))
        return False

    manifest: dict = {}

    def blobs() -> str:
        nonlocal manifest
        manifest = json.loads(layout.read(digest, "image manifest"))
        layout.check_file(manifest["config"]["digest"], manifest["config"]["size"], "config")
        for i, layer in enumerate(manifest["layers"]):
            layout.check_file(layer["digest"], layer["size"], f"layer {i + 1}")
        return f"manifest, config and {len(manifest['layers'])} layers match their digests"
    blobs_ok = run("blobs", blobs)

    found: dict[str, tuple[dict, bytes]] = {}  # artifact kind -> (layer descriptor, bytes)

    def attestations() -> str:
        for entry in layout.referrers(digest):
            art = json.loads(layout.read(entry["digest"], "artifact manifest"))
            layer = art["layers"][0]
            kind = referrers.KIND.get(art.get("artifactType"), art.get("artifactType"))
            found[kind] = (layer, layout.read(layer["digest"], kind))
        missing = [k for k in referrers.KIND.values() if k not in found]
        if missing:
            raise Broken(f"not attached: {', '.join(missing)}")
        return ", ".join(f"{k} {found[k][0]['digest'][:19]}" for k in referrers.KIND.values())
    attached = run("attestations", attestations)

    def signature() -> str:
        nonlocal statement
        layer, data = found["provenance"]
        if layer["mediaType"] == referrers.IN_TOTO:
            statement = json.loads(data)
            if not allow_unsigned:
                raise Broken("the provenance is unsigned (built without --signing-key)")
            return Skipped("the provenance is unsigned (allowed by --allow-unsigned)")
        if keys is None:
            statement = provenance.open_envelope(data, None)
            if not allow_unsigned:
                raise Broken("no --public-key given: the signature cannot be checked "
                             f"(signed by keyid {', '.join(provenance.keyid_of(data))})")
            return Skipped("not checked: no --public-key (allowed by --allow-unsigned)")
        statement = provenance.open_envelope(data, keys)
        return f"DSSE signature by keyid {keys[0].keyid[:16]} verifies ({keys[0].scheme})"
    if attached and "provenance" in found:
        run("signature", signature)
    else:
        checks.append(Check("signature", False, "no provenance to check"))

    def statement_check() -> str:
        if statement is None:
            raise Broken("no readable statement")
        if statement.get("_type") != provenance.STATEMENT_TYPE:
            raise Broken(f"not an in-toto Statement v1 ({statement.get('_type')!r})")
        if statement.get("predicateType") != provenance.PREDICATE_TYPE:
            raise Broken(f"not SLSA v1 provenance ({statement.get('predicateType')!r})")
        subjects = {s.get("digest", {}).get("sha256") for s in statement.get("subject", [])}
        if digest.removeprefix("sha256:") not in subjects:
            raise Broken(f"its subject is not this image ({', '.join(map(str, subjects))})")
        byproducts = {b.get("mediaType"): b.get("digest", {}).get("sha256")
                      for b in statement["predicate"]["runDetails"].get("byproducts", [])}
        for kind, media in (("SPDX SBOM", referrers.SPDX),
                            ("CycloneDX SBOM", referrers.CYCLONEDX)):
            if kind in found:
                sboms[kind] = found[kind][0]["digest"]
                if byproducts.get(media) != found[kind][0]["digest"].removeprefix("sha256:"):
                    raise Broken(f"the attached {kind} {found[kind][0]['digest'][:19]} is not "
                                 f"the one the provenance names "
                                 f"(sha256:{str(byproducts.get(media))[:12]})")
        params = statement["predicate"]["buildDefinition"]["externalParameters"]
        return (f"subject {digest[:19]}, line {params['line']} {params['flavor']}, commit "
                f"{params['source']['commit'][:12]}; the SBOMs are the ones it names")
    run("provenance", statement_check)

    def contents() -> str:
        if not blobs_ok:
            raise Broken("the layers are not intact")
        debs, dists = image_contents(layout, manifest)
        problems = []
        for kind, parse in (("SPDX SBOM", spdx_contents), ("CycloneDX SBOM", cyclonedx_contents)):
            if kind not in found:
                problems.append(f"no {kind}")
                continue
            try:
                listed_debs, listed_dists = parse(found[kind][1])
            except (ValueError, KeyError, TypeError) as e:
                problems.append(f"{kind} unreadable ({e})")
                continue
            for what, listed, actual in (("Debian packages", listed_debs, debs),
                                         ("Python distributions", listed_dists, dists)):
                diff = _difference(what, listed, actual)
                if diff:
                    problems.append(f"{kind}: {diff}")
        if problems:
            raise Broken("; ".join(problems))
        return (f"{len(debs)} Debian packages (dpkg status) and {len(dists)} Python "
                f"distributions (dist-info) are exactly the SBOMs' packages")
    run("sbom contents", contents)
    return checks, statement, sboms


def rebuild(repo: str, statement: dict, cache: Path, invoke: list[str]) -> tuple[dict, str]:
    """Build the commit the statement names in a scratch clone with a fresh cache that shares
    only the fetched inputs: ({tag: digest} of the rebuilt layout, its folder's index)."""
    from rules.fetch.locked_inputs import cache_of_fetched

    params = statement["predicate"]["buildDefinition"]["externalParameters"]
    commit, line = params["source"]["commit"], params["line"]
    platform = params.get("platform")  # another platform than the build's own: linux/arm64
    if platform is not None and not re.fullmatch(r"linux/[a-z0-9]+", str(platform)):
        raise Broken(f"the provenance names an invalid platform ({platform!r})")
    if not re.fullmatch(r"[0-9a-f]{40}", commit or ""):
        raise Broken(f"the provenance names no commit ({commit!r})")
    scratch = Path(tempfile.mkdtemp(prefix="runtime-verify-", dir=cache))
    try:
        src = scratch / "src"
        proc = subprocess.run(["git", "clone", "--quiet", "--no-checkout", repo, str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise Broken(f"git clone {repo} failed: {proc.stderr.strip()[:200]}")
        proc = subprocess.run(["git", "-C", str(src), "checkout", "--quiet", commit],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise Broken(f"commit {commit[:12]} is not in {repo}: "
                         f"{proc.stderr.strip()[:200]}")
        tree = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD^{tree}"],
                              capture_output=True, text=True).stdout.strip()
        if tree != params["source"]["tree"]:
            raise Broken(f"commit {commit[:12]} has tree {tree[:12]}, the provenance names "
                         f"{params['source']['tree'][:12]}")
        fresh = cache_of_fetched(cache, scratch / "cache")
        out = scratch / "out"
        env = dict(os.environ, RUNTIME_CACHE=str(fresh), RUNTIME_CALLER_DIR=str(src))
        env.pop("RUNTIME_SIGNING_KEY", None)
        env.pop("PYTHONPATH", None)  # the clone's own rules/, not this checkout's
        proc = subprocess.run([*invoke, "image", "--runtime", line, "--out", str(out),
                               "--remote-cache", "off",
                               *(("--platform", platform) if platform else ())],
                              cwd=src, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
            raise Broken(f"the rebuild of {commit[:12]} failed: {' | '.join(tail)}")
        rebuilt = Layout(out)
        digests = {}
        for d, tags in rebuilt.images():
            for tag in tags:
                digests[tag] = d
        sbom_digests = {}
        for d, _ in rebuilt.images():
            for entry in rebuilt.referrers(d):
                art = json.loads(rebuilt.read(entry["digest"], "artifact manifest"))
                kind = referrers.KIND.get(art.get("artifactType"))
                if kind and kind != "provenance":
                    sbom_digests[(d, kind)] = art["layers"][0]["digest"]
        return {"images": digests, "sboms": sbom_digests}, commit
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _git(root: str, *args: str) -> str | None:
    proc = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def release_check(checkout: str, statement: dict, digest: str, required: bool = False
                  ) -> Check:
    """Whether the image is a recorded release of ``checkout`` (see the module docstring).
    The record is looked for in every ref of the checkout (after `git checkout runtime-V` it
    is in a later commit). ``required``: an image that is not a recorded release fails."""
    from rules.release.releases import RECORDS

    def not_release(detail: str) -> Check:
        return Check("release", False if required else None, detail)

    try:
        build = statement["predicate"]["buildDefinition"]
        version = str(build["internalParameters"]["runtimeVersion"])
        flavor = build["externalParameters"]["flavor"]
        commit = build["externalParameters"]["source"]["commit"]
    except (KeyError, TypeError):
        return Check("release", False, "the provenance names no Runtime version, flavor or "
                                       "commit")
    path = f"{RECORDS}/{version}.json"
    added = (_git(checkout, "log", "--all", "--diff-filter=A", "-1", "--format=%H", "--",
                  path) or "").strip()
    text = _git(checkout, "show", f"{added}:{path}") if added else None
    if text is None:
        return not_release(f"no release record of {version} in {checkout} (a build, not a "
                           "release)")
    try:
        record = json.loads(text)
        recorded, built_from = record["digests"].get(flavor), record["built_from"]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        return Check("release", False, f"{path} cannot be read: {e}")
    if built_from != commit:  # a build of another commit: not this release
        return not_release(f"NOT release {version}: that was built from {str(built_from)[:12]}, "
                           f"this image from {str(commit)[:12]}")
    if recorded != digest:
        return Check("release", False, f"release {version} recorded {flavor} as "
                                       f"{str(recorded)[:19]}, this image of the same commit "
                                       f"is {digest[:19]}")
    tag = record.get("tag")
    if not tag:
        return Check("release", True, f"release {version} (recorded before releases were "
                                      f"tagged): this digest, built from {commit[:12]}")
    tagged = (_git(checkout, "rev-parse", "--verify", "--quiet", f"{tag}^{{commit}}") or "")
    if tagged.strip() != commit:
        return Check("release", False, f"tag {tag} names {tagged.strip()[:12] or 'nothing'}, "
                                       f"the release was built from {commit[:12]}")
    return Check("release", True, f"release {version}: the recorded digest, built from "
                                  f"{commit[:12]}, tagged {tag}")


def verify_layout(layout: Layout, keys, allow_unsigned: bool, repo: str | None, cache: Path,
                  invoke: list[str], only: str | None = None,
                  checkout: str | None = None, release: bool = False) -> list[Report]:
    """Every image of ``layout`` checked; ``repo``: where to clone the commit to rebuild from
    (None: no rebuild); ``checkout``: the git checkout whose release records to compare with;
    ``release``: every image must be a recorded release."""
    reports = []
    rebuilt: dict[tuple, tuple[dict | None, str]] = {}  # (commit, platform) -> result, error
    images = layout.images()
    if only:
        images = [(d, t) for d, t in images if only in t or d == only]
        if not images:
            raise UserError(f"{layout.path}: no image {only!r}")
    if not images:
        raise UserError(f"{layout.path}: the index names no image")
    for digest, tags in images:
        name = f"{tags[0] if tags else '(untagged)'} {digest[:19]}"
        checks, statement, sboms = check_image(layout, digest, keys, allow_unsigned)
        if repo is None:
            checks.append(Check("rebuild", None, "skipped (--no-rebuild)"))
        elif statement is None or any(c.ok is False for c in checks
                                      if c.name in ("signature", "provenance")):
            checks.append(Check("rebuild", False, "no trusted provenance to rebuild from"))
        else:
            params = statement["predicate"]["buildDefinition"]["externalParameters"]
            commit = params["source"]["commit"]
            built = (commit, str(params.get("platform")))  # one rebuild per platform
            if built not in rebuilt:
                try:
                    rebuilt[built] = (rebuild(repo, statement, cache, invoke)[0], "")
                except Broken as e:
                    rebuilt[built] = (None, str(e))
            result, error = rebuilt[built]
            if result is None:
                checks.append(Check("rebuild", False, error))
            else:
                tag = statement["subject"][0]["name"].rpartition(":")[2]
                again = result["images"].get(tag)
                if again != digest:
                    checks.append(Check("rebuild", False, (
                        f"commit {commit[:12]} builds {tag} as {str(again)[:19]}, not "
                        f"{digest[:19]}")))
                else:
                    diff = [k for k, v in sboms.items()
                            if result["sboms"].get((digest, k)) != v]
                    if diff:
                        checks.append(Check("rebuild", False,
                                            f"same image, but other {', '.join(diff)}"))
                    else:
                        checks.append(Check("rebuild", True, (
                            f"commit {commit[:12]} rebuilt in a scratch clone with a fresh "
                            f"cache: the same image digest and SBOMs")))
        if checkout and statement is not None and not any(
                c.ok is False for c in checks if c.name in ("signature", "provenance")):
            checks.append(release_check(checkout, statement, digest, release))
        elif release:
            checks.append(Check("release", False, "no trusted provenance to compare with the "
                                                  "release records"))
        reports.append(Report(name, checks))
    return reports


def download(client, digest: str, folder: Path) -> Layout:
    """A registry image and its referrers as a scratch layout (every blob checked)."""
    from rules.oci.registry import RegistryError

    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    found = client.get_manifest(digest)
    if found is None:
        raise UserError(f"{client.target}@{digest}: no such manifest")
    data = found[0]
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise UserError(f"{client.target}@{digest}: the registry's manifest has other bytes")
    (blobs / digest[7:]).write_bytes(data)
    manifest = json.loads(data)
    if manifest.get("mediaType") == INDEX or found[1] == INDEX:  # every platform's image
        entries = []
        for child in manifest.get("manifests", []):
            if child.get("mediaType") != MANIFEST:  # (no index of indexes)
                continue
            if not DIGEST.fullmatch(str(child.get("digest"))):
                raise UserError(f"{client.target}@{digest}: the index names "
                                f"{str(child.get('digest'))[:80]!r}, not a sha256 digest")
            part = download(client, child["digest"], folder / child["digest"][7:19])
            entries += part.index["manifests"]
            for blob in (part.path / "blobs" / "sha256").iterdir():
                if not (blobs / blob.name).exists():
                    os.link(blob, blobs / blob.name)
            shutil.rmtree(part.path)
        (folder / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                       "manifests": entries}))
        (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        return Layout(folder)
    entries = [{"mediaType": MANIFEST, "digest": digest, "size": len(data),
                "annotations": {REF_NAME: digest}}]
    for blob in [manifest["config"], *manifest["layers"]]:
        try:
            client.download_blob(blob["digest"], blobs / blob["digest"][7:])
        except RegistryError as e:  # bytes not matching: left out, the check names it
            (folder / "errors.txt").open("a").write(f"{e}\n")
    for entry in client.referrers(digest):
        art = client.get_manifest(entry["digest"])
        if art is None:
            continue
        (blobs / entry["digest"][7:]).write_bytes(art[0])
        entries.append({"mediaType": MANIFEST, "digest": entry["digest"],
                        "size": len(art[0]), "artifactType": entry.get("artifactType", "")})
        try:
            for layer in json.loads(art[0]).get("layers", []):
                client.download_blob(layer["digest"], blobs / layer["digest"][7:])
        except (RegistryError, ValueError) as e:
            (folder / "errors.txt").open("a").write(f"{e}\n")
    (folder / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return Layout(folder)
