#!/usr/bin/env bash
# Bytes per second the console writes to its terminal while nobody touches it
# (200×50, 1 Hz refresh, lab replicating under the demo's write load), beside a
# baseline run at the same time on the same lab: `watch -n1 psql` showing the
# slots and table statistics, the tool people use today.
#
#   bash benches/idle_terminal.sh [SECONDS]      (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
cargo build --release -q
bin=$PWD/target/release/cutover
work=$(mktemp -d /tmp/cutover-idle.XXXXXX)
chmod 755 "$work"
name=idle-$$
cleanup() {
  tmux kill-session -t "$name" 2>/dev/null || true
  tmux kill-session -t "$name-base" 2>/dev/null || true
  sleep 2
  rm -rf "$work"
}
trap cleanup EXIT

TMPDIR=$work tmux new-session -d -s "$name" -x 200 -y 50 \
  "TMPDIR=$work $bin demo --rows 100000 --load-rate 50 --session-dir $work/sessions"
for _ in $(seq 120); do
  cfg=$(ls "$work"/cutover-demo-*/cutover.toml 2>/dev/null | head -1 || true)
  [ -n "$cfg" ] && tmux capture-pane -p -t "$name" | grep -q "q quit" && break
  sleep 1
done
src=$(sed -n '/^\[source\]/,/^\[/p' "$cfg" | grep '^dsn' | cut -d'"' -f2)
tgt=$(sed -n '/^\[target\]/,/^\[/p' "$cfg" | grep '^dsn' | cut -d'"' -f2)
pg_dump --schema-only --no-owner --no-privileges "$src" > "$work/schema.sql"
psql -X -q -v ON_ERROR_STOP=1 "$tgt" -f "$work/schema.sql" > /dev/null
psql -X -q "$src" -c "CREATE PUBLICATION cutover_pub FOR ALL TABLES"
psql -X -q "$tgt" -c "CREATE SUBSCRIPTION cutover_sub CONNECTION '$src' PUBLICATION cutover_pub" 2>/dev/null
sleep 5

query="SELECT slot_name, plugin, active, wal_status, pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) retained, confirmed_flush_lsn FROM pg_replication_slots; SELECT relname, n_live_tup FROM pg_stat_user_tables ORDER BY 1"
# watch joins its arguments into one shell line, so the psql call lives in a script.
printf 'exec psql -X %q -c %q\n' "$src" "$query" > "$work/baseline.sh"
tmux new-session -d -s "$name-base" -x 200 -y 50 "watch -n1 bash $work/baseline.sh"
sleep 3
tmux capture-pane -p -t "$name-base" | grep -q cutover_sub || { echo "baseline pane is not showing the slot:"; tmux capture-pane -p -t "$name-base"; exit 1; }

tmux pipe-pane -o -t "$name" "cat > $work/console.bytes"
tmux pipe-pane -o -t "$name-base" "cat > $work/baseline.bytes"
sleep "$secs"
tmux pipe-pane -t "$name"
tmux pipe-pane -t "$name-base"

c=$(stat -c %s "$work/console.bytes")
b=$(stat -c %s "$work/baseline.bytes")
printf 'terminal bytes written while idle, 200x50, %ss, 1 Hz\n' "$secs"
printf '  %-32s %8.0f B/s\n' "cutover console" "$(echo "$c / $secs" | bc -l)"
printf '  %-32s %8.0f B/s\n' "baseline: watch -n1 psql" "$(echo "$b / $secs" | bc -l)"
printf '  ratio console / baseline: %.2f\n' "$(echo "$c / $b" | bc -l)"
tmux send-keys -t "$name" q
sleep 3
