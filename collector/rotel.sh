#!/usr/bin/env sh
# rotel (`pip install rotel`) as the collector in front of archon-mcp-exporter: the same
# pipeline as otelcol.yaml. Retries never give up for 24 h; rotel buffers in memory.
#
#   ARCHON_EXPORTER_ENDPOINT=http://archon-exporter:4317 sh collector/rotel.sh
exec rotel-agent start \
  --otlp-grpc-endpoint 0.0.0.0:4317 \
  --otlp-http-endpoint 0.0.0.0:4318 \
  --exporter otlp \
  --otlp-exporter-protocol grpc \
  --otlp-exporter-endpoint "${ARCHON_EXPORTER_ENDPOINT:-http://127.0.0.1:14317}" \
  --otlp-exporter-compression gzip \
  --otlp-exporter-custom-headers "authorization=Bearer ${ARCHON_EXPORTER_AUTH_TOKEN:-}" \
  --otlp-exporter-retry-max-elapsed-time 24h \
  --otlp-exporter-retry-max-backoff 30s \
  --batch-timeout 1s
