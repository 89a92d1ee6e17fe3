"""The providers module's Airflow plugin (entry point `airflow.plugins`).

openlineage-airflow 0.8.x on Airflow 2.3 registers a listener through its own plugin, active
whenever installed. Without an endpoint it logs an error ("Did not find openlineage.yml and
OPENLINEAGE_URL is not set") and prints every event into the task logs. Loading this plugin
switches that listener off unless openlineage is configured: OPENLINEAGE_URL or MARQUEZ_URL
set, or an openlineage.yml that openlineage itself finds (OPENLINEAGE_CONFIG, the working
folder, ~/.openlineage). Airflow adds the plugins' listeners only once every plugin is loaded,
so emptying the list here is in time. Older openlineage-airflow has no listener: nothing to do
(their lineage backend is set by the entrypoint only when OPENLINEAGE_URL is set)."""

from airflow.plugins_manager import AirflowPlugin

from runtime_providers.lineage import configured


def _listener_off_unless_configured():
    if configured():
        return
    try:
        from openlineage.airflow.plugin import OpenLineagePlugin
        from openlineage.client.transport.factory import DefaultTransportFactory
    except ImportError:  # openlineage-airflow 0.2.x / 0.5.x: no listener
        return
    try:
        if DefaultTransportFactory._find_yaml():
            return
    except Exception:
        return
    if getattr(OpenLineagePlugin, "listeners", None):
        OpenLineagePlugin.listeners = []


_listener_off_unless_configured()


class RuntimeProvidersPlugin(AirflowPlugin):
    name = "runtime_providers"
