"""Provider configuration baked into the image: OpenLineage's default configuration (the lineage
backend of Airflow 2.1/2.2 in lineage.py, the listener switch of Airflow 2.3 in plugin.py)."""
