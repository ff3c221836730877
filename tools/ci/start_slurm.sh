#!/usr/bin/env bash
# Start a one-node Slurm cluster on this machine, for the real-Slurm test of tools/slurm_*.sh.
#
#   bash tools/ci/start_slurm.sh        (as root)
#
# Installs Debian's slurm-wlm and munge if missing, writes a single-node slurm.conf (this host,
# its `nproc` CPUs, one partition named by $SLURM_PARTITION, default "cpu"; no accounting, no
# cgroups, so that it runs in a container), creates a munge key, starts munged, slurmctld and
# slurmd as root without systemd, and waits until `sinfo` shows the node idle.
# Idempotent: what runs and answers is left alone; a second run returns in a second.
#
# It never replaces a slurm.conf it did not write: on a machine with its own Slurm set-up it
# stops with a message. Exit status: 0 when the cluster answers; 3 when Slurm cannot be
# installed here (not root, no package source): the message says why, and the test that needs
# the cluster skips with it; 1 for anything else.
set -euo pipefail

PARTITION=${SLURM_PARTITION:-cpu}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK='# Written by mmpyconv tools/ci/start_slurm.sh'
STATE=/var/lib/mmpyconv-slurm
LOGS=/var/log/mmpyconv-slurm
WAIT_S=${SLURM_START_TIMEOUT:-90}

say() { printf '==> [start_slurm] %s\n' "$*"; }
cannot() {
    printf 'start_slurm: cannot install Slurm here: %s\n' "$*" >&2
    exit 3
}
die() {
    printf 'start_slurm: %s\n' "$*" >&2
    exit 1
}

running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop() {  # the daemon whose pid file is $1
    if running "$1"; then
        kill "$(cat "$1")"
        for _ in $(seq 50); do running "$1" || break; sleep 0.1; done
    fi
    rm -f "$1"
}
up() { say "Slurm is up: partition $PARTITION, $(sinfo -h -p "$PARTITION" -o '%N %c CPUs %T')"; }
node_idle() {
    # Answers within the timeout and lists the partition's node as idle (or mixed/allocated:
    # another job may run on it already).
    local state
    state="$(timeout 5 sinfo --noheader --partition="$PARTITION" --format=%T 2>/dev/null)" \
        || return 1
    [[ "$state" =~ ^(idle|mixed|allocated|completing) ]]
}

if command -v sinfo >/dev/null 2>&1 && node_idle; then
    up
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    if command -v sinfo >/dev/null 2>&1 && timeout 5 sinfo >/dev/null 2>&1; then
        die "Slurm runs here, but partition $PARTITION has no node up; name one that has \
(SLURM_PARTITION=...), or run this script as root on a machine it set up"
    fi
    cannot "Slurm is not running and starting it needs root (this is uid $EUID)"
fi

# ------------------------------------------------------------------------ packages
missing=()
for pair in slurmctld:slurmctld slurmd:slurmd srun:slurm-client munged:munge; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || cannot "no apt-get to install ${missing[*]}"
    say "installing slurm-wlm and munge (apt-get)"
    # No service starts from the packages' scripts: this script starts the daemons itself, and
    # a container has no systemd.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
    fi
    status=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends slurm-wlm munge >/dev/null; } || status=$?
    ((own_policy)) && rm -f "$policy"
    ((status == 0)) || cannot "apt-get install slurm-wlm munge failed (exit $status)"
fi

# ------------------------------------------------------------------------ munge
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    say "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
# munged checks that its key and folders belong to the user it runs as (here root).
chown root:root /etc/munge /etc/munge/munge.key /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "starting munged"
    stop /run/munge/munged.pid
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    munged --force
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null || die "munged does not answer; see /var/log/munge/munged.log"
fi

# ------------------------------------------------------------------------ slurm.conf
HOST="$(hostname -s)"
CPUS="$(nproc)"
# The job's tasks find their master by this name (SLURM_NODELIST), as on a real cluster.
getent hosts "$HOST" >/dev/null \
    || die "this host's name $HOST does not resolve; add '127.0.0.1 $HOST' to /etc/hosts"
if [[ -e $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; this machine has its own Slurm set-up \
(start it, or move $CONF away to let this script write a one-node one)"
fi
mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$LOGS"
new_conf="$(cat <<EOF
$MARK
# One node, this host; no accounting, no cgroups (proctrack/linuxproc, task/none), so that it
# runs in a container without systemd.
ClusterName=mmpyconv
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=5
MinJobAge=30
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
)"
restart=0
if [[ ! -e $CONF ]] || [[ "$(cat "$CONF")" != "$new_conf" ]]; then
    say "writing $CONF (node $HOST, $CPUS CPUs, partition $PARTITION)"
    printf '%s\n' "$new_conf" >"$CONF"
    restart=1
fi

# ------------------------------------------------------------------------ daemons
if ((restart)); then
    stop "$STATE/slurmd.pid"
    stop "$STATE/slurmctld.pid"
fi
if ! running "$STATE/slurmctld.pid"; then
    say "starting slurmctld"
    # -c: a clean start (no jobs or node states kept from an earlier configuration).
    slurmctld -c || die "slurmctld did not start; see $LOGS/slurmctld.log"
fi
if ! running "$STATE/slurmd.pid"; then
    say "starting slurmd"
    slurmd || die "slurmd did not start; see $LOGS/slurmd.log"
fi

say "waiting for the node to be idle (at most ${WAIT_S}s)"
for ((i = 0; i < WAIT_S * 2; i++)); do
    if node_idle; then
        up
        exit 0
    fi
    # A node that was down (an earlier daemon died) comes back once its slurmd registers.
    if ((i == 10)); then
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    fi
    sleep 0.5
done
sinfo -N -l >&2 || true
tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
die "the node did not become idle within ${WAIT_S}s (logs above)"
