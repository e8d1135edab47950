#!/usr/bin/env bash
# A throw-away single-node SLURM cluster (slurmctld + slurmd, with slurmdbd accounting on a private
# MariaDB), everything (config, state, spool, logs, PID files, munge socket, database) under one folder.
# Made to try the `hydra/launcher=slurm` path on a laptop or in CI; the tests in tests/test_slurm.py use it.
#
#   scripts/slurm_cluster.sh start DIR   install the Debian packages if missing, start it, wait until the
#                                        node is idle; then: export SLURM_CONF=DIR/slurm.conf
#                                        (DIR's parents must be searchable by all: munged checks it)
#   scripts/slurm_cluster.sh stop DIR    cancel its jobs and stop every daemon it started, by PID
#
# Needs root and Debian/Ubuntu (apt-get) for the packages, or slurmctld, slurmd, slurmdbd, munged and
# mariadbd already installed. Ports: $SLURM_CLUSTER_PORT (default 6817) for slurmctld, +1 slurmd,
# +2 slurmdbd, +3 MariaDB (bound to 127.0.0.1).
# Exit codes: 0 done, 1 failed (logs under DIR/log), 2 usage, 3 cannot run here (not root, no packages).
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
DAEMONS_STOP_ORDER=(slurmd slurmctld slurmdbd mariadbd munged)   # nodes first, the database last

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}

die() {
  echo "slurm_cluster: $*" >&2
  exit 1
}

cannot() {
  echo "slurm_cluster: cannot run here: $*" >&2
  exit 3
}

# Wait up to $1 seconds for the command after it to succeed; fail with the log named in $2.
wait_for() {
  local seconds=$1 log=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "slurm_cluster: timed out after ${seconds}s waiting for: $*" >&2
      tail -n 20 "$log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
}

install_packages() {
  local missing=0 exe
  for exe in slurmctld slurmd sbatch slurmdbd munged mariadbd mariadb-install-db; do
    command -v "$exe" >/dev/null || missing=1
  done
  ((missing)) || return 0
  [ "$(id -u)" = 0 ] || cannot "SLURM is not installed and installing it needs root"
  command -v apt-get >/dev/null || cannot "SLURM is not installed and there is no apt-get"
  echo "slurm_cluster: installing ${PACKAGES[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # An apt-get update only when the package lists do not know SLURM yet (a fresh image).
  apt-cache show slurmctld >/dev/null 2>&1 || apt-get update -qq >/dev/null \
    || cannot "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null \
    || cannot "apt-get install ${PACKAGES[*]} failed"
}

write_config() {
  local dir=$1 port=$2 node
  # The node as slurmd sees it (CPUs, sockets, RealMemory): a node that claims more than it has is
  # drained, and memory requests are checked against RealMemory.
  node=$(slurmd -C | head -n 1)
  cat >"$dir/slurm.conf" <<EOF
ClusterName=harness
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket.2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No systemd, no cgroups: track processes by parent PID, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# SLURM waits ~3 s before each batch start by default; a test cluster has nothing to batch.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# sacct (submitit's way to see a cancelled or timed-out job) needs accounting.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((port + 2))
AccountingStoragePass=$dir/munge/munge.socket.2
MailProg=/bin/true
ReturnToService=2
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  # slurmdbd reads slurmdbd.conf beside $SLURM_CONF and refuses it unless only its owner can read it.
  (
    umask 077
    cat >"$dir/slurmdbd.conf" <<EOF
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((port + 2))
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket.2
PidFile=$dir/run/slurmdbd.pid
LogFile=$dir/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((port + 3))
StorageUser=root
StorageLoc=slurm_acct_db
EOF
  )
}

start() {
  local dir=$1 port=${SLURM_CLUSTER_PORT:-6817}
  install_packages
  [ "$(id -u)" = 0 ] || cannot "the daemons run as root (SlurmUser=root)"
  mkdir -p "$dir"/{state,spool,log,run,munge,db}
  dir=$(cd "$dir" && pwd)
  # munged wants every folder above its socket searchable by all (pytest's tmp_path is not).
  chmod 755 "$dir" "$dir/munge"
  local above=$dir
  while above=$(dirname "$above") && [ "$above" != / ]; do
    [ "$(($(stat -c %#a "$above") & 1))" = 1 ] || die "munged needs $above searchable by all (chmod o+x)"
  done
  [ ! -s "$dir/run/slurmctld.pid" ] || die "a cluster already runs from $dir (stop it first)"
  write_config "$dir" "$port"
  export SLURM_CONF=$dir/slurm.conf
  # Any failure from here on stops what was started.
  trap 'echo "slurm_cluster: start failed; logs in $dir/log" >&2; stop "$dir"' ERR

  # munge with a key of its own, so that nothing outside DIR is read or changed.
  (umask 077 && head -c 128 /dev/urandom >"$dir/munge/munge.key")
  munged --socket="$dir/munge/munge.socket.2" --pid-file="$dir/run/munged.pid" \
    --key-file="$dir/munge/munge.key" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
  wait_for 10 "$dir/log/munged.log" test -S "$dir/munge/munge.socket.2"

  # A private database: its own data folder and port, no password (bound to 127.0.0.1, thrown away).
  mariadb-install-db --no-defaults --datadir="$dir/db" --user=root --skip-test-db \
    --auth-root-authentication-method=normal >"$dir/log/mariadb-install.log" 2>&1
  mariadbd --no-defaults --datadir="$dir/db" --socket="$dir/run/mariadb.sock" --port=$((port + 3)) \
    --bind-address=127.0.0.1 --pid-file="$dir/run/mariadbd.pid" --log-error="$dir/log/mariadb.log" \
    --user=root --skip-grant-tables </dev/null >/dev/null 2>&1 &
  wait_for 30 "$dir/log/mariadb.log" mariadb-admin --no-defaults --socket="$dir/run/mariadb.sock" ping

  slurmdbd
  wait_for 30 "$dir/log/slurmdbd.log" bash -c "exec 3<>/dev/tcp/127.0.0.1/$((port + 2))"
  slurmctld -f "$SLURM_CONF"
  wait_for 30 "$dir/log/slurmctld.log" scontrol ping
  slurmd -f "$SLURM_CONF"
  wait_for 60 "$dir/log/slurmd.log" bash -c '[ "$(sinfo -h -o %t)" = idle ]'
  trap - ERR
  echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
  local dir=$1 name pid i
  export SLURM_CONF=$dir/slurm.conf
  # The cluster's own jobs go first, so that no job step outlives its slurmd.
  if [ -s "$dir/run/slurmctld.pid" ] && scontrol ping >/dev/null 2>&1; then
    squeue -h -o %A | xargs -r scancel --quiet 2>/dev/null || true
  fi
  for name in "${DAEMONS_STOP_ORDER[@]}"; do
    [ -s "$dir/run/$name.pid" ] || continue
    pid=$(cat "$dir/run/$name.pid")
    if kill "$pid" 2>/dev/null; then
      for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/run/$name.pid"
  done
}

[ $# = 2 ] || usage
case $1 in
  start) start "$2" ;;
  stop) stop "$2" ;;
  *) usage ;;
esac
