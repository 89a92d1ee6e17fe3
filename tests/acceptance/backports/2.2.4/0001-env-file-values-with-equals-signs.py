"""Check for apache/airflow#21694 (issue #21625), fixed in Airflow 2.2.5.

The LocalFilesystemBackend .env parser splits lines with maxsplit=2, so a value
that itself contains '=' (e.g. a connection URI with query parameters) is
rejected with AirflowFileParseException.
No metadata DB is touched. Exit 1 = bug present, 0 = fixed.
"""
import os
import sys
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow_home_"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow.exceptions import AirflowFileParseException  # noqa: E402
from airflow.secrets.local_filesystem import LocalFilesystemBackend  # noqa: E402

tmp = tempfile.mkdtemp(prefix="secrets_")
variables_file = os.path.join(tmp, "variables.env")
connections_file = os.path.join(tmp, "connections.env")
with open(variables_file, "w") as f:
    f.write("MY_VAR=a=b=c\n")
with open(connections_file, "w") as f:
    f.write("MY_CONN=postgres://login:pass@my-host:5432/my-schema?param1=val1&param2=val2\n")

backend = LocalFilesystemBackend(variables_file_path=variables_file,
                                 connections_file_path=connections_file)
failed = False

try:
    value = backend.get_variable("MY_VAR")
    if value == "a=b=c":
        print(f"OK: MY_VAR = {value!r}")
    else:
        print(f"BUG: MY_VAR = {value!r}, expected 'a=b=c'")
        failed = True
except AirflowFileParseException as e:
    print(f"BUG: reading variables.env failed: {e}")
    failed = True

try:
    conn = backend.get_connection("MY_CONN")
    expected_extra = {"param1": "val1", "param2": "val2"}
    if conn is not None and conn.host == "my-host" and conn.extra_dejson == expected_extra:
        print(f"OK: MY_CONN host={conn.host!r} extra={conn.extra_dejson!r}")
    else:
        print(f"BUG: MY_CONN parsed wrongly: {conn!r}")
        failed = True
except AirflowFileParseException as e:
    print(f"BUG: reading connections.env failed: {e}")
    failed = True

sys.exit(1 if failed else 0)
