#!/usr/bin/env bash
# Throwaway local PostGIS for development and tests (127.0.0.1 only).
#   scripts/postgis.sh start [DIR]   → prints postgresql://… ; export GDI_STORE=<that>
#   scripts/postgis.sh replica DIR [REPLICA_DIR]   → a streaming replica of it; export GDI_STORE_READ=<that>
#   scripts/postgis.sh stop DIR
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m gdi.devdb "$@"
