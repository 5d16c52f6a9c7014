#!/usr/bin/env bash
# Installs what the build and the tests need, and only what is missing, so it is fast when
# everything is present: Debian's Chromium and Firefox ESR (the browsers the tests drive), Synapse in
# .venv-synapse (the test homeserver) and node_modules (npm ci when package-lock.json is newer).
# Works on a fresh Debian bookworm machine as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    as_root apt-get update
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

if [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing Chromium (Debian package)"
  apt_install chromium
fi

if [ ! -x /usr/bin/firefox-esr ]; then
  echo "setup: installing Firefox ESR (Debian package)"
  apt_install firefox-esr
fi

# The popup shows SAS emoji; without a colour emoji font screenshots show empty boxes.
if ! fc-list 2>/dev/null | grep -qi 'emoji'; then
  echo "setup: installing an emoji font (Debian package)"
  apt_install fonts-noto-color-emoji
fi

if ! .venv-synapse/bin/python -c 'import synapse' 2>/dev/null; then
  echo "setup: installing Synapse into .venv-synapse"
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    apt_install python3 python3-venv
  fi
  python3 -m venv .venv-synapse
  .venv-synapse/bin/pip install --quiet --upgrade pip
  .venv-synapse/bin/pip install --quiet matrix-synapse
fi

# npm ci writes node_modules/.package-lock.json last: older than the lock file means stale.
# A node_modules that is a symlink (a git worktree sharing another checkout's) is left alone:
# npm ci would empty the folder it points to, under every checkout that shares it.
if [ -L node_modules ]; then
  if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json "$(readlink -f node_modules)/../package-lock.json"; then
    echo "setup: node_modules is a symlink to $(readlink -f node_modules); not running npm ci over it" >&2
  fi
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing node_modules (npm ci)"
  npm ci
fi
