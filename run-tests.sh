#!/usr/bin/env bash
# The project's own tests (unit tests, the lab, end-to-end runs of the suite as a subprocess).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
exec python3 -m pytest tests -p no:cacheprovider "$@"
