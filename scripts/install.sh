#!/usr/bin/env bash
# Installs everything the suite, its lab and its tests need on Debian 12, as root. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(openssh-server openssh-client iproute2 nftables iptables ethtool etcd-server etcd-client
      tcpdump tshark procps util-linux sudo kmod chromium)
missing=()
for pkg in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e ".[dev]"

# The HTML report tool (Allure 3), pinned by package-lock.json; reinstalled only when the lockfile changed.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.lock-sha256 2>/dev/null)" != "$lock_sum" ]; then
  command -v npm >/dev/null || { echo "install: npm not found; install Node.js 20+ with npm" >&2; exit 1; }
  echo "install: npm ci (report tool)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.lock-sha256
fi

# Real upstream flanneld for the lab (--flanneld) and its tests, built offline from ../shared when the
# shared sources are beside the project (the build script installs Go 1.19 from Debian when needed).
flannel_build=../shared/third_party/build-flanneld.sh
if [ -f "$flannel_build" ]; then
  for version in v0.20.2 v0.12.0; do
    bash "$flannel_build" "$version" >/dev/null || { echo "install: building flanneld $version failed" >&2; exit 1; }
  done
fi
