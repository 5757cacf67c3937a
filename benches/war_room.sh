#!/usr/bin/env bash
# The war-room benchmark: what watching a live cutover costs the link
# (terminal bytes/s) and the CPU, for cutover's console in its default view
# beside the two tools people use today, pg_activity (`--refresh 1`) and a
# `watch -n1` psql dashboard of the slots and table statistics.
#
# For each size (200×50, then 80×24) the three tools run at the same time,
# each in its own tmux session of that size, against the same lab: a source
# and a target cluster replicating through the subscription cutover_sub while
# the lab's app pods write 500 rows/s. The lab is its own process (`cutover
# lab up`), so the console's CPU is only its own.
#
#   bytes/s  everything the tool wrote to its pane (tmux pipe-pane) over the window
#   CPU      utime+stime+cutime+cstime (/proc/PID/stat, fields 14-17) of the tool's
#            process over the window, in % of one core: the `cutover console`
#            process, pg_activity's python process, the `watch` process (it waits
#            for its psql children, so theirs lands in cutime/cstime)
#
# Goal (the product issue): cutover under a third of pg_activity's CPU and at
# most half its bytes/s, while showing four live panes. The goals are printed,
# never enforced: CPU figures on a shared machine are noisy. The script fails
# (exit 1) when a pane never shows its content or a tool dies: a broken
# console; exit 2 when it could not run at all (missing tool, lab failed).
#
#   bash benches/war_room.sh            both sizes, 60 s windows, lab of 100000 rows
#   bash benches/war_room.sh --short    CI: 80×24 only, 10 s windows, 20000 rows
#
# Environment: CUTOVER_BIN (a built cutover; default: cargo build --release),
# CUTOVER_BENCH_SECS (the window, in seconds, in either mode),
# CUTOVER_BENCH_WARMUP (seconds after every pane shows its content; default 5).
# pg_activity is installed from PyPI into target/bench-py (once), else from
# Debian's pg-activity package.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

die() { # CODE MESSAGE
  echo "war_room: $2" >&2
  exit "$1"
}

mode=full secs=60 rows=100000 sizes="200x50 80x24"
for arg in "$@"; do
  case $arg in
  --short) mode=short secs=10 rows=20000 sizes="80x24" ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *) die 2 "unknown argument $arg (usage: bash benches/war_room.sh [--short])" ;;
  esac
done
secs=${CUTOVER_BENCH_SECS:-$secs}
warmup=${CUTOVER_BENCH_WARMUP:-5}
[[ $secs =~ ^[1-9][0-9]*$ ]] || die 2 "CUTOVER_BENCH_SECS must be a whole number of seconds, not '$secs'"
[[ $warmup =~ ^[0-9]+$ ]] || die 2 "CUTOVER_BENCH_WARMUP must be a whole number of seconds, not '$warmup'"

for tool in tmux psql python3 watch pgrep getconf awk; do
  command -v "$tool" >/dev/null 2>&1 || die 2 "needs $tool (tmux, postgresql-client, python3, procps)"
done

bin=${CUTOVER_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release -q
  bin=${CARGO_TARGET_DIR:-$PWD/target}/release/cutover
fi
[ -x "$bin" ] || die 2 "no cutover binary at $bin"

# pg_activity 3.6 from PyPI, kept under target/ between runs; Debian's as a fallback.
py=$PWD/target/bench-py
pga_cmd=() pga_from=""
if [ ! -f "$py/bin/pg_activity" ]; then
  rm -rf "$py.partial"
  if python3 -m pip install -q --disable-pip-version-check --target "$py.partial" \
    "pg_activity==3.6.*" "psycopg[binary]" >&2; then
    rm -rf "$py" && mv "$py.partial" "$py"
  else
    rm -rf "$py.partial"
    echo "war_room: pip could not install pg_activity 3.6; trying Debian's pg-activity" >&2
  fi
fi
if [ -f "$py/bin/pg_activity" ]; then
  pga_cmd=(env "PYTHONPATH=$py" python3 "$py/bin/pg_activity")
  pga_from="PyPI"
else
  if ! command -v pg_activity >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die 2 "no pg_activity: pip failed and installing Debian's pg-activity needs root"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pg-activity >&2 ||
      die 2 "could not install pg_activity (neither from PyPI nor Debian's pg-activity)"
  fi
  pga_path=$(command -v pg_activity)
  # Its interpreter by name, so that the measured process is python, not a wrapper.
  interp=$(head -1 "$pga_path" | sed -n 's/^#! *//p')
  pga_cmd=(${interp:-python3} "$pga_path")
  pga_from="Debian"
fi
pga_version=$("${pga_cmd[@]}" --version 2>/dev/null | awk '{print $NF; exit}')
[ -n "$pga_version" ] || die 2 "pg_activity does not run: ${pga_cmd[*]} --version"
case $pga_version in 3.6.*) ;; *) echo "war_room: note: measuring pg_activity $pga_version, not 3.6" >&2 ;; esac

