#!/usr/bin/env bash
# pantalaimon (PyPI) in .venv-pantalaimon, for bench item 3p only: run by bench/run.ts when
# that item runs, never by `npm test`. Installs only when missing (about a minute: it
# brings matrix-nio and python-olm, a manylinux wheel with libolm inside).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv-pantalaimon/bin/python -c 'import pantalaimon.client' 2>/dev/null; then
  echo "bench: installing pantalaimon into .venv-pantalaimon" >&2
  python3 -m venv .venv-pantalaimon
  .venv-pantalaimon/bin/pip install --quiet pantalaimon >&2
fi
