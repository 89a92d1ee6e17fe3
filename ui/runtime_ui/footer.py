"""What the footer says, and how it is put into a page.

The image tag and digest of the running deployment come from RUNTIME_IMAGE_TAG and
RUNTIME_IMAGE_DIGEST when the deployment sets them, else from what the build baked into the
image (/usr/local/share/runtime/version.json); the Runtime version likewise from
ASTRONOMER_RUNTIME_VERSION, else the file.
"""

import html
import json
import os

VERSION_FILE = "/usr/local/share/runtime/version.json"
FOOTER_ID = "runtime-footer"
STYLE = ("clear:both;text-align:center;font-size:12px;line-height:1.6;color:#51504f;"
         "padding:12px 0 16px 0;")


def _baked() -> dict:
    try:
        with open(VERSION_FILE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def facts(env=os.environ, airflow_version: str = "") -> dict:
    baked = _baked()
    digest = env.get("RUNTIME_IMAGE_DIGEST", "")
    return {
        "runtime_version": env.get("ASTRONOMER_RUNTIME_VERSION") or
        baked.get("runtime_version", "unknown"),
        "airflow_version": airflow_version or baked.get("airflow_version", "unknown"),
        "image": env.get("RUNTIME_IMAGE_TAG") or baked.get("image", "unknown"),
        "digest": digest.split(":", 1)[-1][:12] if digest else "",
    }


def footer_html(values: dict) -> str:
    image = html.escape(values["image"])
    if values["digest"]:
        image += f' <span class="runtime-digest">({html.escape(values["digest"])})</span>'
    return (f'<footer id="{FOOTER_ID}" style="{STYLE}">'
            f'Astronomer Runtime {html.escape(values["runtime_version"])} · '
            f'Apache Airflow {html.escape(values["airflow_version"])} · '
            f'image {image}</footer>')


def insert(page: str, footer: str) -> str:
    """The page with the footer just before its last </body> (unchanged without one, or when
    it already has it)."""
    at = page.rfind("</body>")
    if at < 0 or f'id="{FOOTER_ID}"' in page:
        return page
    return page[:at] + footer + page[at:]
