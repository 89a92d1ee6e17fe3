#!/bin/bash
# Runtime image entrypoint (PID 1 is dumb-init, which forwards signals). `docker run IMAGE` with
# no arguments prints Airflow's help; a first argument that is an Airflow sub-command
# (`webserver`, `scheduler`, `celery`, ...: Airflow's meaning wins over a program of that name)
# runs `airflow` with it; `airflow ...`, `bash`, `python` and any other command run as given.
# Before an Airflow server starts (scheduler, webserver, triggerer, dag-processor, celery), the
# metadata database (and, with Celery, the broker) must answer within RUNTIME_WAIT_TIMEOUT
# seconds (default 120, 0 = do not wait); RUNTIME_MIGRATE_DB=true then runs `airflow db upgrade`.
# RUNTIME_CREATE_ADMIN=true then creates (once) an Admin user from _AIRFLOW_WWW_USER_USERNAME
# (default admin) and _AIRFLOW_WWW_USER_PASSWORD (required).
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
    if ! command -v -- "$1" >/dev/null 2>&1 && [[ "$1" != */* ]]; then
      set -- airflow "$@"
    fi ;;
esac
# Concurrency defaults from this container's CPU and memory limits; what the user set wins
# (`runtime-info` shows the choices). A nonsense value stops Airflow here with a clear message;
# other programs (a debugging shell) still start, after the same message.
# (run from / : `python -m` puts the working directory, the user's project, first on sys.path)
if exports=$(cd / && python3.9 -m astro_runtime.concurrency); then
  eval "$exports"
elif [ "$1" = airflow ]; then
  exit 1
fi
# OpenLineage (providers module, runtime_providers/lineage.py): on Airflow 2.1/2.2 it runs as
# Airflow's lineage backend. With OPENLINEAGE_URL set, use the Runtime's unless the user chose a
# backend (AIRFLOW__LINEAGE__BACKEND, even empty, its _CMD/_SECRET, or [lineage] backend in
# airflow.cfg). Airflow 2.3's openlineage plugin needs nothing here.
if [ -n "${OPENLINEAGE_URL:-}" ] && [[ "${AIRFLOW_VERSION:-}" == 2.[12].* ]] && [ -z \
  "${AIRFLOW__LINEAGE__BACKEND+x}${AIRFLOW__LINEAGE__BACKEND_CMD+x}${AIRFLOW__LINEAGE__BACKEND_SECRET+x}" ] \
  && ! awk '/^\[/ { s = ($0 ~ /^\[lineage\][ \t]*$/) }
            s && /^[ \t]*backend(_cmd|_secret)?[ \t]*=[ \t]*[^ \t]/ { f = 1 } END { exit !f }' \
    "${AIRFLOW_CONFIG:-${AIRFLOW_HOME:-$HOME/airflow}/airflow.cfg}" 2>/dev/null; then
  export AIRFLOW__LINEAGE__BACKEND=runtime_providers.lineage.OpenLineageBackend
fi
[ "$1" = airflow ] || exec "$@"
# Airflow 2.1 (Runtime 3.0) has no triggerer: say so, instead of argparse's "invalid choice".
if [ "${2:-}" = triggerer ] && [[ "${AIRFLOW_VERSION:-}" == 2.1.* ]]; then
  echo "runtime: Airflow $AIRFLOW_VERSION has no triggerer: deferrable operators need" \
    "Runtime 4.0 or later (Airflow 2.2+)" >&2
  exit 2
fi
case "${2:-}" in
  scheduler|webserver|triggerer|dag-processor|celery)
    # the ui module's check: an unsafe RUNTIME_UI_LINKS entry stops the webserver here
    [ "$2" != webserver ] || (cd / && python3.9 -m runtime_ui.links) || exit 1
    (cd / && python3.9 -m astro_runtime.wait "$@")
    case "${RUNTIME_MIGRATE_DB:-false}" in
      true|True|TRUE|1|yes) echo "runtime: airflow db upgrade" >&2; airflow db upgrade ;;
    esac
    case "${RUNTIME_CREATE_ADMIN:-false}" in
      true|True|TRUE|1|yes)
        if [ -z "${_AIRFLOW_WWW_USER_PASSWORD:-}" ]; then
          echo "runtime: RUNTIME_CREATE_ADMIN needs _AIRFLOW_WWW_USER_PASSWORD" >&2; exit 1
        fi
        # `users create` leaves an existing user as it is
        echo "runtime: Admin user ${_AIRFLOW_WWW_USER_USERNAME:-admin}" >&2
        airflow users create --role Admin --username "${_AIRFLOW_WWW_USER_USERNAME:-admin}" \
          --password "$_AIRFLOW_WWW_USER_PASSWORD" --firstname Admin --lastname User \
          --email "${_AIRFLOW_WWW_USER_EMAIL:-admin@example.com}" >/dev/null ;;
    esac ;;
esac
exec "$@"
