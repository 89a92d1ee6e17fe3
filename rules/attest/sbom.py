"""The SBOMs of an image, made at build time from the locks and the build graph (not by scanning
the image): SPDX 2.3 JSON and CycloneDX 1.5 JSON.

Two kinds of action of the line's graph (rules.graph.action), so that they are cached, shared
through a remote cache, and rebuilt only when what they are made from changes:

* ``sbom facts`` (one per line): what the image holds, as plain JSON. Every Debian package of
  the Debian lock (name, version, arch, the .deb's sha256 and URL, its resolved `Depends`) with
  the license its copyright file states, read from the base layer (which is the Debian root:
  `/usr/share/doc/<package>/copyright`, kept by the slim root); every locked Python
  distribution (the sha256 and URL of the wheel or sdist it came from; license and
  `Requires-Dist` from the METADATA of the wheel that is installed); the patched Airflow with
  its upstream file and the patches applied; the Runtime modules that install a dist-info.
  Inputs: the base layer's key, every wheel's digest (or the key of the action making it), the
  lock digests, the patches. Reading the 94 MB base layer takes about 3 s; the METADATA of 255
  wheels well under 1 s.
* ``sbom`` (one per image): the two documents of one flavor, made from the facts. No clock:
  the creation time is the line's SOURCE_DATE_EPOCH; the SPDX namespace and the CycloneDX
  serial number are derived from the sha256 of the facts and the image's name, so every build
  of the same commit writes the same bytes.

Both documents are written with the formats' maintained libraries (spdx-tools' model and JSON
writer, cyclonedx-python-lib's model and JSON 1.5 serializer); the tests validate them with
spdx-tools' validator and CycloneDX's 1.5 JSON schema. The documents name the image by
reference (repository and tag), not by digest: the digest is known only once the layers are
made, and the SBOM is bound to it by the OCI referrer's `subject` (rules.oci.referrers)
and by the signed provenance, which lists its digest (rules.attest.provenance).

Every package names its supplier (an NTIA minimum element, checked by ntia-conformance-checker
in the tests): a Debian package its `Maintainer` (from the dpkg status file of the base
layer), a Python distribution the `Maintainer` or `Author` of its METADATA (name, else
e-mail), the image and the Runtime modules the Runtime (``VENDOR``, also the documents'
creator). A distribution whose METADATA names nobody gets "Organization: PyPI project NAME"
and a comment saying so (measured on line 4.2: 1 of 255, libcst).

What is described: the Debian packages, the Python distributions installed with their
dist-info (the lock's, Airflow patched, and the Runtime modules that register a plugin).
Runtime module code without a dist-info is in the provenance (its source files), not here.
"""

import hashlib
import io
import json
import re
import tarfile
import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from rules.attest import licenses
from rules.common import atomic
from rules.fetch import pypi_files
from rules.fetch.download import cas_path
from rules.graph.action import Action, Made

FACTS_RECIPE = 2  # bump when what the facts hold changes
SBOM_RECIPE = 2  # bump when the documents made from them change
VENDOR = "Runtime"  # the organization that makes the image (supplier of it and its modules)
TOOL = "runtime-sbom"
SPDX_MEDIA = "application/spdx+json"
CYCLONEDX_MEDIA = "application/vnd.cyclonedx+json"
DEBIAN_DISTRO = "debian-11"
# the target the image's python3.9 is: Requires-Dist markers are evaluated for it
MARKER_ENV = {"python_version": "3.9", "python_full_version": "3.9.2", "os_name": "posix",
              "sys_platform": "linux", "platform_system": "Linux",
              "platform_machine": "x86_64", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "extra": ""}


def code_digest() -> str:
    """sha256 of this module and rules.attest.licenses: an input of both actions, so that a
    change to how facts are gathered or documents written cannot leave a stale SBOM in the
    cache (a recipe number to bump by hand once did: the facts of a first version of the
    license mapping were reused after it changed). Rebuilding the SBOMs costs about 3 s."""
    h = hashlib.sha256()
    for path in sorted((Path(__file__), Path(licenses.__file__))):
        h.update(path.read_bytes())
    return h.hexdigest()


