"""rules.attest.licenses: Debian copyright files and Python core metadata to SPDX."""

from rules.attest import licenses

DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: thing

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: lib/*
Copyright: 2020 Someone
License: LGPL-2.1+ or BSD-3-clause

Files: contrib/*
Copyright: 2020 Someone
License: public-domain
 Nobody owns this.
"""


def test_debian_short_names():
    assert licenses.debian_short_name("GPL-2+") == "GPL-2.0-or-later"
    assert licenses.debian_short_name("GPL-2") == "GPL-2.0-only"
    assert licenses.debian_short_name("LGPL-2.1+") == "LGPL-2.1-or-later"
    assert licenses.debian_short_name("Expat") == "MIT"
    assert licenses.debian_short_name("BSD-3-clause") == "BSD-3-Clause"
    assert licenses.debian_short_name("permissive-fsf") == "LicenseRef-Debian-permissive-fsf"


def test_machine_readable_copyright():
    expression, refs = licenses.debian_copyright(DEP5)
    assert expression == ("GPL-2.0-or-later AND (LGPL-2.1-or-later OR BSD-3-Clause) AND "
                          "LicenseRef-Debian-public-domain")
    assert refs == {"LicenseRef-Debian-public-domain": "Nobody owns this."}


def test_free_form_copyright_is_noassertion():
    text = "This is Debian's thing.\nSee /usr/share/common-licenses/GPL-2.\n"
    assert licenses.debian_copyright(text) == ("NOASSERTION", {})


def test_python_license_order():
    assert licenses.python_license("MIT", "whatever", [], "a") == ("MIT", {})
    assert licenses.python_license(None, "Apache-2.0", [], "a") == ("Apache-2.0", {})
    assert licenses.python_license(
        None, "Apache License 2.0", ["License :: OSI Approved :: Apache Software License"],
        "a") == ("Apache-2.0", {})
    assert licenses.python_license(None, "BSD", [], "My_Pkg") == (
        "LicenseRef-PyPI-My-Pkg", {"LicenseRef-PyPI-My-Pkg": "BSD"})
    assert licenses.python_license(None, "UNKNOWN", [], "a") == ("NOASSERTION", {})


def test_valid_rejects_unknown_ids_and_accepts_refs():
    assert licenses.valid("MIT OR Apache-2.0") == "MIT OR Apache-2.0"
    assert licenses.valid("NotALicense") is None
    assert licenses.valid("MIT/X11") is None
    assert licenses.valid("LicenseRef-x AND MIT") == "LicenseRef-x AND MIT"
