#!/usr/bin/env sh
# rotel (`pip install rotel`) as the collector in front of archon-mcp-exporter: the same
# pipeline as otelcol.yaml. Retries never give up for 24 h; rotel buffers in memory.
#
# Applications export to this collector on the standard ports 4317 (gRPC) and 4318 (HTTP); it
# forwards to `archon-mcp-exporter serve`, which on the same host listens elsewhere:
#
#   archon-mcp-exporter serve --grpc-listen 127.0.0.1:14317 --http-listen 127.0.0.1:14318 …
#   sh collector/rotel.sh                      # or ARCHON_EXPORTER_ENDPOINT=http://host:4317
#
# ROTEL_AGENT names the binary; else it is taken from PATH, else from the rotel Python package
# (pip installs it inside the package, not on PATH).
set -eu
agent="${ROTEL_AGENT:-$(command -v rotel-agent || true)}"
if [ -z "$agent" ]; then
  agent="$(python3 -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))' 2>/dev/null || true)"
fi
if [ -z "$agent" ] || [ ! -x "$agent" ]; then
  echo "rotel-agent not found: pip install rotel (or set ROTEL_AGENT=/path/to/rotel-agent)" >&2
  exit 1
fi
exec "$agent" start \
  --otlp-grpc-endpoint "${ROTEL_GRPC_LISTEN:-0.0.0.0:4317}" \
  --otlp-http-endpoint "${ROTEL_HTTP_LISTEN:-0.0.0.0:4318}" \
  --exporter otlp \
  --otlp-exporter-protocol grpc \
  --otlp-exporter-endpoint "${ARCHON_EXPORTER_ENDPOINT:-http://127.0.0.1:14317}" \
  --otlp-exporter-compression gzip \
  --otlp-exporter-custom-headers "authorization=Bearer ${ARCHON_EXPORTER_AUTH_TOKEN:-}" \
  --otlp-exporter-retry-max-elapsed-time 24h \
  --otlp-exporter-retry-max-backoff 30s \
  --batch-timeout 1s
