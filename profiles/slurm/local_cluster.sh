#!/usr/bin/env bash
# A single-node SLURM on this machine, for testing the SLURM profile (tests/test_slurm.py,
# .ci/run). Not for production: no accounting database, no cgroups, jobs run as root.
#
#   profiles/slurm/local_cluster.sh start    install (if missing), configure, start, wait
#   profiles/slurm/local_cluster.sh status   daemons and node state; exit 0 when usable
#   profiles/slurm/local_cluster.sh stop     stop the daemons it started (by PID file)
#
# Needs root and a Debian/Ubuntu machine (apt packages slurmctld slurmd slurm-client
# munge, SLURM 22.05 on Debian 12). It runs the daemons directly (no systemd):
#   munged (as the munge user), slurmctld -c, slurmd.
# Facts it respects:
#   * the config lives at /etc/slurm/slurm.conf: the executor plugin's job step strips
#     SLURM_CONF from its nested srun, so a config elsewhere is not found inside jobs;
#   * no slurmdbd, so `sacct` does not work: run snakemake with
#     `--slurm-status-command squeue` against this cluster (MinJobAge=300 keeps finished
#     jobs visible to squeue long enough);
#   * the node offers one fake GPU (gres gpu:1) whose File= is a character device
#     (/dev/null's numbers), else slurmd finds no device and the node drains;
#   * DefMemPerCPU is set, else one job without --mem takes all the node's memory.
# It refuses to touch a slurm.conf it did not write (a real site's configuration).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES_CONF=$CONF_DIR/gres.conf
MARKER="# written by instructnet profiles/slurm/local_cluster.sh"
FAKE_GPU=/dev/instructnet_fakegpu0
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
RUN=/run/instructnet-slurm
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=$RUN/slurmctld.pid
SLURMD_PID=$RUN/slurmd.pid
PACKAGES=(slurmctld slurmd slurm-client munge)
WAIT_S=${INSTRUCTNET_SLURM_WAIT_S:-60}

log() { echo "local_cluster: $*" >&2; }
die() { log "$*"; exit 1; }

need_root() { [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"; }

install_packages() {
    local missing=()
    for bin in slurmctld slurmd sinfo munged; do
        command -v "$bin" >/dev/null 2>&1 || command -v "/usr/sbin/$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install ${PACKAGES[*]}"
    log "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script: refusing to replace a site's configuration"
    fi
    mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS" "$RUN"
    [ -c "$FAKE_GPU" ] || mknod "$FAKE_GPU" c 1 3
    local host node
    host=$(hostname -s)
    # "NodeName=<host> CPUs=… Boards=… SocketsPerBoard=… CoresPerSocket=… ThreadsPerCore=… RealMemory=…"
    node=$(slurmd -C | head -n 1)
    cat >"$CONF" <<EOF
$MARKER
ClusterName=instructnet
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=300
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
$node Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$GRES_CONF" <<EOF
$MARKER
NodeName=$host Name=gpu File=$FAKE_GPU
EOF
}

node_state() { sinfo -h -N -o "%t" 2>/dev/null | head -n 1; }

start() {
    need_root
    install_packages
    if alive "$CTLD_PID" && alive "$SLURMD_PID"; then
        log "already running"
        status
        return
    fi
    write_config
    # munged: as the munge user, with its key from the package (create one if absent)
    mkdir -p /run/munge && chown munge:munge /run/munge
    [ -f /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key; }
    if ! alive "$MUNGE_PID"; then
        runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID"
    fi
    alive "$CTLD_PID" || /usr/sbin/slurmctld -c
    alive "$SLURMD_PID" || /usr/sbin/slurmd
    local waited=0
    until [ "$(node_state)" = idle ]; do
        if [ "$waited" -ge "$WAIT_S" ]; then
            log "node not idle after ${WAIT_S}s: $(sinfo -N -l 2>&1 | tail -n +2)"
            tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "up after ${waited}s"
    status
}

stop_one() {  # name pidfile
    local name=$1 pidfile=$2 pid
    if ! [ -f "$pidfile" ]; then
        return 0
    fi
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name ($pid) ignored SIGTERM; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
        log "stopped $name ($pid)"
    fi
    rm -f "$pidfile"
}

stop() {
    need_root
    if command -v scancel >/dev/null && alive "$CTLD_PID"; then
        scancel --full --user=root 2>/dev/null || true  # jobs of earlier test runs
    fi
    stop_one slurmd "$SLURMD_PID"
    stop_one slurmctld "$CTLD_PID"
    stop_one munged "$MUNGE_PID"
}

status() {
    local ok=0
    for pair in "munged:$MUNGE_PID" "slurmctld:$CTLD_PID" "slurmd:$SLURMD_PID"; do
        local name=${pair%%:*} pidfile=${pair#*:}
        if alive "$pidfile"; then
            echo "$name running (pid $(cat "$pidfile"))"
        else
            echo "$name not running"
            ok=1
        fi
    done
    if [ "$ok" = 0 ]; then
        sinfo -N -o "%N %t %c %m %G" || ok=1
    fi
    return $ok
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