def tool_versions() -> dict[str, str]:
    """The libraries that write the documents: their versions are inputs of the ``sbom``
    action (another version may write other bytes)."""
    from importlib.metadata import version

    return {n: version(n) for n in ("cyclonedx-python-lib", "spdx-tools", "license-expression",
                                    "python-debian", "packaging")}


# --- facts ---------------------------------------------------------------------------------

def deb_purl(name: str, version: str, arch: str) -> str:
    from packageurl import PackageURL

    return PackageURL("deb", "debian", name, version,
                      {"arch": arch, "distro": DEBIAN_DISTRO}).to_string()


def pypi_purl(name: str, version: str) -> str:
    from packageurl import PackageURL

    return PackageURL("pypi", None, str(canonicalize_name(name)), version).to_string()


def copyright_files(layer_blob: Path, status: dict | None = None) -> dict[str, str]:
    """Package -> the text of /usr/share/doc/<package>/copyright in a layer (a doc folder that
    is a symbolic link to another package's is followed); ``status["text"]``, when given, gets
    the dpkg status file of the layer (in the same pass: the layer is 94 MB)."""
    texts: dict[str, str] = {}
    links: dict[str, str] = {}
    pattern = re.compile(r"^(?:\./)?usr/share/doc/([^/]+)(/copyright)?$")
    with tarfile.open(layer_blob, "r|gz") as tar:
        for member in tar:
            if status is not None and member.isfile() and \
                    member.name.removeprefix("./") == "var/lib/dpkg/status":
                status["text"] = tar.extractfile(member).read().decode("utf-8", "replace")
                continue
            m = pattern.match(member.name)
            if not m:
                continue
            pkg = m.group(1)
            if m.group(2) and member.isfile():
                texts[pkg] = tar.extractfile(member).read().decode("utf-8", "replace")
            elif not m.group(2) and member.issym():
                links[pkg] = Path(member.linkname).name
            elif m.group(2) and member.issym():
                links[pkg] = Path(member.linkname).parent.name
    for pkg, target in links.items():
        if pkg not in texts and target in texts:
            texts[pkg] = texts[target]
    return texts


def debian_facts(packages: list[dict], layer_blob: Path) -> list[dict]:
    """The Debian lock's packages with the license their copyright file states. A package
    whose doc folder is a link in its .deb (libgcc-s1 -> gcc-10-base) has none in the slim
    root (the links go with the docs): it takes the copyright file of a package built from
    the same source, which is the source's (Debian policy 12.5). Measured on the 4.2 lock:
    7 of 160 packages."""
    status: dict = {}
    texts = copyright_files(layer_blob, status)
    from rules.debian.debian_index import parse_stanzas

    maintainer = {p["Package"]: p.get("Maintainer", "") for p in parse_stanzas(
        status.get("text", ""), ["Package", "Maintainer"])}
    by_source: dict[str, str] = {}
    for p in sorted(packages, key=lambda p: p["name"]):
        if p["name"] in texts:
            by_source.setdefault(p.get("source") or p["name"], p["name"])
    out = []
    for p in sorted(packages, key=lambda p: (p["name"], p["arch"])):
        origin = p["name"] if p["name"] in texts else by_source.get(p.get("source") or "")
        text = texts.get(origin) if origin else None
        expression, refs = licenses.debian_copyright(text) if text else (licenses.NOASSERTION, {})
        comment = ""
        if text and expression == licenses.NOASSERTION:
            named = licenses.common_licenses(text)
            comment = ("copyright file not machine-readable" + (
                f"; it refers to /usr/share/common-licenses/ {', '.join(named)}"
                if named else ""))
        elif not text:
            comment = "no copyright file in the image"
        out.append({"name": p["name"], "version": p["version"], "arch": p["arch"],
                    "sha256": p["sha256"], "url": p["url"], "source": p.get("source") or "",
                    "depends": sorted(set(p.get("depends") or ())),
                    "license": expression, "license_refs": refs, "license_comment": comment,
                    "copyright_file": origin or "", "maintainer": maintainer.get(p["name"], "")})
    return out


