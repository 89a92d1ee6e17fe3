"""The image's logging, plus the scheduler job's debug lines ("Ran scheduling loop in X
seconds": Airflow 2.2 has no metric for it). Used by tools/bench_workload.py only."""

from copy import deepcopy

from runtime_logging.config import LOGGING_CONFIG as IMAGE_CONFIG

LOGGING_CONFIG = deepcopy(IMAGE_CONFIG)
LOGGING_CONFIG["loggers"]["airflow.jobs.scheduler_job"] = {"level": "DEBUG"}
