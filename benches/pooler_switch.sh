#!/usr/bin/env bash
# The pooler switch benchmark: what the application sees of the switch,
# through PgBouncer (`[pooler]`: PAUSE, lag 0, checks, repoint, RESUME)
# against the restart-based switch (freeze, config patched, pods
# restarted), side by side, each on a fresh lab of the same size, the app
# writing 500 rows/s, source 15 -> target 18 where the lab has 18.
#
#   restart   the lab's app pods connect to the database directly;
#             `--script "F? D P U W V Z C A E S R T"`: the ConfigMap is
#             switched to the target and the pods restart onto it
#   pooler    two PgBouncer instances between the pods and the database
#             (`lab up --pooler`); `--script "F? D P U W V S T"`
#
#   failed     writes the app was refused or could not send
#   fail win   the write-failure window: last ack before the first failure
#              to the first ack after the last, seconds ("-": none failed)
#   window     the console's window: the freeze (or PAUSE) to the app seen
#              on the target (T's start) / to RESUME for the pooler
#   longest    the longest any acknowledged write waited (due -> ack), s
#   p99        the 99th percentile of all acknowledged writes' waits, s
#              (over the whole run: most of it is normal traffic)
#
#   bash benches/pooler_switch.sh [ROWS]     default 100000 rows
#
# Environment: CUTOVER_BIN (a built cutover; default: cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { # CODE MESSAGE
  echo "pooler_switch: $2" >&2
  exit "$1"
}
rows=${1:-100000}
[[ $rows =~ ^[1-9][0-9]*$ ]] || die 2 "rows must be a whole number, not '$rows'"
for tool in psql python3; do
  command -v "$tool" >/dev/null 2>&1 || die 2 "needs $tool"
done
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] ||
  die 2 "needs PgBouncer (apt-get install pgbouncer)"
if [ -z "${CUTOVER_BIN:-}" ]; then
  cargo build --release --quiet
  CUTOVER_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/cutover
fi
work=$(mktemp -d /tmp/cutover-pooler-bench.XXXXXX)
chmod 755 "$work"
labs=()
cleanup() {
  for d in "${labs[@]}"; do "$CUTOVER_BIN" lab down --dir "$d" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

dsn() { # CONFIG SECTION -> the section's dsn
  python3 - "$1" "$2" <<'PY'
import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))[sys.argv[2]]["dsn"])
PY
}

lab_up() { # NAME [--pooler] -> config path
  local dir=$work/$1
  labs+=("$dir")
  "$CUTOVER_BIN" lab up ${2:-} --dir "$dir" --rows "$rows" >"$work/$1.up" 2>&1 || {
    cat "$work/$1.up" >&2
    die 2 "lab up failed"
  }
  tail -n 1 "$work/$1.up"
}

run_script() { # NAME CONFIG KEYS -> the session log
  "$CUTOVER_BIN" -c "$2" --session-dir "$work/$1-sessions" --script "$3" >"$work/$1.out" 2>&1 || {
    cat "$work/$1.out" >&2
    die 1 "the $1 runbook failed"
  }
  ls -t "$work/$1-sessions"/*.jsonl | head -n 1
}

# The row for one run: the log's window, the lab's witness of the app.
row() { # NAME LOG LABDIR
  sleep 3 # the witness file catches up with the last writes
  "$CUTOVER_BIN" lab status --json --dir "$3" >"$work/$1.status"
  python3 - "$1" "$2" "$work/$1.status" <<'PY'
import json, sys
from datetime import datetime
name, log, status = sys.argv[1:4]
ev = [json.loads(l) for l in open(log)]
ts = lambda e: datetime.fromisoformat(e["at"].replace("Z", "+00:00")[:26] + "+00:00")
start = next(ts(e) for e in ev if e["type"] == "freeze_grants")
if name == "pooler":
    end = next(ts(e) for e in ev if e["type"] == "writes_unfrozen")
else:
    end = next(ts(e) for e in ev
               if e["type"] == "step_started" and e["step"]["step"] == "observe_app")
app = json.load(open(status))["app"]["total"]
fw = app.get("failure_window")
fail_win = "-" if not fw else (f"{fw['ms'] / 1000:.2f}" if fw.get("ms") is not None else "open")
lat = app.get("latency", {})
print(f"{name:<8} {app['failed']:>7} {fail_win:>9} {(end - start).total_seconds():>8.2f} "
      f"{lat.get('max_ms', 0) / 1000:>8.3f} {lat.get('p99_ms', 0) / 1000:>7.3f}")
PY
}

printf '%-8s %7s %9s %8s %8s %7s\n' switch failed "fail win" window longest p99
# The restart-based switch: the app pods connect to the database directly.
cfg=$(lab_up restart)
psql "$(dsn "$cfg" source)" -XAtqc "ALTER TABLE public.events REPLICA IDENTITY FULL" >/dev/null
log=$(run_script restart "$cfg" "F? D P U W V Z C A E S R T")
row restart "$log" "$work/restart"
"$CUTOVER_BIN" lab down --dir "$work/restart" >/dev/null 2>&1 || true

# Through the pooler: two PgBouncer instances between the pods and the database.
cfg=$(lab_up pooler --pooler)
psql "$(dsn "$cfg" source)" -XAtqc "ALTER TABLE public.events REPLICA IDENTITY FULL" >/dev/null
log=$(run_script pooler "$cfg" "F? D P U W V S T")
row pooler "$log" "$work/pooler"