def _metadata(raw: dict) -> dict:
    return {"name": raw.get("name", ""), "version": raw.get("version", ""),
            "license": raw.get("license") or "", "license_expression":
            raw.get("license_expression") or "", "classifiers": list(raw.get("classifiers", [])),
            "requires_dist": list(raw.get("requires_dist", [])),
            "summary": raw.get("summary") or "", "supplier": _named(raw)}


def _named(raw: dict) -> dict:
    """Who supplies a distribution, from its METADATA: Maintainer (with Maintainer-email),
    else Author (with Author-email); {"name": "", "email": None} when none names anyone."""
    for names, emails in ((raw.get("maintainer"), raw.get("maintainer_email")),
                          (raw.get("author"), raw.get("author_email"))):
        name, email = contact(names or "", emails or "")
        if name:
            return {"name": name, "email": email}
    return {"name": "", "email": None}


EMAIL = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+\.[^\s@<>()\[\],;:\"]+")
NOBODY = ("", "UNKNOWN", "NONE", "N/A")


def contact(names: str, emails: str) -> tuple[str, str | None]:
    """(name, e-mail or None) from a name field (a plain name, never split: "Doe, John" is one
    person) and an address field ("Name <addr>", several comma-separated, or bare addresses;
    parsed by email.utils). An address is kept only if it looks like one (the CycloneDX
    schema validates it); with no name, the first address's display name, else the address."""
    from email.utils import getaddresses

    name = " ".join(names.split())
    if name.upper() in NOBODY:
        name = ""
    found = [(n.strip(), a.strip()) for n, a in getaddresses([emails])] if emails.strip() \
        else []
    email = next((a for _, a in found if EMAIL.fullmatch(a)), None)
    if not name and found:
        name = found[0][0] or email or ""
    return name, email


ORGANIZATION = re.compile(r"\b(team|maintainers|developers|authors|contributors|project|"
                          r"foundation|group|inc|llc|ltd|corp|corporation|community|"
                          r"google|amazon|microsoft|snowflake|databricks|apache|python)\b",
                          re.IGNORECASE)


def supplier(who, fallback: str) -> tuple[str, str, str | None]:
    """("Organization" or "Person", name, e-mail or None) of a supplier: ``who`` is a Debian
    Maintainer field ("Name <address>") or the {"name", "email"} of a Python distribution.
    A name that says team, company or project is an organization (the name alone decides, not
    the address's domain); brackets and quotes are taken out of it (SPDX writes the e-mail in
    brackets after the name). ``fallback`` (an organization's name) when nobody is named."""
    if isinstance(who, str):
        name, email = contact("", who)
    else:
        name, email = (who or {}).get("name") or "", (who or {}).get("email")
    name = " ".join(re.sub(r"[()<>\"]", " ", name).split())
    if not name:
        return "Organization", fallback, None
    kind = "Organization" if ORGANIZATION.search(name) else "Person"
    return kind, name, email


