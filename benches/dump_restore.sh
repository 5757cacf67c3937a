#!/usr/bin/env bash
# The dump-and-restore benchmark: how long writes are frozen when a database
# is moved by dump and restore, against the logical runbook on the same data,
# and what the parallel directory-format copy gains over a single stream.
#
# For each size (100000 and 1000000 rows of the lab's seed), on a fresh lab
# each time (source 15 -> target 18 where the lab has 18), the app pods
# writing 500 rows/s:
#
#   dump-restore   `--script "F Z Y C S R T"`, [runbook] dump_jobs = 4
#   dump-job       the same with [runbook] copy = "job": pg_dump | pg_restore
#                  in a Job's pod (the simulator runs it on this machine)
#   dump-ro        the same with [freeze] method = "read-only-role": Z
#                  switches the app's config to a read-only role and
#                  restarts it instead of taking privileges
#   logical        `--script "F? D P U W V Z C A E S R T"`
#
# and, on the dump-restore lab's frozen source once the script is done, a
# single-stream `pg_dump --format=custom | pg_restore` of the same database
# into a scratch database on the target, run beside the same machine's
# parallel copy.
#
#   window   the write freeze as the console measures it: from the freeze's
#            privileges taken (dump-ro: the clients' config switched) to
#            the app seen on the target (the session log's `freeze_grants`
#            to T's start)
#   copy     the `Y` step's own time (dump and restore, 4 jobs each)
#   single   pg_dump -Fc | pg_restore, one stream, same data, seconds
#
#   bash benches/dump_restore.sh            100000 and 1000000 rows
#   bash benches/dump_restore.sh ROWS...    other sizes
#
# Environment: CUTOVER_BIN (a built cutover; default: cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { # CODE MESSAGE
  echo "dump_restore: $2" >&2
  exit "$1"
}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
for r in "${sizes[@]}"; do
  [[ $r =~ ^[1-9][0-9]*$ ]] || die 2 "rows must be whole numbers, not '$r'"
done
for tool in psql python3 pg_dump pg_restore; do
  command -v "$tool" >/dev/null 2>&1 || die 2 "needs $tool"
done
if [ -z "${CUTOVER_BIN:-}" ]; then
  cargo build --release --quiet
  CUTOVER_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/cutover
fi
work=$(mktemp -d /tmp/cutover-dump-bench.XXXXXX)
chmod 755 "$work"
labs=()
cleanup() {
  for d in "${labs[@]}"; do "$CUTOVER_BIN" lab down --dir "$d" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

dsn() { # CONFIG SECTION -> the section's dsn
  python3 - "$1" "$2" <<'EOF'
import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))[sys.argv[2]]["dsn"])
EOF
}

# The window and the copy's time from a session log: seconds.
measure() { # LOG
  python3 - "$1" <<'EOF'
import json, sys
from datetime import datetime
ev = [json.loads(l) for l in open(sys.argv[1])]
ts = lambda e: datetime.fromisoformat(e["at"].replace("Z", "+00:00")[:26] + "+00:00")
frozen = next(ts(e) for e in ev if e["type"] == "freeze_grants")
t_start = next(ts(e) for e in ev
               if e["type"] == "step_started" and e["step"]["step"] == "observe_app")
copy = [e for e in ev if e["type"] == "step_done"
        and ("restored in" in e.get("message", "") or "copied by job/" in e.get("message", ""))]
copy_s = copy[-1]["elapsed_ms"] / 1000 if copy else float("nan")
print(f"{(t_start - frozen).total_seconds():.1f} {copy_s:.1f}")
EOF
}

lab_up() { # NAME ROWS -> config path
  local dir=$work/$1
  labs+=("$dir")
  "$CUTOVER_BIN" lab up --dir "$dir" --rows "$2" >"$work/$1.up" 2>&1 || {
    cat "$work/$1.up" >&2
    die 2 "lab up failed"
  }
  tail -n 1 "$work/$1.up"
}

# The target's default privileges give the app's role what ROLE's restore makes.
grant_app() { # TARGET_DSN ROLE
  psql "$1" -XAtqc "ALTER DEFAULT PRIVILEGES FOR ROLE $2 IN SCHEMA public \
      GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app; \
    ALTER DEFAULT PRIVILEGES FOR ROLE $2 IN SCHEMA public \
      GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO app" >/dev/null
}

