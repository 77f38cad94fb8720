#!/usr/bin/env bash
# Starts a standalone systemd-journald (no systemd as PID 1 on CI machines and containers) and waits
# until it accepts entries. Idempotent: does nothing when one is already running.
set -euo pipefail
if [ -S /run/systemd/journal/socket ] && pgrep -x systemd-journal >/dev/null; then
  echo "systemd-journald already running"
  exit 0
fi
mkdir -p /run/systemd/journal /var/log/journal
[ -s /etc/machine-id ] || systemd-machine-id-setup >/dev/null 2>&1 || dbus-uuidgen > /etc/machine-id
# its own session: not killed with the process group of whatever shell started it
setsid -f /lib/systemd/systemd-journald >/var/log/droptailer-journald.log 2>&1 </dev/null
for _ in $(seq 1 100); do
  if [ -S /run/systemd/journal/socket ]; then
    marker="droptailer-journald-ready-$$-$RANDOM"
    logger --socket /run/systemd/journal/dev-log -t droptailer-ci "$marker" 2>/dev/null || true
    if journalctl -q -o cat -t droptailer-ci 2>/dev/null | grep -q "$marker"; then
      echo "systemd-journald started"
      exit 0
    fi
  fi
  sleep 0.1
done
echo "systemd-journald did not come up" >&2
exit 1