def wheel_metadata(blob: Path) -> dict:
    """Name, Version, License, License-Expression, classifiers, Requires-Dist and Summary of a
    wheel's METADATA; ``vendored``: the same of each distribution the wheel carries inside
    its packages (a dist-info deeper than the top: `py` vendors apipkg and iniconfig), with
    its path."""
    with zipfile.ZipFile(blob) as zf:
        names = zf.namelist()
        top = next(n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        raw, _ = parse_email(zf.read(top))
        meta = _metadata(raw)
        meta["vendored"] = []
        for n in sorted(names):
            if n.count("/") > 1 and n.endswith(".dist-info/METADATA"):
                inner, _ = parse_email(zf.read(n))
                meta["vendored"].append({**_metadata(inner), "path": n.rsplit("/", 1)[0]})
    return meta


def requirements(requires_dist: list[str], names: set[str],
                 machine: str = "x86_64") -> list[str]:
    """The canonical names a distribution needs in the image: its Requires-Dist whose marker
    holds on the image's python3.9 (on ``machine``) without extras, and that the image has."""
    env = dict(MARKER_ENV, platform_machine=machine)
    out = set()
    for text in requires_dist:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        if name in names:
            out.add(str(name))
    return sorted(out)


def python_facts(chosen: list, wheels: dict[str, tuple[Path, str, str]],
                 patches: dict | None, machine: str = "x86_64") -> list[dict]:
    """``chosen``: the lock's file choice (rules.fetch.pypi_files.Chosen); ``wheels``: name ->
    (installed wheel blob, its filename, its sha256); ``patches``: the Airflow patchset as
    {"version", "patches": [{"path", "sha256", "text", "upstream"}]} or None."""
    names = {str(canonicalize_name(c.name)) for c in chosen}
    out = []
    for c in sorted(chosen, key=lambda c: canonicalize_name(c.name)):
        blob, filename, wheel_sha = wheels[c.name]
        meta = wheel_metadata(blob)
        expression, refs = licenses.python_license(
            meta["license_expression"], meta["license"], meta["classifiers"], c.name)
        fact = {"name": meta["name"] or c.name, "canonical": str(canonicalize_name(c.name)),
                "version": meta["version"] or c.version, "filename": c.filename,
                "sha256": c.sha256, "url": c.url, "kind": c.kind,
                "installed_wheel": {"filename": filename, "sha256": wheel_sha},
                "license": expression, "license_refs": refs, "summary": meta["summary"],
                "supplier": meta["supplier"],
                "depends": requirements(meta["requires_dist"], names - {
                    str(canonicalize_name(c.name))}, machine)}
        fact["vendored"] = []
        for v in meta["vendored"]:
            v_expression, v_refs = licenses.python_license(
                v["license_expression"], v["license"], v["classifiers"], v["name"])
            fact["vendored"].append({"name": v["name"], "version": v["version"],
                                     "path": v["path"], "license": v_expression,
                                     "license_refs": v_refs, "supplier": v["supplier"]})
        if c.name == "apache-airflow" and patches:
            fact["patched"] = {"upstream_version": c.version, "upstream_filename": c.filename,
                               "upstream_sha256": c.sha256, "patches": patches["patches"]}
        out.append(fact)
    return out


def facts_action(project, line, base_layer: Action, wheels: dict, choice: Action,
                 lock_text: str, arch: str | None = None) -> Action:
    """The ``sbom facts`` action of a line (``wheels``: rules.image.inputs.Wheel by name;
    ``choice``: the lock's file-choice action; ``arch``: the image's Debian architecture, the
    main lock's by default)."""
    from rules.fetch.pypi_files import MACHINES
    from rules.image import layers
    from rules.lock import debian_lock

    foreign = arch not in (None, project.debian.arch)
    arch = arch or project.debian.arch

    root = Path(project.root)
    patchset = project.patches.get(line.airflow)
    patch_texts = [(p, (root / p).read_bytes()) for p in patchset.patches] if patchset else []
    modules = []
    for label in line.modules:
        module = project.modules[label]
        files = layers.module_metadata(project, line, module)
        meta = next((t for n, t in files.items() if n.endswith("/METADATA")), None)
        if meta:
            raw, _ = parse_email(meta.encode())
            modules.append({"name": raw["name"], "version": raw["version"],
                            "module": module.name, "summary": raw.get("summary") or ""})
    debian_text = (root / (debian_lock.arch_lock_path(project.debian, arch) if foreign
                           else project.debian.lock)).read_bytes()
    makers = tuple(w.action for w in wheels.values() if w.action is not None)

    def run(ctx) -> Made:
        packages = debian_lock.packages_for(project, arch)
        base = ctx.dep(base_layer).blob(ctx.cache, "layer")
        chosen = [pypi_files.Chosen(**c) for c in json.loads(
            ctx.dep(choice).blob(ctx.cache, "choices").read_text())]
        files = {n: w.resolve(ctx.cache, ctx.records) for n, w in wheels.items()}
        patches = None
        if patchset:
            patches = {"version": patchset.version, "patches": [
                {"path": p, "sha256": hashlib.sha256(t).hexdigest(),
                 "text": t.decode("utf-8", "replace"),
                 "upstream": sorted(set(re.findall(r"apache/airflow#\d+|github\.com/apache/"
                                                   r"airflow/(?:pull|issues)/\d+",
                                                   t.decode("utf-8", "replace"))))}
                for p, t in patch_texts]}
        facts = {"recipe": FACTS_RECIPE,  # (only what the inputs name: no line version)
                 "debian": debian_facts(packages, base),
                 "python": python_facts(chosen, files, patches, MACHINES[arch]),
                 "modules": sorted(modules, key=lambda m: m["name"])}
        return Made(blobs={"facts": _store(ctx.cache, _json(facts))})

    inputs = {"recipe": str(FACTS_RECIPE), "code": code_digest(),
              "debian lock": hashlib.sha256(debian_text).hexdigest(),
              "lock": hashlib.sha256(lock_text.encode()).hexdigest(),
              "modules": json.dumps(modules, sort_keys=True),
              **{f"wheel {n}": w.input for n, w in sorted(wheels.items())},
              **{f"patch {p}": hashlib.sha256(t).hexdigest() for p, t in patch_texts}}
    if foreign:  # (the main architecture's keys stay as they were)
        inputs["arch"] = arch
    return Action("sbom facts", f"{line.name} {arch}" if foreign else line.name, inputs, run,
                  deps=(base_layer, choice, *makers))


def sbom_action(facts: Action, line, flavor: str, reference: str, epoch: int) -> Action:
    """The ``sbom`` action of one image: blobs ``spdx`` and ``cyclonedx``."""
    def run(ctx) -> Made:
        data = json.loads(ctx.dep(facts).blob(ctx.cache, "facts").read_text())
        image = {"reference": reference, "line": line.name, "version": line.version,
                 "flavor": flavor, "epoch": epoch}
        return Made(blobs={"spdx": _store(ctx.cache, spdx_json(data, image)),
                           "cyclonedx": _store(ctx.cache, cyclonedx_json(data, image))})

    inputs = {"recipe": str(SBOM_RECIPE), "code": code_digest(), "epoch": str(epoch),
              "image": reference,
              "flavor": flavor, "tools": json.dumps(tool_versions(), sort_keys=True)}
    return Action("sbom", f"{line.name} {flavor}", inputs, run, deps=(facts,))


def _json(value) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


def _store(cache: Path, data: bytes) -> tuple[str, int]:
    sha = hashlib.sha256(data).hexdigest()
    path = cas_path(cache, sha)
    if not path.exists():
        atomic.write_bytes(path, data)
    return sha, len(data)


def seed(facts: dict, image: dict) -> str:
    """The content-derived identity of a document: sha256 of the facts and the image."""
    return hashlib.sha256(_json({"facts": facts, "image": image})).hexdigest()


# --- package identities shared by both formats ----------------------------------------------

def _id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text)


