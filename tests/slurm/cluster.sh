#!/usr/bin/env bash
# tests/slurm/cluster.sh - a private one-node SLURM cluster on loopback, for
# testing the job scripts in jobs/slurm/ (Debian 12, as root).
#
#   cluster.sh up DIR       install missing packages, start munged, slurmctld
#                           and slurmd with everything under DIR, wait until
#                           the node is idle, write DIR/env.sh and print its
#                           `export SLURM_CONF=...` line
#   cluster.sh down DIR     cancel the jobs, stop the daemons by the PIDs they
#                           recorded, remove what `up` created in DIR
#   cluster.sh status DIR   print the daemons' PIDs and `sinfo`; exit 0 when
#                           all three run and the controller answers
#
# Nothing system-wide is touched: the munge key, munged's socket, slurm.conf,
# the ports, state, spool, logs and PID files are all private to DIR, so
# several clusters (or a real one) can coexist. `up` on a live DIR only waits
# for it; `down` on a half-started DIR cleans whatever exists. Every client
# command needs `source DIR/env.sh` (SLURM_CONF) first.
set -euo pipefail

usage() { echo "usage: $0 up|down|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
log() { echo "cluster: $*" >&2; }

# DIR must be new, empty, or made by `up` (it holds the marker file): `down`
# removes DIR/etc, DIR/log and so on, which must never be system folders.
if [ ! -d "$2" ]; then
    case $cmd in
        up) mkdir -p "$2" ;;
        down) exit 0 ;;
        *) log "$2: no such cluster directory"; exit 1 ;;
    esac
fi
DIR=$(cd "$2" && pwd)
MARK=$DIR/.mtrain-slurm-cluster
if [ ! -e "$MARK" ]; then
    case $cmd in
        up) [ -z "$(ls -A "$DIR")" ] || { log "$DIR is neither empty nor a cluster"; exit 1; }
            : >"$MARK" ;;
        down) log "$DIR is not a cluster directory; nothing done"; exit 0 ;;
        *) log "$DIR is not a cluster directory"; exit 1 ;;
    esac
fi
CONF=$DIR/etc/slurm.conf
NODE=$(hostname -s)
export SLURM_CONF=$CONF

# ensure_packages: install what is missing (SLURM 22.05 and MUNGE on
# Debian 12). On a machine with systemd, Debian's packages also enable their
# own system services; the cluster here neither needs nor uses them.
ensure_packages() {
    local p missing=()
    for p in slurm-wlm slurmctld slurmd munge; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "missing packages ${missing[*]}; run as root or install them"
        exit 1
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    }
}

# live_pid NAME: the PID in DIR/run/NAME.pid if that process runs and its
# command line names DIR (so a recycled PID is never taken for ours).
live_pid() {
    local pid
    pid=$(cat "$DIR/run/$1.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$DIR/" || return 1
    echo "$pid"
}

# port_free PORT: no TCP socket on this machine has local port PORT (read
# from /proc, which needs no extra package).
port_free() {
    local hex
    hex=$(printf '%04X' "$1")
    ! awk -v p="$hex" 'NR > 1 { split($2, a, ":"); if (a[2] == p) found = 1 }
        END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# pick_ports: two consecutive free ports below Linux's ephemeral range
# (32768-60999), chosen once and kept in DIR/ports.
pick_ports() {
    [ -s "$DIR/ports" ] && return 0
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 12000))
        if port_free "$p" && port_free $((p + 1)); then
            echo "$p $((p + 1))" >"$DIR/ports"
            return 0
        fi
    done
    log "no free port pair found"
    exit 1
}

# write_munge_key: a private random key readable by the munge user only.
write_munge_key() {
    install -d -o munge -g munge -m 0755 "$DIR/munge"
    [ -s "$DIR/munge/munge.key" ] && return 0
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chown munge:munge "$DIR/munge/munge.key"
    chmod 0400 "$DIR/munge/munge.key"
}

# start_munged: munged as the munge user (as Debian runs it), with its key,
# socket, PID, seed and log files all under DIR/munge. The PID file lives
# there too (munged writes it as user munge) and is linked from DIR/run.
start_munged() {
    live_pid munged >/dev/null && return 0
    write_munge_key
    rm -f "$DIR/munge/munge.socket.2" "$DIR/munge/munge.socket.2.lock"
    runuser -u munge -- /usr/sbin/munged \
        --key-file="$DIR/munge/munge.key" \
        --socket="$DIR/munge/munge.socket.2" \
        --pid-file="$DIR/munge/munged.pid" \
        --seed-file="$DIR/munge/munged.seed" \
        --log-file="$DIR/munge/munged.log" 9>&- </dev/null >>"$DIR/log/munged.out" 2>&1 || {
        log "munged failed to start:"
        tail -5 "$DIR/log/munged.out" "$DIR/munge/munged.log" >&2 2>/dev/null
        exit 1
    }
    ln -sf "$DIR/munge/munged.pid" "$DIR/run/munged.pid"
    wait_for 20 "munged answers" munge_ok
}

