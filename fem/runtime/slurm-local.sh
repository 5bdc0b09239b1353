#!/usr/bin/env bash
# A real one-node SLURM on this machine, for trying docs/cluster.md's job scripts.
#
#   fem/runtime/slurm-local.sh start    install (Debian: slurmctld, slurmd, slurm-client,
#                                       munge) when missing, configure, start the daemons
#   fem/runtime/slurm-local.sh stop     stop them (by their pid files)
#   fem/runtime/slurm-local.sh status   sinfo, or exit 1 when not running
#   fem/runtime/slurm-local.sh env      the line to export before sbatch/squeue/scancel
#   fem/runtime/slurm-local.sh check    start, tests/test_slurm.py on the host (docs/cluster.md's
#                                       scripts submitted as written), stop
#
# As root, on localhost only: one node named localhost (127.0.0.1) with this machine's
# cores and 90 % of its memory, one partition, no accounting, no systemd or cgroups
# (proctrack/linuxproc, task/none). The configuration, state, spool and logs live in
# BONEFEM_SLURM_DIR (default /tmp/bonefem-slurm); /etc is left alone except for the
# munge key that Debian's munge package makes. Jobs need SLURM_CONF=$dir/slurm.conf
# (see `env`).
set -euo pipefail

dir=${BONEFEM_SLURM_DIR:-/tmp/bonefem-slurm}
conf=$dir/slurm.conf
munge_pid=/run/munge/munged.pid

say() { printf 'slurm-local.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 2; }

ensure_packages() {
    local need=() p
    for p in slurmctld slurmd slurm-client munge; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
    done
    [ ${#need[@]} -eq 0 ] && return
    command -v apt-get >/dev/null || die "needs ${need[*]} (Debian packages)"
    say "installing host packages: ${need[*]}"
    apt-get update -qq >&2
    # Their maintainer scripts try to start services; without systemd that fails harmlessly.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
        >"$dir/apt.log" 2>&1 || { tail -n 20 "$dir/apt.log" >&2; die "could not install ${need[*]}"; }
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munge() {
    alive "$munge_pid" && return
    [ -f /etc/munge/munge.key ] || { mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null \
        || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 755 /run/munge
    install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
    runuser -u munge -- /usr/sbin/munged --pid-file "$munge_pid"
    touch "$dir/munged.ours"      # stop stops munged only when this script started it
    munge -n | unmunge >/dev/null || die "munge does not work (log: /var/log/munge/munged.log)"
}

write_conf() {
    local cpus mem
    cpus=$(nproc --all)
    mem=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p "$dir/state" "$dir/spool"
    cat > "$conf" <<CONF
# One-node SLURM for bonefem's checks (fem/runtime/slurm-local.sh); localhost only.
ClusterName=bonefem-local
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=5
DefMemPerCPU=$(( mem / cpus ))
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
    [ "$(id -u)" = 0 ] || die "run as root (the daemons run as root, on localhost only)"
    mkdir -p "$dir"
    ensure_packages
    if alive "$dir/slurmctld.pid" && alive "$dir/slurmd.pid"; then say "already running"; return; fi
    write_conf
    start_munge
    export SLURM_CONF=$conf
    # -c: a fresh controller (no jobs left from an earlier start).
    alive "$dir/slurmctld.pid" || /usr/sbin/slurmctld -c
    alive "$dir/slurmd.pid" || /usr/sbin/slurmd -N localhost
    local i
    for i in $(seq 60); do
        if sinfo -h -N -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
            say "running: $(sinfo -h -N -o '%N %c CPUs %m MB %t')"
            return
        fi
        sleep 1
    done
    tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
    die "the node did not come up in 60 s (logs in $dir)"
}

stop_pid() {
    local f=$1 pid i
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$f"
}

stop() {
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    if [ -f "$dir/munged.ours" ]; then stop_pid "$munge_pid"; rm -f "$dir/munged.ours"; fi
    say "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) alive "$dir/slurmctld.pid" && alive "$dir/slurmd.pid" || exit 1
            SLURM_CONF=$conf sinfo ;;
    env) echo "export SLURM_CONF=$conf" ;;
    check)
        shift
        start
        rc=0
        "$(dirname "${BASH_SOURCE[0]}")/host-pytest.sh" slurm "$(dirname "${BASH_SOURCE[0]}")/../../tests/test_slurm.py" "$@" || rc=$?
        stop
        exit $rc ;;
    *) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
