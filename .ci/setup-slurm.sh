#!/usr/bin/env bash
# A one-node SLURM cluster on this machine for test/slurm.test.ts: Debian's slurm-wlm + munge,
# slurmctld and slurmd on localhost, started as plain daemons (no systemd needed).
#
#   sudo .ci/setup-slurm.sh          # idempotent: installs what is missing, (re)writes the
#                                    # config, starts what is not running, waits for an idle node
#
# Environment: SLURM_SETUP_TIMEOUT (seconds to wait for the node to become idle, default 60),
# SLURM_SETUP_FORCE=1 (restart the daemons even if they are running, e.g. after a config change).
#
# Notes for Slurm 22.05 on Debian 12:
#   * no cgroup.conf and no cgroup plugins: 22.05 dies on CgroupPlugin=disabled, and containers
#     rarely have a writable cgroup v2 tree. proctrack/linuxproc tracks a step's processes by
#     parent pid; task/none does no binding.
#   * SlurmUser=root: test temp dirs and the repository are root's; fine on a throwaway CI box.
#   * No slurmdbd: sacct does not work; use `scontrol show job` while the job is known
#     (MinJobAge keeps finished jobs visible for 300 s).
set -euo pipefail

TIMEOUT=${SLURM_SETUP_TIMEOUT:-60}
FORCE=${SLURM_SETUP_FORCE:-0}
say() { printf 'setup-slurm: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts daemons)"

# --- packages -------------------------------------------------------------------------------
need=()
for pair in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts try to start services through invoke-rc.d; without an init system that
  # fails harmlessly, but a policy-rc.d that says "no" keeps the install quiet and fast.
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; made_policy=1; fi
  trap 'if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
  apt-get update -qq >/dev/null || say "apt-get update failed; trying the install anyway"
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
PATH=/usr/sbin:/sbin:$PATH

# --- munge ----------------------------------------------------------------------------------
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null 2>&1; then mungekey --create --force >/dev/null 2>&1 || true; fi
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
MUNGE_USER=root
getent passwd munge >/dev/null && MUNGE_USER=munge
chown -R "$MUNGE_USER": /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "starting munged"
  pkill_pidfile() { [ -f "$1" ] && kill "$(cat "$1")" 2>/dev/null || true; }
  pkill_pidfile /run/munge/munged.pid
  if [ "$MUNGE_USER" = munge ]; then
    su -s /bin/sh munge -c 'munged' || munged --force
  else
    munged --force
  fi
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null 2>&1 || die "munged does not answer (see /var/log/munge/munged.log)"
fi

# --- slurm.conf -----------------------------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ { m = int($2 / 1024 / 2); if (m > 4096) m = 4096; print m }' /proc/meminfo)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
conf=$(cat <<EOF
# Written by .ci/setup-slurm.sh: a one-node test cluster on $HOST.
ClusterName=grerank-ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=5
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobRequeue=1
ReturnToService=2
MinJobAge=300
KillWait=10
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
)
changed=0
if [ ! -f /etc/slurm/slurm.conf ] || [ "$(cat /etc/slurm/slurm.conf)" != "$conf" ]; then
  printf '%s\n' "$conf" >/etc/slurm/slurm.conf
  changed=1
fi
# No cgroup.conf on purpose (see the notes at the top); say so if someone else left one.
if [ -f /etc/slurm/cgroup.conf ]; then say "note: /etc/slurm/cgroup.conf exists; this config uses no cgroup plugin"; fi

# --- daemons --------------------------------------------------------------------------------
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop() {
  if running "$1"; then
    local pid; pid=$(cat "$1"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
}
if [ "$changed" = 1 ] || [ "$FORCE" = 1 ]; then
  stop /run/slurm/slurmd.pid
  stop /run/slurm/slurmctld.pid
fi
if ! running /run/slurm/slurmctld.pid; then
  say "starting slurmctld"
  slurmctld || die "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
fi
if ! running /run/slurm/slurmd.pid; then
  say "starting slurmd"
  slurmd || die "slurmd did not start (see /var/log/slurm/slurmd.log)"
fi

# --- wait for an idle node --------------------------------------------------------------------
deadline=$((SECONDS + TIMEOUT))
state=
while :; do
  state=$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -1 || true)
  case "$state" in
    idle*|mixed*|allocated*|completing*) break ;;
    down*|drain*|fail*)
      # e.g. "Not responding" left over from an earlier start: bring it back.
      scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
  esac
  [ $SECONDS -lt $deadline ] || die "node $HOST is '${state:-unknown}' after ${TIMEOUT}s (see /var/log/slurm/*.log)"
  sleep 1
done
echo "slurm: node $HOST $state, $CPUS CPUs, ${MEM_MB} MB, partition debug ($(sinfo -V 2>/dev/null || echo slurm))"
