"""The remote log store: an S3-compatible bucket reached with the Runtime's own credentials.

Never the tasks' AWS settings: the client is built from RUNTIME_LOG_S3_* values only (keys,
endpoint and region passed explicitly), so a task's environment or boto3 default session does
not change where logs go, and the task never sees these credentials through boto3's defaults.

Layout under ``<prefix>/<log path>``: the whole log once the try has ended, and while it runs
``<log path>.chunks/<session>/<start>-<end>`` objects, each holding bytes [start, end) of the
local file (zero-padded offsets: the same range always has the same key, so shipping twice
duplicates nothing; one session per run of the try on one worker).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class StoreConfig:
    bucket: str
    prefix: str
    endpoint_url: str | None
    access_key_id: str | None
    secret_access_key: str | None
    region: str

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        bucket = env.get("RUNTIME_LOG_S3_BUCKET", "")
        if not bucket:
            return None
        return cls(bucket, env.get("RUNTIME_LOG_S3_PREFIX", "task-logs").strip("/"),
                   env.get("RUNTIME_LOG_S3_ENDPOINT_URL") or None,
                   env.get("RUNTIME_LOG_S3_ACCESS_KEY_ID") or None,
                   env.get("RUNTIME_LOG_S3_SECRET_ACCESS_KEY") or None,
                   env.get("RUNTIME_LOG_S3_REGION", "us-east-1"))


class S3Store:
    """The client is made on first use: a process that never ships nor reads (the task's own
    process) never imports boto3 for it.

    One request per call (``total_max_attempts``: botocore's legacy mode read the former
    ``{"max_attempts": 1}`` as one retry, so a hung store cost two timeouts per call, and a
    try's exit about 20 s): the spool retries by itself, with backoff.
    """

    def __init__(self, config: StoreConfig, timeout: float = 5.0):
        self.config, self.timeout = config, timeout
        self._client = None
        self._lock = threading.Lock()

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                import boto3.session
                from botocore.config import Config

                c = self.config
                session = boto3.session.Session(aws_access_key_id=c.access_key_id,
                                                 aws_secret_access_key=c.secret_access_key,
                                                 region_name=c.region)
                self._client = session.client(
                    "s3", endpoint_url=c.endpoint_url,
                    config=Config(connect_timeout=self.timeout, read_timeout=self.timeout,
                                  retries={"total_max_attempts": 1},
                                  s3={"addressing_style": "path"}))
            return self._client

    def key(self, rel: str) -> str:
        return f"{self.config.prefix}/{rel}" if self.config.prefix else rel

    def put_chunk(self, rel: str, session: str, start: int, data: bytes) -> None:
        key = f"{self.key(rel)}.chunks/{session}/{start:015d}-{start + len(data):015d}"
        self.client.put_object(Bucket=self.config.bucket, Key=key, Body=data)

    def put_whole(self, rel: str, data: bytes) -> None:
        """The try's whole log. A log already there that this one does not start with (an
        earlier run of a rescheduled try, on another worker) is kept in front of it."""
        old, complete = self.read(rel)
        if complete and old and not data.startswith(old):
            data = old + data
        self.client.put_object(Bucket=self.config.bucket, Key=self.key(rel), Body=data)

    def read(self, rel: str):
        """(bytes, complete) from the store, or (None, False) when it holds nothing of it."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.config.bucket, Key=self.key(rel))["Body"]
            return body.read(), True
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
        prefix = f"{self.key(rel)}.chunks/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.config.bucket, Prefix=prefix)
        keys = [obj["Key"][len(prefix):] for page in pages for obj in page.get("Contents", [])]
        if not keys:
            return None, False
        session = max(k.split("/")[0] for k in keys)  # the latest run's (time-prefixed)
        ranges = sorted((tuple(int(x) for x in k.split("/")[1].split("-")), prefix + k)
                        for k in keys if k.startswith(f"{session}/"))
        out = bytearray()
        for (start, end), key in ranges:
            if end <= len(out) or start > len(out):
                continue  # already have it / a gap (never shipped out of order)
            data = self.client.get_object(Bucket=self.config.bucket, Key=key)["Body"].read()
            out += data[len(out) - start:]
        return bytes(out), False
