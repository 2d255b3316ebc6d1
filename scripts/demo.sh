#!/usr/bin/env bash
# Runs LogOps on this machine on the embedded default store: builds the release binaries,
# writes a demo configuration and API key under ./demo (kept between runs), and starts
# logops-ingest on 127.0.0.1 in the foreground. Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p logops-ingest
BIN=target/release/logops-ingest
DEMO=${LOGOPS_DEMO_DIR:-demo}
PORT=${LOGOPS_DEMO_PORT:-8080}
mkdir -p "$DEMO/data"
if [ ! -s "$DEMO/api_key" ]; then
    out=$("$BIN" keygen --tenant demo)
    echo "$out" | sed -n 's/^    \(lo_[a-z2-7]*\)$/\1/p' > "$DEMO/api_key"
    chmod 600 "$DEMO/api_key"
    hash=$(echo "$out" | sed -n 's/^api_key_sha256 = \["\([0-9a-f]*\)"\]$/\1/p')
    cat > "$DEMO/ingest.toml" <<TOML
listen = "127.0.0.1:$PORT"
data_dir = "$PWD/$DEMO/data"

[[tenant]]
name = "demo"
api_key_sha256 = ["$hash"]
TOML
fi
KEY=$(cat "$DEMO/api_key")
cat <<MSG
logops-ingest: http://127.0.0.1:$PORT  (config $DEMO/ingest.toml, data $DEMO/data, key in $DEMO/api_key)

Send a batch:
  printf '%s\n' '{"ts":"'\$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)'","kind":"log","host":"'\$(hostname)'","source":"demo","severity":"info","body":"hello"}' |
    curl -sS -H "Authorization: Bearer $KEY" -H "X-LogOps-Agent: demo" -H "X-LogOps-Batch: demo:\$(date +%s%N)" \\
         --data-binary @- http://127.0.0.1:$PORT/v1/batch
Read it back:
  curl -sS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/logs?since=1h"
  LOGOPS_API_KEY=$KEY $BIN query logs --url http://127.0.0.1:$PORT --since 1h --follow
MSG
exec "$BIN" --config "$DEMO/ingest.toml"
