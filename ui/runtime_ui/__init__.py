"""Airflow plugin of the Runtime: the Runtime version, Airflow version and image tag (with a
short digest) in the footer of every page, and a "Runtime" menu of resource links."""
