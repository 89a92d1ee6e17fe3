"""The one place the Runtime menu's links are configured. A deployment may replace them with
RUNTIME_UI_LINKS, a JSON list of {"name": ..., "href": ...}."""

import json
import os

MENU = "Runtime"
LINKS = [
    {"name": "Documentation", "href": "https://docs.astronomer.io/astro/runtime-release-notes"},
    {"name": "Release notes", "href": "https://docs.astronomer.io/astro/runtime-release-notes"},
    {"name": "Airflow documentation", "href": "https://airflow.apache.org/docs/"},
    {"name": "Support", "href": "https://support.astronomer.io"},
]


def links(env=os.environ) -> list[dict]:
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
    print("runtime_ui: RUNTIME_UI_LINKS is not a JSON list of {name, href}; default links used")
    return LINKS