def packages(facts: dict) -> list[dict]:
    """Every package the image contains, in one shape: id, name, version, purl, sha256, url,
    license, license_refs, depends (ids), kind ("deb", "pypi", "module"), extra fields."""
    out = []
    debs = {d["name"]: d for d in facts["debian"]}
    for d in facts["debian"]:
        out.append({"id": f"deb-{_id(d['name'])}-{d['arch']}", "name": d["name"],
                    "version": d["version"], "purl": deb_purl(d["name"], d["version"], d["arch"]),
                    "sha256": d["sha256"], "url": d["url"], "license": d["license"],
                    "license_refs": d["license_refs"], "kind": "deb", "arch": d["arch"],
                    "license_comment": d["license_comment"],
                    "supplier": supplier(d.get("maintainer", ""), "Debian"),
                    "depends": [f"deb-{_id(n)}-{debs[n]['arch']}" for n in d["depends"]
                                if n in debs]})
    for p in facts["python"]:
        out.append({"id": f"pypi-{_id(p['canonical'])}", "name": p["name"],
                    "version": p["version"], "purl": pypi_purl(p["name"], p["version"]),
                    "sha256": p["sha256"], "url": p["url"], "license": p["license"],
                    "license_refs": p["license_refs"], "kind": "pypi",
                    "filename": p["filename"], "summary": p["summary"],
                    "patched": p.get("patched"), "installed_wheel": p["installed_wheel"],
                    "supplier": supplier(p.get("supplier"), f"PyPI project {p['name']}"),
                    "supplier_unnamed": not (p.get("supplier") or {}).get("name"),
                    "depends": [f"pypi-{_id(n)}" for n in p["depends"]],
                    "vendored": [{**v, "id": f"pypi-{_id(p['canonical'])}-vendored-"
                                            f"{_id(str(canonicalize_name(v['name'])))}",
                                  "purl": pypi_purl(v["name"], v["version"]),
                                  "supplier": supplier(v.get("supplier"),
                                                       f"PyPI project {v['name']}")}
                                 for v in p.get("vendored", [])]})
    for m in facts["modules"]:
        out.append({"id": f"module-{_id(m['name'])}", "name": m["name"],
                    "version": m["version"], "purl": None, "sha256": None, "url": None,
                    "license": licenses.NOASSERTION, "license_refs": {}, "kind": "module",
                    "supplier": ("Organization", VENDOR, None),
                    "summary": m["summary"], "depends": []})
    return out


