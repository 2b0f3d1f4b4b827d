#!/usr/bin/env bash
# Plain alerting without a log stack: follow the reactor's journal and print one ALERT line per
# condition (pipe it to mail, a chat webhook, ...). Event names: docs/events.md.
#
#   deploy/alerts/journalctl-jq.sh                       # follow okx-margin-reactor.service
#   deploy/alerts/journalctl-jq.sh 'okx-margin-reactor@*'   # every shard
#   journalctl -u okx-margin-reactor -o json --since today | deploy/alerts/journalctl-jq.sh --stdin
#
# Output: ALERT <name> <ISO time> key=value ...   (one line each, flushed at once), and
# RESOLVED <name> ... when a main-account or blocked-target episode ends (a blocked episode also
# ends at the next reactor.started: the new process logs it again if it is still blocked).
# Tunables (environment): BLOCKED_MINUTES=30 (target blocked without unblocked for longer),
# STORM_COUNT=5 and STORM_SECONDS=300 (more than STORM_COUNT ws.reconnect per account within
# STORM_SECONDS). The blocked check runs whenever a line arrives.
set -euo pipefail

BLOCKED_MINUTES="${BLOCKED_MINUTES:-30}"
STORM_COUNT="${STORM_COUNT:-5}"
STORM_SECONDS="${STORM_SECONDS:-300}"

read -r -d '' PROGRAM <<'JQ' || true
# One journald entry -> the reactor's JSON object plus the journal time in seconds.
def entry:
  (.MESSAGE | if type == "array" then implode else . end) as $m
  | ($m | fromjson? // null) as $e
  | if ($e | type) == "object" then $e + {_t: ((.__REALTIME_TIMESTAMP | tonumber) / 1e6)}
    else empty end;
def iso: todate;
def val: tostring | if test("[\\s\"]") then tojson else . end;
def kv($keys): [ $keys[] as $k | select(.[$k] != null) | "\($k)=\(.[$k] | val)" ] | join(" ");
def alert($name; $keys): "ALERT \($name) \(._t | floor | iso) \(kv($keys))";
def resolved($name; $keys): "RESOLVED \($name) \(._t | floor | iso) \(kv($keys))";
def poskey: "\(.account)|\(.instId)|\(.posSide)";

foreach (inputs | entry) as $e (
  {blocked: {}, reconnects: {}, out: []};
  .out = []
  | if $e.event == "ws.login.failed" then
      .out += [$e | alert("ReactorLoginFailed"; ["account", "code", "msg", "retry"])]
    elif $e.event == "account.stopped" then
      .out += [$e | alert("ReactorAccountStopped"; ["account", "reason", "code"])]
    elif $e.event == "margin.adjust.failed" or $e.event == "margin.adjust.unknown" then
      .out += [$e | alert("ReactorMarginCallFailed";
                          ["account", "instId", "posSide", "action", "amount", "code", "msg", "error"])]
    elif $e.event == "book.drift" then
      .out += [$e | alert("ReactorBookDrift";
                          ["account", "instId", "posSide", "field", "book", "exchange"])]
    elif $e.event == "margin.guard.tripped" then
      .out += [$e | alert("ReactorRunawayGuardTripped";
                          ["account", "instId", "posSide", "amount", "moved_last_hour", "limit"])]
    elif $e.event == "margin.position.held_foreign" then
      .out += [$e | alert("ReactorForeignTransferHold";
                          ["account", "instId", "foreign_transfers", "window_s"])]
    elif $e.event == "main.positions.below_expected" then
      .out += [$e | alert("ReactorMainBelowExpected"; ["account", "positions", "long", "short", "expected"])]
    elif $e.event == "main.positions.restored" then
      .out += [$e | resolved("ReactorMainBelowExpected"; ["account", "positions"])]
    elif $e.event == "reactor.reload.refused" then
      .out += [$e | alert("ReactorReloadRefused"; ["config", "error"])]
    elif $e.event == "systemd.watchdog.unhealthy" then
      .out += [$e | alert("ReactorWatchdogUnhealthy"; ["reason"])]
    elif $e.event == "margin.target.blocked" then
      .blocked[$e | poskey] = ($e | {_t, account, instId, posSide, margin, floor, reason, alerted: false})
    elif $e.event == "margin.target.unblocked" then
      if .blocked[$e | poskey].alerted then
        .out += [$e | resolved("ReactorTargetBlocked"; ["account", "instId", "posSide", "margin"])]
      else . end
      | .blocked |= del(.[$e | poskey])
    elif $e.event == "reactor.started" then
      # A restarted reactor forgets its episodes and logs the ones still open again: close
      # every open blocked episode here (RESOLVED when it had alerted), so one that ended
      # while the reactor was down cannot stay open forever.
      .out += [.blocked[] | select(.alerted) | . + {_t: $e._t, closed_by: "restart"}
               | resolved("ReactorTargetBlocked"; ["account", "instId", "posSide", "closed_by"])]
      | .blocked = {}
    elif $e.event == "ws.reconnect" then
      .reconnects[$e.account] = ([(.reconnects[$e.account] // [])[] | select(. > $e._t - $storm_s)] + [$e._t])
      | (.reconnects[$e.account] | length) as $n
      | if $n > $storm_n then
          .out += [$e + {count: $n, window_s: $storm_s}
                   | alert("ReactorReconnectStorm"; ["account", "count", "window_s", "reason"])]
          | .reconnects[$e.account] = []
        else . end
    else . end
  # Blocked too long: an open episode older than BLOCKED_MINUTES, reported once.
  | reduce (.blocked | keys[]) as $k (.;
      if (.blocked[$k].alerted | not) and ($e._t - .blocked[$k]._t) > $blocked_min * 60 then
        .out += [.blocked[$k] + {_t: $e._t, blocked_min: ((($e._t - .blocked[$k]._t) / 60) | floor)}
                 | alert("ReactorTargetBlocked";
                         ["account", "instId", "posSide", "margin", "floor", "reason", "blocked_min"])]
        | .blocked[$k].alerted = true
      else . end);
  .out[]
)
JQ

run_jq() {
  jq -n -r --unbuffered \
    --argjson blocked_min "$BLOCKED_MINUTES" \
    --argjson storm_n "$STORM_COUNT" \
    --argjson storm_s "$STORM_SECONDS" \
    "$PROGRAM"
}

if [[ "${1:-}" == "--stdin" ]]; then
  run_jq
else
  journalctl -u "${1:-okx-margin-reactor}" -o json -f -n 0 | run_jq
fi
