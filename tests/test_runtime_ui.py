"""The UI plugin's footer and links, offline (the plugin itself is checked in a browser)."""

import sys

from tests.fixtures import REPO

sys.path.insert(0, str(REPO / "ui"))
from runtime_ui import footer, links  # noqa: E402


def test_footer_prefers_the_deployments_values():
    values = footer.facts({"ASTRONOMER_RUNTIME_VERSION": "4.2.0", "RUNTIME_IMAGE_TAG": "r/a:1",
                           "RUNTIME_IMAGE_DIGEST": "sha256:" + "ab" * 32}, "2.2.4")
    assert values == {"runtime_version": "4.2.0", "airflow_version": "2.2.4", "image": "r/a:1",
                      "digest": "abababababab"}
    html = footer.footer_html(values)
    assert html.startswith('<footer id="runtime-footer"')
    assert "Astronomer Runtime 4.2.0 · Apache Airflow 2.2.4 · image r/a:1" in html


def test_footer_escapes_and_goes_before_the_last_body_end():
    values = {"runtime_version": "1", "airflow_version": "2", "image": "<x>", "digest": ""}
    page = "<html><body><p>a</p></body></html>"
    out = footer.insert(page, footer.footer_html(values))
    assert out.endswith("image &lt;x&gt;</footer></body></html>")
    assert footer.insert(out, footer.footer_html(values)) is out  # never twice
    assert footer.insert("plain text", "<footer/>") == "plain text"


def test_links_in_one_place_and_overridable():
    assert links.links({}) == links.LINKS
    custom = links.links({"RUNTIME_UI_LINKS": '[{"name": "Wiki", "href": "https://w"}]'})
    assert custom == [{"name": "Wiki", "href": "https://w"}]
    assert links.links({"RUNTIME_UI_LINKS": "not json"}) == links.LINKS