munge_ok() {
    munge -n -S "$DIR/munge/munge.socket.2" 2>/dev/null \
        | unmunge -S "$DIR/munge/munge.socket.2" >/dev/null 2>&1
}

# node_line: this machine's node as slurmd itself measures it (CPUs, board,
# socket, core and thread counts, RealMemory in MiB), reached on loopback.
# Declaring exactly what slurmd finds keeps the node from being drained for
# "low socket*core*thread count" or "low RealMemory".
node_line() {
    local hw
    hw=$(env -u SLURM_CONF slurmd -C | head -1)
    hw=${hw#NodeName=* }
    echo "NodeName=$NODE NodeAddr=127.0.0.1 $hw State=UNKNOWN"
}

# write_conf: DIR/etc/slurm.conf (and an empty plugstack.conf), each setting
# explained in the file itself.
write_conf() {
    [ -s "$CONF" ] && return 0
    local ctld_port slurmd_port
    read -r ctld_port slurmd_port <"$DIR/ports"
    : >"$DIR/etc/plugstack.conf"
    cat >"$CONF.tmp" <<CONF
# slurm.conf for a private one-node test cluster, written by
# tests/slurm/cluster.sh (SLURM 22.05, Debian 12). Everything under
# $DIR.

# The cluster's name, used in state files only (no accounting database).
ClusterName=mtrain-test
# The controller runs on this machine and is reached on loopback.
SlurmctldHost=$NODE(127.0.0.1)
# Private TCP ports, chosen free when the cluster was created.
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
# Listen on the node's own address (loopback here) instead of all
# interfaces: slurmctld (NoCtldInAddrAny) and slurmd, slurmstepd, srun
# (NoInAddrAny).
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
# Both daemons run as root (the test runs as root; no slurm user needed).
SlurmUser=root
SlurmdUser=root

# Authentication through our own munged: its socket is private to DIR. The
# same socket serves job credentials (cred/munge). cred_expire is the
# lifetime of a job step credential, and also how long a requeued job waits
# before it may start again; 120 s is SLURM's default, kept here so the test
# sees what a real cluster does (the job scripts set StartTime=now instead).
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket.2,cred_expire=120

# State, spool, PID and log files, all private.
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No SPANK plugins: an empty private file instead of /etc/slurm/plugstack.conf.
PlugStackConfig=$DIR/etc/plugstack.conf

# Process tracking by parent PID through /proc, and no task binding: neither
# needs cgroups, which containers and VMs often lack.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Schedule cores (not whole nodes); memory is not a consumable resource, so
# jobs need no --mem.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# srun launches MPI ranks through PMIx, which Debian's Open MPI supports
# (its PMI2 does not work with srun --mpi=pmi2).
MpiDefault=pmix
# No accounting database, no job completion log, no usage sampling: sacct
# is unavailable, jobs are inspected with scontrol / squeue.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none

# Batch jobs may be requeued (also the default), so that a job can requeue
# itself with 'scontrol requeue' after checkpointing.
JobRequeue=1
# A node that was DOWN returns to service as soon as its slurmd registers
# with a valid configuration (e.g. after 'cluster.sh up' on a stopped DIR).
ReturnToService=2
# Finished jobs stay visible to 'scontrol show job' for 300 s (default).
MinJobAge=300
# Seconds between SIGTERM and SIGKILL when a job is cancelled or times out.
KillWait=30
# Do not cancel a job whose srun has lost contact (no limit), and do not
# kill the other tasks when one exits first.
InactiveLimit=0
Waittime=0

# The node: this machine as slurmd measures it, on loopback.
$(node_line)
# One partition holding it, the default, without a time limit.
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
    mv "$CONF.tmp" "$CONF"
}

# wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.5 s until it
# succeeds; fail naming WHAT after SECONDS.
wait_for() {
    local limit=$1 what=$2 i
    shift 2
    for ((i = 0; i < limit * 2; i++)); do
        "$@" && return 0
        sleep 0.5
    done
    log "timed out after ${limit}s waiting until $what"
    return 1
}

# start_daemon NAME: slurmctld or slurmd with our slurm.conf; each forks
# into the background and writes its PID file. fd 9 (the lock) is closed so
# a daemon does not hold the lock of DIR.
start_daemon() {
    live_pid "$1" >/dev/null && return 0
    "/usr/sbin/$1" -f "$CONF" 9>&- </dev/null >>"$DIR/log/$1.out" 2>&1 || {
        log "$1 failed to start:"; tail -20 "$DIR/log/$1.log" "$DIR/log/$1.out" >&2; exit 1
    }
    wait_for 20 "$1 wrote its PID file" live_pid "$1" >/dev/null || {
        tail -20 "$DIR/log/$1.log" >&2; exit 1
    }
}

ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

# node_ready: the node answers and can run jobs (idle when fresh; mixed or
# allocated when `up` runs again on a cluster with jobs).
node_ready() {
    local state
    state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null) || return 1
    case $state in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

write_env() {
    echo "export SLURM_CONF=$CONF" >"$DIR/env.sh"
    cat "$DIR/env.sh"
}

up() {
    ensure_packages
    mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"
    # munged runs as user munge and must reach DIR through its parents.
    chmod 0755 "$DIR"
    runuser -u munge -- test -x "$DIR" || {
        log "user munge cannot enter $DIR: make its parent directories world-searchable"
        exit 1
    }
    pick_ports
    write_conf
    start_munged
    start_daemon slurmctld
    wait_for 30 "slurmctld answers" ctld_up || { tail -20 "$DIR/log/slurmctld.log" >&2; exit 1; }
    start_daemon slurmd
    wait_for 60 "node $NODE is idle" node_ready || {
        sinfo -N -l >&2; tail -20 "$DIR/log/slurmd.log" >&2; exit 1
    }
    write_env
}

# stop_pids SECONDS PID...: SIGTERM, then SIGKILL to those still alive after
# SECONDS.
stop_pids() {
    local limit=$1 pid i alive
    shift
    [ $# -eq 0 ] && return 0
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < limit * 4; i++)); do
        alive=()
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
        [ ${#alive[@]} -eq 0 ] && return 0
        sleep 0.25
    done
    log "killing ${alive[*]}"
    kill -KILL "${alive[@]}" 2>/dev/null || true
}

# job_pids: processes left by this cluster's jobs (slurmstepd, job scripts
# and their children), found by the SLURM_CONF naming our slurm.conf in their
# environment, together with SLURM_JOB_ID or a slurmstepd command name. Only
# needed when the daemons died without cleaning up.
job_pids() {
    local d pid
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [ "$pid" = $$ ] && continue
        tr '\0' '\n' 2>/dev/null <"$d/environ" | grep -qxF "SLURM_CONF=$CONF" || continue
        if [ "$(cat "$d/comm" 2>/dev/null)" = slurmstepd ] \
            || tr '\0' '\n' 2>/dev/null <"$d/environ" | grep -q '^SLURM_JOB_ID='; then
            echo "$pid"
        fi
    done
}

# cancel_jobs: cancel every job of this cluster and wait (up to KillWait and
# a margin) until none is left running or completing.
cancel_jobs() {
    local ids i
    for ((i = 0; i < 90; i++)); do
        ids=$(squeue -h -o %A 2>/dev/null) || return 0
        [ -z "$ids" ] && return 0
        # shellcheck disable=SC2086
        scancel $ids 2>/dev/null || true
        sleep 0.5
    done
    log "jobs still listed after 45 s: $ids"
}

down() {
    local pids name pid
    ctld_up && cancel_jobs
    for name in slurmd slurmctld munged; do
        pid=$(live_pid "$name") && stop_pids 20 "$pid"
    done
    mapfile -t pids < <(job_pids)
    if [ ${#pids[@]} -gt 0 ]; then
        log "stopping stray job processes ${pids[*]}"
        stop_pids 5 "${pids[@]}"
    fi
    rm -rf "${DIR:?}/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$DIR/munge" \
        "$DIR/ports" "$DIR/env.sh"
    rm -f "$DIR/.lock" "$MARK"
    rmdir "$DIR" 2>/dev/null || true
}

status() {
    local name pid rc=0
    for name in munged slurmctld slurmd; do
        if pid=$(live_pid "$name"); then echo "$name: running, pid $pid"
        else echo "$name: not running"; rc=1; fi
    done
    if ctld_up; then sinfo -N; squeue; else echo "slurmctld: not answering"; rc=1; fi
    return $rc
}

# One command at a time per DIR.
exec 9>"$DIR/.lock"
flock 9
case $cmd in
    up) up ;;
    down) down ;;
    status) status ;;
    *) usage ;;
esac
