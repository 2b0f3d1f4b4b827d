#!/usr/bin/env bash
# Install okx-margin-reactor as a systemd service (`make install-service`, as root).
#
#   /opt/okx-margin-reactor/.venv         the application (pip install of this checkout)
#   /etc/okx-margin-reactor/              config.yaml (0640 root:okx-reactor),
#                                         credentials.env (0600 root:root, read by systemd)
#   /var/lib/okx-margin-reactor/          state: ledger and journal (0700 okx-reactor)
#   /etc/systemd/system/okx-margin-reactor{,@}.service
#
# Safe to run again (upgrades the app and the units): it never overwrites an existing
# config.yaml or credentials file. To upgrade, follow docs/upgrading.md (stop, back up the
# ledger with `reactor db backup`, run this, start).
#
# Environment:
#   DESTDIR=/some/root   stage into a directory instead of / (no user, chown, systemctl)
#   INSTALL_APP=0        skip creating/upgrading the virtualenv in /opt
#   PYTHON=python3       interpreter for the virtualenv
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DESTDIR="${DESTDIR:-}"
INSTALL_APP="${INSTALL_APP:-1}"
PYTHON="${PYTHON:-python3}"
SERVICE_USER=okx-reactor
NAME=okx-margin-reactor

APP_DIR="$DESTDIR/opt/$NAME"
ETC_DIR="$DESTDIR/etc/$NAME"
STATE_DIR="$DESTDIR/var/lib/$NAME"
UNIT_DIR="$DESTDIR/etc/systemd/system"

say() { printf '%s\n' "$*"; }

if [[ -z "$DESTDIR" && "$(id -u)" -ne 0 ]]; then
  say "install.sh: run as root (sudo make install-service), or set DESTDIR to stage" >&2
  exit 1
fi

# 1. Service user: a system account with no shell and no home.
if [[ -z "$DESTDIR" ]] && ! id "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir "/var/lib/$NAME" \
    --shell /usr/sbin/nologin "$SERVICE_USER"
  say "created system user $SERVICE_USER"
fi

own() {  # own OWNER:GROUP PATH - skipped when staging (the user may not exist there)
  [[ -n "$DESTDIR" ]] || chown "$1" "$2"
}

# 2. Directories with their modes.
install -d -m 0755 "$APP_DIR" "$UNIT_DIR"
install -d -m 0750 "$ETC_DIR"
own "root:$SERVICE_USER" "$ETC_DIR"
install -d -m 0700 "$STATE_DIR"
own "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"

# 3. The application.
if [[ "$INSTALL_APP" == "1" ]]; then
  [[ -x "$APP_DIR/.venv/bin/python" ]] || "$PYTHON" -m venv "$APP_DIR/.venv"
  "$APP_DIR/.venv/bin/pip" install -q --upgrade pip
  # The dependencies exactly as pinned and hashed in deploy/requirements.lock (`make lock`),
  # then the application alone: nothing is resolved from the index at install time.
  "$APP_DIR/.venv/bin/pip" install -q --require-hashes --only-binary :all: \
    -r "$SRC/deploy/requirements.lock"
  # The version comes from the checkout's git tags; root reading a checkout another user owns
  # would otherwise hit git's safe.directory refusal and install version 0.0.0.
  GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0="$SRC" \
    "$APP_DIR/.venv/bin/pip" install -q --upgrade --no-deps "$SRC"
  "$APP_DIR/.venv/bin/pip" check >/dev/null
  install -d -m 0755 "$APP_DIR/docs"
  install -m 0644 "$SRC/docs/events.md" "$APP_DIR/docs/events.md"
  install -m 0644 "$SRC/docs/alerting.md" "$APP_DIR/docs/alerting.md"
  install -m 0644 "$SRC/docs/upgrading.md" "$APP_DIR/docs/upgrading.md"
  say "installed the application into $APP_DIR/.venv"
fi

# 4. Units (always refreshed: they belong to the package, not to the operator).
install -m 0644 "$SRC/deploy/$NAME.service" "$UNIT_DIR/$NAME.service"
install -m 0644 "$SRC/deploy/$NAME@.service" "$UNIT_DIR/$NAME@.service"
# Log-based alerting (docs/alerting.md): the mtail program and its unit (not enabled here), and
# the Prometheus / Alertmanager files to merge into theirs.
install -d -m 0755 "$ETC_DIR/mtail" "$APP_DIR/alerts"
install -m 0644 "$SRC/deploy/alerts/$NAME.mtail" "$ETC_DIR/mtail/$NAME.mtail"
install -m 0644 "$SRC/deploy/alerts/$NAME-mtail.service" "$UNIT_DIR/$NAME-mtail.service"
for f in prometheus-rules.yaml prometheus.yml alertmanager.yml loki-rules.yaml promtail.yaml \
  journalctl-jq.sh; do
  install -m 0644 "$SRC/deploy/alerts/$f" "$APP_DIR/alerts/$f"
done

# 5. Config and credentials: created once, never overwritten.
if [[ ! -e "$ETC_DIR/config.yaml" ]]; then
  install -m 0640 "$SRC/deploy/config.example.yaml" "$ETC_DIR/config.yaml"
  own "root:$SERVICE_USER" "$ETC_DIR/config.yaml"
  say "created $ETC_DIR/config.yaml from deploy/config.example.yaml"
else
  say "kept existing $ETC_DIR/config.yaml"
fi
CREDS="$ETC_DIR/credentials.env"
if [[ ! -e "$CREDS" ]]; then
  (umask 077 && cp "$SRC/deploy/credentials.example.env" "$CREDS")
  chmod 0600 "$CREDS"
  own root:root "$CREDS"
  say "created $CREDS (0600) from deploy/credentials.example.env"
else
  mode="$(stat -c '%a' "$CREDS")"
  say "kept existing $CREDS (mode $mode)"
  if [[ "$mode" != "600" && "$mode" != "400" ]]; then
    say "WARNING: $CREDS is mode $mode; it holds API secrets: chmod 0600 $CREDS" >&2
  fi
fi

if [[ -z "$DESTDIR" ]]; then
  systemctl daemon-reload
fi

cat <<EOF

Next steps:
  1. Edit $ETC_DIR/config.yaml: accounts, targets, main.expected_positions.
  2. Put each enabled account's API key in $CREDS
     (OKX_<NAME>_API_KEY / _SECRET_KEY / _PASSPHRASE; keep it 0600 root:root).
  3. Check both (as root, in a subshell so the secrets do not stay in your shell):
     (set -a; . $CREDS; $APP_DIR/.venv/bin/reactor check-config --config $ETC_DIR/config.yaml)
  4. First run on live accounts with --dry-run (see the comment at the top of config.yaml):
     systemctl edit $NAME   # ExecStart= ... --dry-run
  5. systemctl enable --now $NAME
     journalctl -u $NAME -o cat -f          # JSON events, catalogued in docs/events.md
     curl -s http://127.0.0.1:8787/healthz   # status page on http://127.0.0.1:8787/
  Shards: /etc/$NAME/<shard>.yaml + <shard>.env (0600), then
     systemctl enable --now $NAME@<shard>
  Alerts (apt-get install prometheus prometheus-alertmanager mtail; $APP_DIR/docs/alerting.md):
     systemctl enable --now $NAME-mtail      # counts the journal's events on 127.0.0.1:3903
     then merge $APP_DIR/alerts/prometheus.yml and alertmanager.yml into Prometheus' and
     Alertmanager's configs and copy prometheus-rules.yaml next to prometheus.yml.
EOF
