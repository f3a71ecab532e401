#!/usr/bin/env bash
# Sets up everything LeadLawk needs on a fresh Debian-like machine, idempotently:
# the virtual environment with the project and its dev tools, a Chromium (Playwright's own where it
# can be installed, the system package otherwise), promtool, and reachable PostgreSQL and Redis
# (started from the machine's installed servers when they are not answering).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: %s\n' "$*" >&2; exit 1; }

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c 'import leadlawk_daemon, pytest, mypy' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  say "installing the project and its dev tools"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch .venv/.installed
fi

apt_install() {
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    if [ ! -f /tmp/.leadlawk-apt-updated ]; then
      apt-get update -qq >/dev/null 2>&1 || true
      touch /tmp/.leadlawk-apt-updated
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
  else
    return 1
  fi
}

# Chromium: configured ($LEADLAWK_CHROMIUM) > Playwright's own > the system's.
have_chromium() {
  [ -n "${LEADLAWK_CHROMIUM:-}" ] && [ -x "${LEADLAWK_CHROMIUM}" ] && return 0
  .venv/bin/python - <<'PY' 2>/dev/null && return 0
import os, sys
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    sys.exit(0 if os.path.exists(p.chromium.executable_path) else 1)
PY
  for candidate in /usr/lib/chromium/chromium /usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome; do
    [ -x "$candidate" ] && return 0
  done
  return 1
}
if ! have_chromium; then
  say "installing Playwright's Chromium"
  if ! timeout 300 .venv/bin/playwright install chromium >/dev/null 2>&1; then
    say "Playwright's browser cannot be downloaded here; installing the system chromium package"
    apt_install chromium || true
  fi
  have_chromium || fail "no Chromium could be had: set LEADLAWK_CHROMIUM to a Chromium executable"
fi

if ! command -v promtool >/dev/null 2>&1; then
  say "installing promtool (Debian's prometheus package)"
  apt_install prometheus || true
  command -v promtool >/dev/null 2>&1 || fail "promtool is missing and could not be installed (apt-get install prometheus)"
  # The package starts a Prometheus server we do not want running on the test machine.
  (pkill -x prometheus || true) 2>/dev/null
fi

PG_HOST=${LEADLAWK_PG_HOST:-127.0.0.1}
if ! pg_isready -q -h "$PG_HOST" -p 5432 2>/dev/null; then
  say "PostgreSQL is not answering; starting the installed server"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h "$PG_HOST" -p 5432 && break; sleep 1; done
  pg_isready -q -h "$PG_HOST" -p 5432 || fail "PostgreSQL is not reachable at $PG_HOST:5432 and could not be started"
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "Redis is not answering; starting the installed server"
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || fail "Redis is not reachable at 127.0.0.1:6379 and could not be started"
fi
say "ready"
