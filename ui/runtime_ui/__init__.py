"""Airflow plugin: Runtime version and image tag in the footer, resource links (Runtime module; built out in its own issue)."""
