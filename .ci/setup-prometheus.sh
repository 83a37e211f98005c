#!/usr/bin/env bash
# Installs the Prometheus server that test/grafana-prometheus.test.ts starts (Debian package
# `prometheus`, which brings /usr/bin/prometheus and /usr/bin/promtool). Idempotent: does nothing
# when `prometheus` is already on PATH.
#
# The test runs its own prometheus binary on a free port with a temporary config and storage;
# the Debian service (port 9090, /var/lib/prometheus) is not wanted, so it is stopped and disabled
# if the package started one.
set -euo pipefail

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

if ! command -v prometheus >/dev/null 2>&1; then
  # policy-rc.d exit 101: Debian maintainer scripts must not start services during this install.
  created_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  trap 'if [ -n "$created_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi' EXIT
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends prometheus
fi

# Whatever started anyway (an install from before, or a host where policy-rc.d was not honoured):
# stop and disable the packaged service so that nothing keeps port 9090 or writes /var/lib/prometheus.
for svc in prometheus prometheus-node-exporter; do
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$svc" ]; then
    $SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null 2>&1 && $SUDO update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
done

prometheus --version 2>&1 | head -n 1
