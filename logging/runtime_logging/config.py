"""``[logging] logging_config_class`` of Runtime images: Airflow's default configuration with
the task handler replaced by the Runtime's (which ships to the store when RUNTIME_LOG_S3_BUCKET
is set, and is Airflow's file handler otherwise)."""

import os
from copy import deepcopy

from airflow.config_templates.airflow_local_settings import DEFAULT_LOGGING_CONFIG

LOGGING_CONFIG = deepcopy(DEFAULT_LOGGING_CONFIG)
LOGGING_CONFIG["handlers"]["task"]["class"] = (
    "runtime_logging.handler.RuntimeJsonTaskHandler"
    if os.environ.get("RUNTIME_LOG_STDOUT_JSON", "").lower() == "true"
    else "runtime_logging.handler.RuntimeTaskHandler")
