"""rules.attest.sbom on small made-up inputs: facts from a layer and wheels, then SPDX 2.3 that
spdx-tools validates and CycloneDX 1.5 that its JSON schema accepts, byte-identical twice.
(The SBOMs of the real image: tests/rules/attest/test_image_attestations.py.)"""

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from rules.attest import sbom
from rules.fetch.pypi_files import Chosen
from tests.fixtures import make_wheel
from tests.rules.attest.test_licenses import DEP5

EPOCH = 1646179200


def layer(folder, entries) -> object:
    """A tar.gz layer: name -> bytes (a file) or ('->', target) (a symbolic link)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, value in entries.items():
            info = tarfile.TarInfo(name)
            if isinstance(value, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, value[1]
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    path = folder / "layer.tar.gz"
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    return path


@pytest.fixture
def facts(tmp_path):
    base = layer(tmp_path, {"usr/share/doc/liba1/copyright": DEP5.encode(),
                            "usr/share/doc/liba-dev": ("->", "liba1"),
                            "./usr/share/doc/tool/copyright": b"free form; see "
                            b"/usr/share/common-licenses/GPL-2.\n"})
    debs = [{"name": "liba1", "version": "1.0-1", "arch": "amd64", "sha256": "a" * 64,
             "url": "http://deb.example/liba1.deb", "depends": []},
            {"name": "liba-dev", "version": "1.0-1", "arch": "amd64", "sha256": "b" * 64,
             "url": "http://deb.example/liba-dev.deb", "depends": ["liba1"]},
            {"name": "tool", "version": "2:3.0", "arch": "all", "sha256": "c" * 64,
             "url": "http://deb.example/tool.deb", "depends": ["liba1", "gone"]},
            {"name": "liba-tools", "version": "1.0-1", "arch": "amd64", "sha256": "f" * 64,
             "url": "http://deb.example/liba-tools.deb", "depends": [], "source": "liba"}]
    debs[0]["source"] = "liba"
    wheels, chosen = {}, []
    for name, version, requires in (("Apache-Airflow", "2.2.4+runtime.1",
                                     ["six>=1", "pywin32; sys_platform == 'win32'",
                                      "extra-only; extra == 'x'"]),
                                    ("six", "1.16.0", [])):
        vendored = {"six/_vendor/foo-1.0.dist-info/METADATA":
                    "Metadata-Version: 2.1\nName: foo\nVersion: 1.0\nLicense: MIT\n"}
        wheel = make_wheel(tmp_path / "wheels", name, version, requires,
                           code=vendored if name == "six" else None)
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        wheels[name.lower()] = (wheel, wheel.name, sha)
        upstream = version.split("+")[0]
        chosen.append(Chosen(name.lower(), upstream, f"{name}-{upstream}.whl", "d" * 64,
                             f"https://files.example/{name}.whl", "wheel"))
    patches = {"version": "2.2.4+runtime.1", "patches": [
        {"path": "runtime/patches/2.2.4/0001-x.patch", "sha256": "e" * 64,
         "text": "--- a/x\n+++ b/x\n", "upstream": ["apache/airflow#1"]}]}
    return {"recipe": 1,
            "debian": sbom.debian_facts(debs, base),
            "python": sbom.python_facts(chosen, wheels, patches),
            "modules": [{"name": "runtime-ui", "version": "1.0.0", "module": "ui",
                         "summary": "UI"}]}


IMAGE = {"reference": "runtime:4.2.1", "line": "4.2", "version": "4.2.1", "flavor": "onbuild",
         "epoch": EPOCH}


def test_facts(facts):
    debs = {d["name"]: d for d in facts["debian"]}
    assert debs["liba-dev"]["license"] == debs["liba1"]["license"]  # the doc folder link
    assert debs["liba1"]["license"].startswith("GPL-2.0-or-later AND")
    assert debs["tool"]["license"] == "NOASSERTION"
    assert debs["tool"]["license_comment"] == ("copyright file not machine-readable; it "
                                               "refers to /usr/share/common-licenses/ GPL-2")
    assert debs["liba-tools"]["license"] == debs["liba1"]["license"]  # same source package
    assert debs["liba-tools"]["copyright_file"] == "liba1"
    assert debs["tool"]["depends"] == ["gone", "liba1"]
    py = {p["canonical"]: p for p in facts["python"]}
    assert py["apache-airflow"]["depends"] == ["six"]  # markers and extras left out
    assert py["apache-airflow"]["version"] == "2.2.4+runtime.1"
    assert py["apache-airflow"]["patched"]["upstream_version"] == "2.2.4"


def test_spdx_validates_and_says_what_the_image_holds(facts, tmp_path):
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    data = sbom.spdx_json(facts, IMAGE)
    assert data == sbom.spdx_json(facts, IMAGE)  # no clock, no random
    path = tmp_path / "sbom.spdx.json"
    path.write_bytes(data)
    assert [m.validation_message for m in validate_full_spdx_document(parse_file(str(path)))
            ] == []
    doc = json.loads(data)
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["creationInfo"]["created"] == \
        "2022-03-02T00:00:00Z"
    packages = {p["SPDXID"]: p for p in doc["packages"]}
    tool = packages["SPDXRef-deb-tool-all"]
    assert tool["externalRefs"][0]["referenceLocator"] == \
        "pkg:deb/debian/tool@2:3.0?arch=all&distro=debian-11"
    assert tool["checksums"] == [{"algorithm": "SHA256", "checksumValue": "c" * 64}]
    rel = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
           for r in doc["relationships"]}
    assert ("SPDXRef-image", "CONTAINS", "SPDXRef-pypi-six") in rel
    assert ("SPDXRef-pypi-apache-airflow", "DEPENDS_ON", "SPDXRef-pypi-six") in rel
    assert ("SPDXRef-deb-tool-all", "DEPENDS_ON", "SPDXRef-deb-liba1-amd64") in rel
    assert ("SPDXRef-pypi-apache-airflow", "VARIANT_OF",
            "SPDXRef-pypi-apache-airflow-upstream") in rel
    assert ("SPDXRef-image", "CONTAINS", "SPDXRef-pypi-apache-airflow-upstream") not in rel
    airflow = packages["SPDXRef-pypi-apache-airflow"]
    assert any("0001-x.patch" in a["comment"] for a in airflow["annotations"])
    # a distribution vendored inside another: contained by it, not by the image
    assert ("SPDXRef-pypi-six", "CONTAINS", "SPDXRef-pypi-six-vendored-foo") in rel
    assert ("SPDXRef-image", "CONTAINS", "SPDXRef-pypi-six-vendored-foo") not in rel
    assert packages["SPDXRef-pypi-six-vendored-foo"]["licenseDeclared"] == "MIT"
    assert packages["SPDXRef-pypi-apache-airflow"]["externalRefs"][0]["referenceLocator"] == \
        "pkg:pypi/apache-airflow@2.2.4%2Bruntime.1"


def test_cyclonedx_validates_with_pedigree(facts):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    data = sbom.cyclonedx_json(facts, IMAGE)
    assert data == sbom.cyclonedx_json(facts, IMAGE)
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(data.decode()) is None
    bom = json.loads(data)
    assert bom["specVersion"] == "1.5" and bom["metadata"]["timestamp"].startswith("2022-03-02")
    assert bom["serialNumber"].startswith("urn:uuid:")
    other = json.loads(sbom.cyclonedx_json(facts, {**IMAGE, "flavor": "base"}))
    assert other["serialNumber"] != bom["serialNumber"]  # derived from content
    airflow = next(c for c in bom["components"] if c["name"] == "Apache-Airflow")
    assert airflow["pedigree"]["ancestors"][0]["version"] == "2.2.4"
    assert airflow["pedigree"]["patches"][0]["type"] == "backport"
    six = next(c for c in bom["components"] if c["name"] == "six")
    assert [(c["name"], c["purl"]) for c in six["components"]] == [("foo",
                                                                   "pkg:pypi/foo@1.0")]
    deps = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
    assert deps["pypi-apache-airflow"] == ["pypi-six"]


@pytest.mark.parametrize("field, expected", [
    ("Debian Python Team <team+python@tracker.debian.org>",
     ("Organization", "Debian Python Team", "team+python@tracker.debian.org")),
    ("Guillem Jover <guillem@debian.org>", ("Person", "Guillem Jover", "guillem@debian.org")),
    ("Jane <jane@google.com>", ("Person", "Jane", "jane@google.com")),  # (not by the domain)
    ("Foo <not an email>", ("Person", "Foo", None)),
    ("", ("Organization", "PyPI project x", None)),
])
def test_the_supplier_of_a_debian_maintainer_field(field, expected):
    assert sbom.supplier(field, "PyPI project x") == expected


@pytest.mark.parametrize("raw, expected", [
    ({"author": "Doe, John", "author_email": '"Doe, John" <john@example.com>'},
     ("Person", "Doe, John", "john@example.com")),
    ({"author_email": '"Doe, John" <john@example.com>, B <b@example.org>'},
     ("Person", "Doe, John", "john@example.com")),
    ({"maintainer": "Pallets", "maintainer_email": "contact@palletsprojects.com",
      "author": "Armin Ronacher"}, ("Person", "Pallets", "contact@palletsprojects.com")),
    ({"author": "Google LLC", "author_email": "googleapis-packages@google.com"},
     ("Organization", "Google LLC", "googleapis-packages@google.com")),
    ({"author_email": "me@example.org"}, ("Person", "me@example.org", "me@example.org")),
    ({"author": "Foo (Bar)", "author_email": "foo bar@baz"}, ("Person", "Foo Bar", None)),
    ({"author": "UNKNOWN"}, ("Organization", "PyPI project x", None)),
    ({}, ("Organization", "PyPI project x", None)),
])
def test_the_supplier_of_a_python_distribution(raw, expected):
    assert sbom.supplier(sbom._named(raw), "PyPI project x") == expected


def test_odd_suppliers_still_give_documents_that_validate(facts):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    odd = json.loads(json.dumps(facts))
    odd["python"][0]["supplier"] = sbom._named({"author": 'John "JD" Doe (x) <y>',
                                                "author_email": "Foo <not an email>"})
    odd["debian"][0]["maintainer"] = "Bob <bob@x>> (comment)"
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(
        sbom.cyclonedx_json(odd, IMAGE).decode()) is None
