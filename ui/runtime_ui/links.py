"""The one place the Runtime menu's links are configured. A deployment may replace them with
RUNTIME_UI_LINKS, a JSON list of {"name": ..., "href": ...}.

Every page renders these links, so a deployment's value must not be able to run script in the
UI: an href must be http:, https: or relative (no javascript:, data:, ... and no whitespace or
control characters, which browsers strip from a scheme: "java\\tscript:" is javascript:), and a
name is text, escaped by us (Flask-AppBuilder renders ``{{ _(item.label) }}``, and Flask-Babel's
gettext marks the label safe, so Jinja's escaping never applies to it). An unsafe entry stops
the webserver at container start (``python -m runtime_ui.links``, run by the entrypoint before
`webserver`, prints one line naming the entry and exits 1); a webserver started another way
leaves the unsafe entries out of the menu and says so on stderr. A value that is not a JSON list
of {name, href} means the default links (as before), with a message.
"""

import html
import json
import os
import sys
from urllib.parse import urlsplit

MENU = "Runtime"
LINKS = [
    {"name": "Documentation", "href": "https://docs.astronomer.io/astro/runtime-release-notes"},
    {"name": "Release notes", "href": "https://docs.astronomer.io/astro/runtime-release-notes"},
    {"name": "Airflow documentation", "href": "https://airflow.apache.org/docs/"},
    {"name": "Support", "href": "https://support.astronomer.io"},
]
SCHEMES = ("http", "https")


class LinksError(ValueError):
    """RUNTIME_UI_LINKS has an unsafe entry (the message is one line naming it)."""

    def __init__(self, message, safe):
        super().__init__(message)
        self.safe = safe  # the entries that passed


def _chosen(env) -> list[dict]:
    raw = env.get("RUNTIME_UI_LINKS")
    if not raw:
        return LINKS
    try:
        chosen = json.loads(raw)
        if isinstance(chosen, list) and all(isinstance(c, dict) and {"name", "href"} <= set(c)
                                            for c in chosen):
            return [{"name": str(c["name"]), "href": str(c["href"])} for c in chosen]
    except ValueError:
        pass
    print("runtime_ui: RUNTIME_UI_LINKS is not a JSON list of {name, href}; default links used",
          file=sys.stderr)
    return LINKS


def safe_href(href: str) -> bool:
    if not href or any(ord(ch) <= 0x20 or ord(ch) == 0x7f for ch in href):
        return False
    try:
        parts = urlsplit(href)
    except ValueError:
        return False
    if parts.scheme:
        return parts.scheme.lower() in SCHEMES and bool(parts.netloc)
    return ":" not in href.split("/", 1)[0]  # (a relative path's first segment has no colon)


def links(env=os.environ) -> list[dict]:
    """The menu's links; LinksError when RUNTIME_UI_LINKS has an unsafe href."""
    chosen = _chosen(env)
    safe = [link for link in chosen if safe_href(link["href"])]
    for number, link in enumerate(chosen, start=1):
        if link not in safe:
            raise LinksError(f"RUNTIME_UI_LINKS entry {number} {json.dumps(link)}: href must be "
                             f"http:, https: or relative", safe)
    return chosen


def safe_links(env=os.environ) -> list[dict]:
    """The links the plugin shows: the unsafe ones left out, with the message on stderr."""
    try:
        return links(env)
    except LinksError as e:
        print(f"runtime_ui: {e}; that entry is left out of the menu", file=sys.stderr)
        return e.safe


def menu_label(name: str) -> str:
    """The name as Flask-AppBuilder's menu template must get it: HTML-escaped, % doubled (the
    label goes through ``Markup(label) % {}``)."""
    return html.escape(name).replace("%", "%%")


def main() -> int:
    """The entrypoint's check before the webserver starts."""
    try:
        links()
    except LinksError as e:
        print(f"runtime: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
