#!/usr/bin/env bash
# Install `sorter run` as a systemd service (Type=notify, watchdog, restart on failure).
#
#   sudo scripts/install-service.sh --config /etc/sorter/line.yaml [--sorter /opt/sorter/.venv/bin/sorter]
#                                   [--user sorter] [--name sorter] [--watchdog-s 10] [--print]
#
# --print writes the unit to stdout and installs nothing. Afterwards:
#   systemctl status sorter; journalctl -u sorter -f; systemctl reload sorter (re-reads the safe config keys)
set -euo pipefail

CONFIG=/etc/sorter/line.yaml
SORTER=$(command -v sorter || true)
RUN_USER=sorter
NAME=sorter
WATCHDOG_S=10
PRINT=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) CONFIG=$2; shift 2 ;;
    --sorter) SORTER=$2; shift 2 ;;
    --user) RUN_USER=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    --watchdog-s) WATCHDOG_S=$2; shift 2 ;;
    --print) PRINT=1; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [[ -z "$SORTER" || ! -x "$SORTER" ]]; then
  echo "cannot find the sorter executable; pass --sorter /path/to/.venv/bin/sorter" >&2
  exit 2
fi
if [[ "$CONFIG" != /* ]]; then
  echo "--config must be an absolute path (systemd does not start in this folder): $CONFIG" >&2
  exit 2
fi

CONFIG_DIR=$(dirname "$CONFIG")

UNIT=$(cat <<UNIT_EOF
[Unit]
Description=sorter: real-time controller of the sorting line ($CONFIG)
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=300
StartLimitBurst=10

[Service]
Type=notify
NotifyAccess=main
User=$RUN_USER
# relative paths in the config are relative to its folder; anything else relative starts there too
WorkingDirectory=$CONFIG_DIR
ExecStartPre=$SORTER check --config $CONFIG
ExecStart=$SORTER run --quiet --config $CONFIG
ExecReload=/bin/kill -HUP \$MAINPID
Restart=on-failure
RestartSec=2
WatchdogSec=$WATCHDOG_S
TimeoutStartSec=120
TimeoutStopSec=5
KillSignal=SIGTERM
Environment=PYTHONUNBUFFERED=1
StateDirectory=sorter
CacheDirectory=sorter
# the tracker's compiled kernels, built on the first start and loaded from here after (the package folder may be read-only)
Environment=NUMBA_CACHE_DIR=/var/cache/sorter/numba
# The line itself runs at normal priority (CPUSchedulingPolicy stays "other": a real-time vision loop would starve the
# machine); CAP_SYS_NICE and LimitRTPRIO let the controller link's own process (runtime.link_process) and the
# host-timed outputs' timing thread raise themselves to SCHED_FIFO (runtime.link_priority). Without them the link
# runs at normal priority and says so in the journal.
CPUSchedulingPolicy=other
LimitRTPRIO=50
AmbientCapabilities=CAP_SYS_NICE

[Install]
WantedBy=multi-user.target
UNIT_EOF
)

if [[ $PRINT -eq 1 ]]; then
  printf '%s\n' "$UNIT"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "run as root (sudo) to install, or --print to see the unit" >&2
  exit 2
fi
"$SORTER" check --config "$CONFIG"
id -u "$RUN_USER" >/dev/null 2>&1 || useradd --system --no-create-home --groups dialout,video "$RUN_USER"
printf '%s\n' "$UNIT" > "/etc/systemd/system/$NAME.service"
systemctl daemon-reload
systemctl enable --now "$NAME.service"
systemctl --no-pager status "$NAME.service" || true
