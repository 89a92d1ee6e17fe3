#!/bin/bash
# Runtime image entrypoint (PID 1 is dumb-init, which forwards signals). `docker run IMAGE` with
# no arguments prints Airflow's help; a first argument that is an Airflow sub-command
# (`webserver`, `scheduler`, `celery`, ...: Airflow's meaning wins over a program of that name)
# runs `airflow` with it; `airflow ...`, `bash`, `python` and any other command run as given.
# Before an Airflow server starts (scheduler, webserver, triggerer, dag-processor, celery), the
# metadata database (and, with Celery, the broker) must answer within RUNTIME_WAIT_TIMEOUT
# seconds (default 120, 0 = do not wait); RUNTIME_MIGRATE_DB=true then runs `airflow db upgrade`.
set -euo pipefail
if [ $# -eq 0 ]; then
  set -- airflow --help
fi
case "$1" in
  airflow) ;;
  celery|cheat-sheet|config|connections|dag-processor|dags|db|info|jobs|kerberos|kubernetes|\
  plugins|pools|providers|roles|rotate-fernet-key|scheduler|standalone|sync-perm|tasks|\
  triggerer|users|variables|version|webserver|-h|--help)
    set -- airflow "$@" ;;
  *)
    if command -v -- "$1" >/dev/null 2>&1 || [[ "$1" == */* ]]; then
      exec "$@"
    fi
    set -- airflow "$@" ;;
esac
case "${2:-}" in
  scheduler|webserver|triggerer|dag-processor|celery)
    python3.9 -m astro_runtime.wait "$@"
    case "${RUNTIME_MIGRATE_DB:-false}" in
      true|True|TRUE|1|yes) echo "runtime: airflow db upgrade" >&2; airflow db upgrade ;;
    esac ;;
esac
exec "$@"