newest_log() { ls -t "$1"/*.jsonl | head -n 1; }

# Runs KEYS by --script on CONFIG; prints the session log, or stops the
# benchmark with the console's output.
run_script() { # NAME CONFIG KEYS WHAT
  "$CUTOVER_BIN" -c "$2" --session-dir "$work/$1-sessions" --script "$3" >"$work/$1.out" 2>&1 || {
    cat "$work/$1.out" >&2
    die 1 "$4 failed ($1)"
  }
  newest_log "$work/$1-sessions"
}

printf '%-9s %-13s %9s %9s %9s\n' rows runbook "window s" "copy s" "single s"
for rows in "${sizes[@]}"; do
  # Dump and restore.
  cfg=$(lab_up "dump-$rows" "$rows")
  src=$(dsn "$cfg" source)
  tgt=$(dsn "$cfg" target)
  grant_app "$tgt" postgres
  printf '\n[runbook]\nvariant = "dump-restore"\ndump_jobs = 4\n' >>"$cfg"
  log=$(run_script "dump-$rows" "$cfg" "F Z Y C S R T" "the dump-restore runbook")
  read -r window copy < <(measure "$log")
  # A single stream of the same (frozen) data, beside it.
  scratch=${tgt/dbname=app/dbname=bench_single}
  psql "$tgt" -XAtqc "CREATE DATABASE bench_single" >/dev/null
  t0=$(date +%s.%N)
  pg_dump --format=custom --compress=0 --no-owner --no-privileges --dbname "$src" |
    pg_restore --no-owner --no-privileges --exit-on-error --dbname "$scratch"
  t1=$(date +%s.%N)
  single=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  printf '%-9s %-13s %9s %9s %9s\n' "$rows" dump-restore "$window" "$copy" "$single"
  "$CUTOVER_BIN" lab down --dir "$work/dump-$rows" >/dev/null 2>&1 || true

  # The same copy in a Kubernetes Job.
  cfg=$(lab_up "job-$rows" "$rows")
  grant_app "$(dsn "$cfg" target)" cutover_copy
  printf '\n[runbook]\nvariant = "dump-restore"\ncopy = "job"\n\n[runbook.job]\nsecret = "cutover-copy-pgpass"\nuser = "cutover_copy"\n' >>"$cfg"
  log=$(run_script "job-$rows" "$cfg" "F Z Y C S R T" "the dump-restore runbook with a Job")
  read -r window copy < <(measure "$log")
  printf '%-9s %-13s %9s %9s %9s\n' "$rows" dump-job "$window" "$copy" -
  "$CUTOVER_BIN" lab down --dir "$work/job-$rows" >/dev/null 2>&1 || true

  # The freeze by read-only role: the clients' config switched, not privileges.
  cfg=$(lab_up "ro-$rows" "$rows")
  src=$(dsn "$cfg" source)
  grant_app "$(dsn "$cfg" target)" postgres
  psql "$src" -XAtqc "CREATE ROLE app_ro LOGIN; GRANT USAGE ON SCHEMA public TO app_ro; \
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_ro" >/dev/null
  sed 's/user=[A-Za-z_]*/user=app_ro/' <<<"$src" >"$(dirname "$cfg")/source-read-only-url"
  python3 - "$cfg" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace('app_roles = ["app"]\n',
              'app_roles = ["app"]\nmethod = "read-only-role"\nread_only_role = "app_ro"\n', 1)
s = s.replace('switch_to_file = ', 'read_only_to_file = "source-read-only-url"\nswitch_to_file = ', 1)
open(p, "w").write(s + '\n[runbook]\nvariant = "dump-restore"\ndump_jobs = 4\n')
EOF
  log=$(run_script "ro-$rows" "$cfg" "F Z Y C S R T" "the dump-restore runbook, frozen by read-only role")
  read -r window copy < <(measure "$log")
  printf '%-9s %-13s %9s %9s %9s\n' "$rows" dump-ro "$window" "$copy" -
  "$CUTOVER_BIN" lab down --dir "$work/ro-$rows" >/dev/null 2>&1 || true

  # The logical runbook on the same data.
  cfg=$(lab_up "logical-$rows" "$rows")
  psql "$(dsn "$cfg" source)" -XAtqc "ALTER TABLE public.events REPLICA IDENTITY FULL" >/dev/null
  log=$(run_script "logical-$rows" "$cfg" "F? D P U W V Z C A E S R T" "the logical runbook")
  read -r window _ < <(measure "$log")
  printf '%-9s %-13s %9s %9s %9s\n' "$rows" logical "$window" - -
  "$CUTOVER_BIN" lab down --dir "$work/logical-$rows" >/dev/null 2>&1 || true
done
