#!/bin/bash
# Runtime image entrypoint (PID 1 is dumb-init). `docker run IMAGE` with no arguments prints
# Airflow's help; `airflow ...`, `bash`, `python` and any other command run as given; a first
# argument that is an Airflow sub-command (`webserver`, `scheduler`, ...) runs `airflow` with it.
set -euo pipefail
if [ $# -eq 0 ]; then
  set -- airflow --help
fi
case "$1" in
  airflow|bash|sh|python|python3|python3.9|pip|pip3|runtime-*|/*|./*) exec "$@" ;;
esac
if command -v -- "$1" >/dev/null 2>&1; then
  exec "$@"
fi
exec airflow "$@"
