"""The Airflow plugin (entry point `airflow.plugins`): a blueprint whose after-request hook adds
the footer to every HTML page the webserver renders (login and error pages included; Airflow
gzips some views, such as the tree view, itself), and the "Runtime" menu (safe hrefs only, names
escaped: see links.py)."""

import gzip

from airflow.plugins_manager import AirflowPlugin
from airflow.version import version as AIRFLOW_VERSION
from flask import Blueprint

from runtime_ui import footer, links

blueprint = Blueprint("runtime_ui", __name__)


@blueprint.after_app_request
def add_footer(response):
    encoding = response.headers.get("Content-Encoding", "")
    if response.mimetype != "text/html" or response.direct_passthrough or \
            response.is_streamed or encoding not in ("", "gzip"):
        return response
    try:
        raw = response.get_data()
        page = (gzip.decompress(raw) if encoding else raw).decode(response.charset or "utf-8")
    except (OSError, UnicodeDecodeError, EOFError):
        return response  # never break a page for the footer's sake
    changed = footer.insert(page, footer.footer_html(footer.facts(
        airflow_version=AIRFLOW_VERSION)))
    if changed is not page:
        body = changed.encode(response.charset or "utf-8")
        response.set_data(gzip.compress(body, mtime=0) if encoding else body)
    return response


class RuntimeUIPlugin(AirflowPlugin):
    name = "runtime_ui"
    flask_blueprints = [blueprint]
    # name: the menu item's permission (Flask-AppBuilder's menu_access); label: what is shown
    appbuilder_menu_items = [{"name": link["name"], "label": links.menu_label(link["name"]),
                              "href": link["href"], "category": links.MENU}
                             for link in links.safe_links()]
