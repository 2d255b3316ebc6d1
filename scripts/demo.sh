#!/usr/bin/env bash
# Runs LogOps on this machine on the embedded default store: builds the release binaries,
# writes a demo configuration under ./demo (kept between runs), starts logops-ingest on
# 127.0.0.1 and logops-agent tailing this machine's logs and sampling its host metrics.
# Ctrl-C stops both cleanly. Set LOGOPS_DEMO_PORT to use another port than 8080.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p logops-ingest -p logops-agent
BIN=target/release
DEMO=${LOGOPS_DEMO_DIR:-demo}
PORT=${LOGOPS_DEMO_PORT:-8080}
METRICS_PORT=${LOGOPS_DEMO_METRICS_PORT:-9598}
mkdir -p "$DEMO/ingest-data" "$DEMO/agent-data"
DEMO_ABS=$(cd "$DEMO" && pwd)
if [ ! -s "$DEMO/api_key" ]; then
    out=$("$BIN/logops-ingest" keygen --tenant demo)
    echo "$out" | sed -n 's/^    \(lo_[a-z2-7]*\)$/\1/p' > "$DEMO/api_key"
    chmod 600 "$DEMO/api_key"
    echo "$out" | sed -n 's/^api_key_sha256 = \["\([0-9a-f]*\)"\]$/\1/p' > "$DEMO/api_key.sha256"
fi
cat > "$DEMO/ingest.toml" <<TOML
listen = "127.0.0.1:$PORT"
data_dir = "$DEMO_ABS/ingest-data"

[[tenant]]
name = "demo"
api_key_sha256 = ["$(cat "$DEMO/api_key.sha256")"]
TOML
cat > "$DEMO/agent.toml" <<TOML
[agent]
data_dir = "$DEMO_ABS/agent-data"
labels = { env = "demo" }

[ship]
url = "http://127.0.0.1:$PORT/v1/batch"
api_key_file = "$DEMO_ABS/api_key"

[[files]]
paths = ["/var/log/*.log", "/var/log/syslog", "/var/log/messages", "$DEMO_ABS/*.log"]
exclude = ["*.gz"]
start_at = "beginning"

[host]
interval = "10s"

[self_metrics]
listen = "127.0.0.1:$METRICS_PORT"
TOML
"$BIN/logops-agent" check-config --config "$DEMO/agent.toml" >/dev/null
echo "$(date -u +%FT%TZ) demo started" >> "$DEMO/demo.log"

"$BIN/logops-ingest" --config "$DEMO/ingest.toml" 2> "$DEMO/ingest.log" &
INGEST=$!
trap 'kill -TERM $INGEST 2>/dev/null; wait $INGEST 2>/dev/null' EXIT
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
KEY=$(cat "$DEMO/api_key")
cat <<MSG
logops-ingest on http://127.0.0.1:$PORT (log: $DEMO/ingest.log); logops-agent below (Ctrl-C stops both).
The agent tails /var/log/*.log, /var/log/syslog, $DEMO/*.log and samples host metrics every 10 s.
Read it back:
  curl -sS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/logs?since=1h&limit=20"
  curl -sS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/metrics/latest?name=host_load1"
  LOGOPS_API_KEY=$KEY $BIN/logops-ingest query logs --url http://127.0.0.1:$PORT --since 1h --follow
  echo "hello from the demo" >> $DEMO/demo.log
Agent metrics: curl -sS http://127.0.0.1:$METRICS_PORT/metrics; buffer: $BIN/logops-agent buffer status --config $DEMO/agent.toml
MSG
"$BIN/logops-agent" run --config "$DEMO/agent.toml"
