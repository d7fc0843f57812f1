#!/usr/bin/env bash
# The main job: install, bring up the embedded lab, run the suite against it (pytest -n auto), take the
# lab down. `./run-lab.sh --incidents` reproduces the five field incidents instead, one lab each.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
exec python3 -m vxlan_conformance.demo "$@"
