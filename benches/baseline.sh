#!/usr/bin/env bash
# The hands-on lab's cutover as a team runs it today: a plain shell script
# of the lab README's hints, no guards, no proof. The baseline that
# `cargo bench --bench cutover` runs beside the console on the same lab.
#
# Replication is set up beforehand (publication, subscription, initial sync).
# Needs: PSQL (a psql binary), SRC and TGT (conninfo strings), KUBECONFIG,
# KUBE_CONTEXT, NAMESPACE, NEW_URL_FILE (the switch value's file).
set -euo pipefail

q() { "$PSQL" -XAtq -v ON_ERROR_STOP=1 "$1" -c "$2"; }

# 1. Read-only on the source: the app role's new sessions, then end its
#    sessions so they reconnect read-only.
q "$SRC" "ALTER ROLE app SET default_transaction_read_only = on"
q "$SRC" "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'app'" >/dev/null

# 2. Wait for lag 0: the subscription's slot has confirmed the source's position.
for _ in $(seq 1 600); do
  lag=$(q "$SRC" "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), -1) FROM pg_replication_slots WHERE slot_name = 'cutover_sub'")
  [ "$lag" = "0" ] && break
  sleep 0.2
done

# 3. Compare counts.
for t in $(q "$SRC" "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"); do
  s=$(q "$SRC" "SELECT count(*) FROM $t")
  d=$(q "$TGT" "SELECT count(*) FROM $t")
  if [ "$s" != "$d" ]; then echo "baseline: $t differs: source $s, target $d" >&2; exit 1; fi
done

# 4. setval every sequence on the target to the source's value.
q "$SRC" "SELECT format('SELECT setval(%L, %s, true);', format('%I.%I', schemaname, sequencename), last_value) FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL" \
  | "$PSQL" -XAtq -v ON_ERROR_STOP=1 "$TGT" >/dev/null

# 5. Patch the ConfigMap, 6. restart the app and wait for the rollout.
k() { kubectl --kubeconfig "$KUBECONFIG" --context "$KUBE_CONTEXT" -n "$NAMESPACE" "$@"; }
new=$(cat "$NEW_URL_FILE")
k patch configmap app-db --type merge -p "{\"data\":{\"DATABASE_URL\":\"$new\"}}" >/dev/null
k rollout restart deployment/app >/dev/null
k rollout status deployment/app --timeout=300s >/dev/null
