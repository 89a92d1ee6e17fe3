"""The UI plugin's footer and links, offline (the plugin itself is checked in a browser)."""

import html
import json
import os
import subprocess
import sys

import pytest

from tests.fixtures import REPO

from runtime_ui import footer, links


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


@pytest.mark.parametrize("href", ["javascript:alert(1)", "JavaScript:alert(1)", " javascript:x",
                                  "java\tscript:x", "data:text/html,<b>", "vbscript:x",
                                  "file:///etc/passwd", "https://a\nb", ""])
def test_unsafe_hrefs_are_refused_with_a_clear_message(href):
    raw = json.dumps([{"name": "Wiki", "href": "https://w"}, {"name": "Bad", "href": href}])
    with pytest.raises(links.LinksError) as refused:
        links.links({"RUNTIME_UI_LINKS": raw})
    message = str(refused.value)
    assert message.startswith("RUNTIME_UI_LINKS entry 2 ") and "\n" not in message
    assert json.dumps(href)[1:-1] in message and "http:, https: or relative" in message
    # the plugin keeps the safe ones only
    assert links.safe_links({"RUNTIME_UI_LINKS": raw}) == [{"name": "Wiki", "href": "https://w"}]


def test_safe_hrefs_pass():
    raw = json.dumps([{"name": n, "href": h} for n, h in (
        ("a", "https://x.example/p?q=1#f"), ("b", "http://x"), ("c", "/home"), ("d", "docs/x"),
        ("e", "HTTPS://X"), ("f", "?q=1"), ("g", "#top"))])
    assert [link["href"] for link in links.safe_links({"RUNTIME_UI_LINKS": raw})] == \
        ["https://x.example/p?q=1#f", "http://x", "/home", "docs/x", "HTTPS://X", "?q=1", "#top"]
    assert links.links({"RUNTIME_UI_LINKS": raw}) == links.safe_links({"RUNTIME_UI_LINKS": raw})


def test_check_at_start_exits_1_naming_the_variable_and_the_entry():
    bad = json.dumps([{"name": "Bad", "href": "javascript:alert(1)"}])
    env = {**os.environ, "RUNTIME_UI_LINKS": bad, "PYTHONPATH": str(REPO / "ui")}
    proc = subprocess.run([sys.executable, "-m", "runtime_ui.links"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        'runtime: RUNTIME_UI_LINKS entry 1 {"name": "Bad", "href": "javascript:alert(1)"}: '
        'href must be http:, https: or relative']
    env["RUNTIME_UI_LINKS"] = json.dumps([{"name": "Wiki", "href": "https://w"}])
    proc = subprocess.run([sys.executable, "-m", "runtime_ui.links"], env=env,
                          capture_output=True, text=True)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_menu_labels_are_escaped_for_flask_appbuilders_template():
    """FAB renders ``{{ _(item.label) }}``: Flask-Babel's new-style gettext marks the result
    safe (Markup) and then formats it with ``%``, so the label must be HTML-escaped, with %
    doubled, by us."""
    label = links.menu_label('<img src=x onerror="alert(1)"> 100% & more')
    assert label == "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; 100%% &amp; more"
    from markupsafe import Markup
    assert str(Markup(label) % {}) == html.escape('<img src=x onerror="alert(1)"> 100% & more')