work=$(mktemp -d /tmp/cutover-warroom.XXXXXX)
chmod 755 "$work" # the lab's servers run as postgres when we are root
sock=cutover-warroom-$$
T() { tmux -L "$sock" -f "$work/tmux.conf" "$@"; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  T kill-server >/dev/null 2>&1 || true
  if [ -d "$work/lab" ]; then
    "$bin" lab down --dir "$work/lab" >"$work/lab-down.log" 2>&1 ||
      { echo "war_room: lab down failed:" >&2; cat "$work/lab-down.log" >&2; }
  fi
  rm -rf "$work" # with the lab's session logs, $work/lab-sessions
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Panes exactly W×H (no status line), 256 colours as a terminal of today
# shows them, and a tool's last screen kept when it dies (for the message).
term=tmux-256color
infocmp "$term" >/dev/null 2>&1 || term=screen-256color
cat >"$work/tmux.conf" <<EOF
set -g default-terminal $term
set -g status off
set -g remain-on-exit on
EOF
unset COLORTERM FORCE_COLOR NO_COLOR

echo "war_room: starting the lab ($rows rows; 30-90 s)" >&2
"$bin" lab up --dir "$work/lab" --rows "$rows" --writes 500 >"$work/lab-up.log" 2>&1 ||
  { cat "$work/lab-up.log" >&2; die 2 "cutover lab up failed"; }
cfg=$(awk 'NF { last = $0 } END { print last }' "$work/lab-up.log")
[ -f "$cfg" ] || cfg=$work/lab/cutover.toml
[ -f "$cfg" ] || { cat "$work/lab-up.log" >&2; die 2 "lab up printed no config path"; }
dsn() { sed -n "/^\[$1\]/,/^\[/p" "$cfg" | grep '^dsn' | head -1 | cut -d'"' -f2; }
src=$(dsn source)
tgt=$(dsn target)
[ -n "$src" ] && [ -n "$tgt" ] || die 2 "no [source]/[target] dsn in $cfg"

# Replication, set up by cutover itself without a terminal: preflight (it
# may fail: the lab's target starts without the schema), the schema copy,
# publication, subscription, wait for the initial sync.
keys="F? D P U W"
echo "war_room: setting up replication (cutover console --script \"$keys\")" >&2
psql -X -q -v ON_ERROR_STOP=1 "$src" -c "ALTER TABLE public.events REPLICA IDENTITY FULL" >/dev/null
timeout 300 "$bin" console --config "$cfg" --script "$keys" </dev/null >"$work/script.log" 2>&1 ||
  { tail -30 "$work/script.log" >&2; die 2 "cutover console --script \"$keys\" failed"; }
[ "$(psql -XAtq "$tgt" -c "SELECT count(*) FROM pg_subscription WHERE subname = 'cutover_sub'")" = 1 ] ||
  die 2 "the target has no subscription cutover_sub after the script"
src_ver=$(psql -XAtq "$src" -c "SHOW server_version" | awk '{print $1}')
tgt_ver=$(psql -XAtq "$tgt" -c "SHOW server_version" | awk '{print $1}')

# The dashboard people run today. watch joins its arguments into one shell
# line, so the psql call lives in a script.
query="SELECT slot_name, plugin, active, wal_status, pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) retained, confirmed_flush_lsn FROM pg_replication_slots; SELECT relname, n_live_tup, n_tup_ins, n_tup_upd, n_tup_del, last_autovacuum FROM pg_stat_user_tables ORDER BY 1"
printf 'exec psql -X %q -c %q\n' "$src" "$query" >"$work/dash.sh"

screen() { T capture-pane -p -t "$1" 2>/dev/null || true; }
# The tool's own process: the pane's process or the first descendant whose
# name matches COMM and command line matches ARGS (never a shell wrapper).
tool_pid() { # SESSION COMM ARGS
  local queue p
  queue=("$(T display-message -p -t "$1" '#{pane_pid}')")
  while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    if grep -Eq "^($2)\$" "/proc/$p/comm" 2>/dev/null &&
      tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -Eq -- "$3"; then
      echo "$p"
      return 0
    fi
    # shellcheck disable=SC2207
    queue+=($(pgrep -P "$p" || true))
  done
  return 1
}
# Clock ticks of the process and its waited-for children: fields 14-17,
# counted after the ")" that ends the (possibly spaced) command name.
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 + $14 + $15 }'; }
dead() { # SESSION WHAT
  echo "war_room: $2 ($1) is not running any more; its last screen:" >&2
  screen "$1" >&2
  exit 1
}
# Waits until the pane shows every pattern; answers cutover's "Resume it? [Y/n]"
# (a session of this config that did not end by choice) with n.
wait_screen() { # SESSION WHAT PATTERN...
  local s=$1 what=$2 scr p ok
  shift 2
  for _ in $(seq 90); do
    scr=$(screen "$s")
    if grep -q '\[Y/n\]' <<<"$scr"; then
      T send-keys -t "$s" n Enter
    else
      ok=1
      for p in "$@"; do grep -Eq -- "$p" <<<"$scr" || ok=0; done
      [ $ok = 1 ] && return 0
    fi
    [ "$(T display-message -p -t "$s" '#{pane_dead}' 2>/dev/null)" = 1 ] && break
    sleep 1
  done
  echo "war_room: the $what pane ($s) did not show $(printf '"%s" ' "$@")within 90 s; its screen:" >&2
  echo "$scr" >&2
  exit 1
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
goal() { # MET (an awk condition on c, cutover's figure, and p, pg_activity's) C P
  awk -v c="$2" -v p="$3" "BEGIN { if (p <= 0) print \"n/a\"; else if ($1) print \"goal met\"; else print \"goal missed\" }"
}

names=(cutover pg_activity watch)
labels=("cutover console (default view)" "pg_activity $pga_version \`--refresh 1\`" "\`watch -n1\` psql dashboard of slots and table stats")
tck=$(getconf CLK_TCK)
cores=$(getconf _NPROCESSORS_ONLN)
out=$work/tables.txt
: >"$out"

for size in $sizes; do
  w=${size%x*} h=${size#*x}
  s_c=c$size s_p=p$size s_w=w$size
  sessions=("$s_c" "$s_p" "$s_w")
  echo "war_room: ${w}×${h}: starting the three tools" >&2
  T new-session -d -s "$s_c" -x "$w" -y "$h" "exec $(printf %q "$bin") console --config $(printf %q "$cfg")"
  T new-session -d -s "$s_p" -x "$w" -y "$h" "exec $(printf '%q ' "${pga_cmd[@]}") --refresh 1 $(printf %q "$src")"
  T new-session -d -s "$s_w" -x "$w" -y "$h" "exec watch -n1 bash $(printf %q "$work/dash.sh")"
  for s in "${sessions[@]}"; do
    got=$(T display-message -p -t "$s" '#{pane_width}x#{pane_height}')
    [ "$got" = "$size" ] || die 2 "tmux session $s is $got, not $size"
  done
  wait_screen "$s_c" "cutover console" "Replication lag" "quit"
  wait_screen "$s_p" "pg_activity" "PostgreSQL"
  wait_screen "$s_w" "watch dashboard" "cutover_sub"
  pid_c=$(tool_pid "$s_c" cutover " console ") || dead "$s_c" "cutover console"
  pid_p=$(tool_pid "$s_p" "python.*|pg_activity" "pg_activity") || dead "$s_p" "pg_activity"
  pid_w=$(tool_pid "$s_w" watch "watch") || dead "$s_w" "watch"
  pids=("$pid_c" "$pid_p" "$pid_w")
  sleep "$warmup"

  for i in 0 1 2; do
    T pipe-pane -o -t "${sessions[$i]}" "cat > $work/${names[$i]}.$size.bytes"
  done
  t0=$(date +%s%N)
  for i in 0 1 2; do c0[$i]=$(ticks "${pids[$i]}") || dead "${sessions[$i]}" "${names[$i]}"; done
  sleep "$secs"
  for i in 0 1 2; do c1[$i]=$(ticks "${pids[$i]}") || dead "${sessions[$i]}" "${names[$i]}"; done
  t1=$(date +%s%N)
  for s in "${sessions[@]}"; do T pipe-pane -t "$s"; done
  sleep 1 # the pipes' cat flush and exit
  # Still showing what they should at the end of the window.
  wait_screen "$s_c" "cutover console" "Replication lag" "quit"
  wait_screen "$s_p" "pg_activity" "PostgreSQL"
  wait_screen "$s_w" "watch dashboard" "cutover_sub"
  screen "$s_c" >"$work/cutover.$size.screen"

  elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  {
    echo
    echo "${w}×${h}: the three at the same time for ${elapsed} s (after ${warmup} s of warm-up), lab of $rows rows, PostgreSQL $src_ver -> $tgt_ver, app writing 500 rows/s, TERM=$term"
    echo "one clock tick over this window: $(awk -v k="$tck" -v t="$elapsed" 'BEGIN { printf "%.3f", 100 / k / t }') % of a core (the CPU figures' resolution)"
    echo "measured processes: $(for i in 0 1 2; do printf '%s pid %s (%s)  ' "${names[$i]}" "${pids[$i]}" "$(cat "/proc/${pids[$i]}/comm")"; done)"
    echo
    printf '| %-52s | %16s | %16s |\n' tool "terminal bytes/s" "CPU, % of a core"
    printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' $(seq 54))" "$(printf -- '-%.0s' $(seq 17)):" "$(printf -- '-%.0s' $(seq 17)):"
  } >>"$out"
  for i in 0 1 2; do
    bytes=$(stat -c %s "$work/${names[$i]}.$size.bytes" 2>/dev/null || echo 0)
    bps[$i]=$(awk -v b="$bytes" -v t="$elapsed" 'BEGIN { printf "%.0f", b / t }')
    cpu[$i]=$(awk -v a="${c0[$i]}" -v b="${c1[$i]}" -v k="$tck" -v t="$elapsed" 'BEGIN { printf "%.2f", (b - a) * 100 / k / t }')
    printf '| %-52s | %16s | %16s |\n' "${labels[$i]}" "${bps[$i]}" "${cpu[$i]}" >>"$out"
  done
  rb=$(ratio "${bps[0]}" "${bps[1]}")
  rc=$(ratio "${cpu[0]}" "${cpu[1]}")
  {
    printf '| %-52s | %16s | %16s |\n' "ratio cutover / pg_activity" "$rb" "$rc"
    echo
    echo "goal, bytes/s at most 1/2 of pg_activity's: $rb, $(goal "2 * c <= p" "${bps[0]}" "${bps[1]}")"
    echo "goal, CPU under 1/3 of pg_activity's:       $rc, $(goal "3 * c < p" "${cpu[0]}" "${cpu[1]}")"
  } >>"$out"

  T send-keys -t "$s_c" q
  sleep 1
  for s in "${sessions[@]}"; do T kill-session -t "$s" 2>/dev/null || true; done
done

echo
echo "war-room benchmark ($mode mode): cutover console vs pg_activity ($pga_version, from $pga_from) vs watch -n1 psql"
echo "CPU cores: $cores (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)); every figure is per process: % of ONE core,"
echo "the process's own time plus its waited-for children's (fields 14-17 of /proc/PID/stat, $tck ticks/s)."
cat "$out"
echo
echo "frame time (criterion; not run here): cargo bench --bench frame"
echo "took $(($(date +%s) - started)) s"