# --- SPDX 2.3 ------------------------------------------------------------------------------

def spdx_json(facts: dict, image: dict) -> bytes:
    """The SPDX 2.3 JSON document (written by spdx-tools, not validated here: the tests do)."""
    from spdx_tools.spdx.model import (
        Actor, ActorType, Annotation, AnnotationType, Checksum, ChecksumAlgorithm,
        CreationInfo, Document, ExternalPackageRef, ExternalPackageRefCategory,
        ExtractedLicensingInfo, Package, PackagePurpose, Relationship, RelationshipType,
        SpdxNoAssertion)
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    created = datetime.fromtimestamp(image["epoch"], timezone.utc)
    tool = Actor(ActorType.TOOL, f"{TOOL}-{SBOM_RECIPE}")
    identity = seed(facts, image)
    repo, _, tag = image["reference"].rpartition(":")
    info = CreationInfo(
        "SPDX-2.3", "SPDXRef-DOCUMENT", f"{image['reference']} SBOM",
        f"https://spdx.org/spdxdocs/runtime/{_id(image['reference'])}-{identity}",
        [tool, Actor(ActorType.ORGANIZATION, VENDOR)], created,
        creator_comment="Made at build time from the locks and the build graph, not by "
                        "scanning the image.")

    def license_of(expression: str):
        if expression == licenses.NOASSERTION:
            return SpdxNoAssertion()
        return licenses._licensing().parse(expression)

    def actor(who: tuple[str, str, str | None]):
        kind, name, email = who
        return Actor(ActorType.ORGANIZATION if kind == "Organization" else ActorType.PERSON,
                     name, email)

    vendor = actor(("Organization", VENDOR, None))

    image_pkg = Package("SPDXRef-image", repo, SpdxNoAssertion(), version=tag,
                        files_analyzed=False, supplier=vendor,
                        primary_package_purpose=PackagePurpose.CONTAINER,
                        license_concluded=SpdxNoAssertion(), license_declared=SpdxNoAssertion(),
                        copyright_text=SpdxNoAssertion(),
                        comment=f"Runtime {image['version']} ({image['flavor']}), line "
                                f"{image['line']}")
    pkgs, relationships, annotations = [image_pkg], [], []
    extracted: dict[str, str] = {}
    relationships.append(Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES,
                                      "SPDXRef-image"))
    for p in packages(facts):
        sid = f"SPDXRef-{p['id']}"
        refs = [ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl",
                                   p["purl"])] if p["purl"] else []
        pkgs.append(Package(
            sid, p["name"], p["url"] or SpdxNoAssertion(), version=p["version"],
            file_name=p.get("filename"), files_analyzed=False,
            checksums=[Checksum(ChecksumAlgorithm.SHA256, p["sha256"])] if p["sha256"] else [],
            license_concluded=SpdxNoAssertion(), license_declared=license_of(p["license"]),
            copyright_text=SpdxNoAssertion(), external_references=refs,
            supplier=actor(p["supplier"]),
            comment="no Maintainer or Author in its METADATA: the supplier is the PyPI project"
            if p.get("supplier_unnamed") else None,
            summary=p.get("summary") or None, license_comment=p.get("license_comment") or None,
            primary_package_purpose=PackagePurpose.LIBRARY if p["kind"] != "module"
            else PackagePurpose.APPLICATION))
        extracted.update(p["license_refs"])
        relationships.append(Relationship("SPDXRef-image", RelationshipType.CONTAINS, sid))
        for dep in p["depends"]:
            relationships.append(Relationship(sid, RelationshipType.DEPENDS_ON, f"SPDXRef-{dep}"))
        for v in p.get("vendored", []):
            vid = f"SPDXRef-{v['id']}"
            pkgs.append(Package(
                vid, v["name"], SpdxNoAssertion(), version=v["version"], files_analyzed=False,
                supplier=actor(v["supplier"]),
                license_concluded=SpdxNoAssertion(), license_declared=license_of(v["license"]),
                copyright_text=SpdxNoAssertion(),
                external_references=[ExternalPackageRef(
                    ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", v["purl"])],
                comment=f"vendored inside {p['name']} ({v['path']})"))
            extracted.update(v["license_refs"])
            relationships.append(Relationship(sid, RelationshipType.CONTAINS, vid))
        patched = p.get("patched")
        if patched:
            up = f"SPDXRef-{p['id']}-upstream"
            pkgs.append(Package(
                up, p["name"], p["url"], version=patched["upstream_version"],
                file_name=patched["upstream_filename"], files_analyzed=False,
                supplier=actor(p["supplier"]),
                checksums=[Checksum(ChecksumAlgorithm.SHA256, patched["upstream_sha256"])],
                license_concluded=SpdxNoAssertion(), license_declared=license_of(p["license"]),
                copyright_text=SpdxNoAssertion(),
                external_references=[ExternalPackageRef(
                    ExternalPackageRefCategory.PACKAGE_MANAGER, "purl",
                    pypi_purl(p["name"], patched["upstream_version"]))],
                comment="The upstream release the image's copy was patched from; not in the "
                        "image as such."))
            relationships.append(Relationship(sid, RelationshipType.VARIANT_OF, up,
                                              comment="upstream wheel with backported patches"))
            for patch in patched["patches"]:
                annotations.append(Annotation(
                    sid, AnnotationType.OTHER, tool, created,
                    f"patch applied: {patch['path']} sha256:{patch['sha256']}"
                    + (f" (backports {', '.join(patch['upstream'])})"
                       if patch["upstream"] else "")))
    extracted_infos = [ExtractedLicensingInfo(lid, text or lid, lid.removeprefix("LicenseRef-"))
                       for lid, text in sorted(extracted.items())]
    document = Document(info, packages=pkgs, relationships=relationships,
                        annotations=annotations, extracted_licensing_info=extracted_infos)
    stream = io.StringIO()
    write_document_to_stream(document, stream, validate=False)
    return (json.dumps(json.loads(stream.getvalue()), indent=1, sort_keys=True) + "\n").encode()


# --- CycloneDX 1.5 -------------------------------------------------------------------------

def cyclonedx_json(facts: dict, image: dict) -> bytes:
    """The CycloneDX 1.5 JSON BOM (written by cyclonedx-python-lib)."""
    from cyclonedx.model import AttachedText, HashAlgorithm, HashType, Property, XsUri
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import (Component, ComponentType, Diff, Patch,
                                           PatchClassification, Pedigree)
    from cyclonedx.model.contact import OrganizationalContact, OrganizationalEntity
    from cyclonedx.model.issue import IssueClassification, IssueType
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
    from cyclonedx.output.json import JsonV1Dot5
    from packageurl import PackageURL

    identity = seed(facts, image)
    repo, _, tag = image["reference"].rpartition(":")
    def entity(who: tuple[str, str, str | None]) -> OrganizationalEntity:
        kind, name, email = who
        return OrganizationalEntity(name=name, contacts=[OrganizationalContact(
            name=name if kind == "Person" else None, email=email)] if email else [])

    root = Component(name=repo, version=tag, type=ComponentType.CONTAINER, bom_ref="image",
                     supplier=entity(("Organization", VENDOR, None)),
                     description=f"Runtime {image['version']} ({image['flavor']})")

    def licenses_of(p):
        if p["license"] == licenses.NOASSERTION:
            return []
        if p["license"].startswith("LicenseRef-") and " " not in p["license"]:
            text = p["license_refs"].get(p["license"], "")
            return [DisjunctiveLicense(name=p["license"].removeprefix("LicenseRef-"),
                                       text=AttachedText(content=text) if text else None)]
        return [LicenseExpression(p["license"])]

    components = {}
    for p in packages(facts):
        props = [Property(name="runtime:kind", value=p["kind"])]
        if p.get("arch"):
            props.append(Property(name="runtime:arch", value=p["arch"]))
        if p.get("license_comment"):
            props.append(Property(name="runtime:license-comment", value=p["license_comment"]))
        if p.get("installed_wheel") and p["installed_wheel"]["sha256"] != p["sha256"]:
            props.append(Property(name="runtime:installed-wheel-sha256",
                                  value=p["installed_wheel"]["sha256"]))
        pedigree = None
        patched = p.get("patched")
        if patched:
            ancestor = Component(
                name=p["name"], version=patched["upstream_version"],
                purl=PackageURL.from_string(pypi_purl(p["name"], patched["upstream_version"])),
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=patched["upstream_sha256"])],
                bom_ref=f"{p['id']}-upstream")
            pedigree = Pedigree(ancestors=[ancestor], patches=[
                Patch(type=PatchClassification.BACKPORT,
                      diff=Diff(text=AttachedText(content=patch["text"]),
                                url=XsUri(patch["path"])),
                      resolves=[IssueType(type=IssueClassification.DEFECT, id=u)
                                for u in patch["upstream"]])
                for patch in patched["patches"]],
                notes=f"apache-airflow {patched['upstream_version']} with "
                      f"{len(patched['patches'])} backported patch(es)")
        components[p["id"]] = Component(
            name=p["name"], version=p["version"], bom_ref=p["id"], supplier=entity(p["supplier"]),
            type=ComponentType.LIBRARY if p["kind"] != "module" else ComponentType.APPLICATION,
            purl=PackageURL.from_string(p["purl"]) if p["purl"] else None,
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=p["sha256"])]
            if p["sha256"] else [], licenses=licenses_of(p), properties=props,
            description=p.get("summary") or None, pedigree=pedigree,
            components=[Component(
                name=v["name"], version=v["version"], bom_ref=v["id"],
                purl=PackageURL.from_string(v["purl"]), supplier=entity(v["supplier"]),
                licenses=licenses_of(v) if v["license"] != licenses.NOASSERTION else [],
                properties=[Property(name="runtime:vendored-path", value=v["path"])])
                for v in p.get("vendored", [])])
    bom = Bom(serial_number=uuid.UUID(hex=identity[:32], version=5),
              metadata=BomMetaData(component=root,
                                   timestamp=datetime.fromtimestamp(image["epoch"],
                                                                    timezone.utc)),
              components=list(components.values()))
    bom.register_dependency(root, list(components.values()))
    for p in packages(facts):
        if p["depends"]:
            bom.register_dependency(components[p["id"]],
                                    [components[d] for d in p["depends"]])
        else:
            bom.register_dependency(components[p["id"]], [])
    text = JsonV1Dot5(bom).output_as_string(indent=None)
    data = json.loads(text)
    # the library adds itself as a tool (name and version): kept, they are inputs of the action
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
