#!/bin/sh
# Container entrypoint: container defaults for the RUNTIME_* settings, early checks, then the runtime.
# Everything else is read by runtime/config/settings.py from the environment as it is.
set -eu

# In a container the port must be reachable from the sidecar (cloudflared) and the health check.
: "${RUNTIME_HOST:=0.0.0.0}"
: "${RUNTIME_PORT:=8000}"
# In a container stdout goes to the awslogs driver: load reports (EMF) on, for the auto scaling to read.
: "${RUNTIME_EMF_INTERVAL_SECONDS:=10}"
export RUNTIME_HOST RUNTIME_PORT RUNTIME_EMF_INTERVAL_SECONDS

fail() {
    echo "entrypoint: $*" >&2
    exit 64
}

# A downloaded model is only trusted with a digest to check it against.
if [ -n "${RUNTIME_MODEL_URL:-}" ]; then
    [ -n "${RUNTIME_MODEL_SHA256:-}" ] || fail "RUNTIME_MODEL_URL is set but RUNTIME_MODEL_SHA256 is not"
    case "$RUNTIME_MODEL_URL" in
        s3://*/*) ;;
        *) fail "RUNTIME_MODEL_URL must look like s3://bucket/key, got '$RUNTIME_MODEL_URL'" ;;
    esac
    if [ -z "${AWS_ACCESS_KEY_ID:-}" ] || [ -z "${AWS_SECRET_ACCESS_KEY:-}" ]; then
        echo "entrypoint: no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: the S3 client falls back to the task role" >&2
    fi
fi

# `docker run IMAGE sh` (or any other command) runs that command instead of the runtime.
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

exec python -m runtime --host "$RUNTIME_HOST" --port "$RUNTIME_PORT" "$@"
