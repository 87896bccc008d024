#!/usr/bin/env bash
# Make the bed's Prometheus server and promtool available: Debian's `prometheus` package
# (2.42 on bookworm). If both binaries are already on PATH this does nothing.
#
# Usage: hack/testbed/install-prometheus.sh        (installing needs root, as in CI)
# The bed runs its own server (kommons_testbed.prometheus.start_prometheus); the package's own
# service must not start, so a temporary policy-rc.d forbids service starts during the install
# (harmless where there is no init system at all).
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "install-prometheus: prometheus cached ($(prometheus --version 2>&1 | head -n 1))"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-prometheus: prometheus/promtool missing; run as root or:" \
       "sudo apt-get install -y --no-install-recommends prometheus" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# kommons install-prometheus: no service starts during the install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  added_policy=1
fi
cleanup() { if [ "$added_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "install-prometheus: apt-get update"
start=$SECONDS
DEBIAN_FRONTEND=noninteractive apt-get update
echo "install-prometheus: apt-get install prometheus"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus

# Stop a server the package may have started anyway (an init system without policy-rc.d
# support); the bed starts its own on a free loopback port.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

for tool in prometheus promtool; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install-prometheus: $tool is still not on PATH after apt-get install" >&2
    exit 1
  fi
done
echo "install-prometheus: installed $(prometheus --version 2>&1 | head -n 1) in $((SECONDS - start))s"
