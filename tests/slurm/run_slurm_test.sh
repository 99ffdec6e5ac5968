#!/usr/bin/env bash
# Run the smoke preset through profiles/slurm on a real one-node SLURM cluster started here.
#
#   bash tests/slurm/run_slurm_test.sh [RESULTS_DIR]
#
# Installs Debian's slurm-wlm pieces (slurmctld, slurmd, slurm-client, slurmdbd), munge and
# mariadb-server, writes a one-node slurm.conf for this host, starts the daemons on loopback,
# runs `snakemake --workflow-profile profiles/slurm` on presets/smoke.yaml, checks that every
# non-local job went through sbatch and completed (sacct), checks the outputs, and stops what it
# started. Exit status: 0 passed, 1 failed, 77 skipped (the reason is printed: not root, no
# apt-get, packages not installable). Needs the project's virtual environment on PATH (jobs
# inherit the submitting environment) and snakemake-executor-plugin-slurm installed.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
RESULTS=${1:-$(mktemp -d)/results}
RAW_DIR=${RAW_DIR:-$REPO/../shared/data/medmnist}
STATE=$(mktemp -d /tmp/lnm-slurm.XXXXXX) && chmod 755 "$STATE"  # daemons run as munge/mysql/slurm
TIMEOUT=${SLURM_TEST_TIMEOUT:-900}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
log() { echo "[slurm-test] $*"; }

[[ $(id -u) -eq 0 ]] || skip "needs root to install and start SLURM daemons"
command -v apt-get >/dev/null || skip "no apt-get (not a Debian-like system)"
python -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
  || skip "snakemake-executor-plugin-slurm is not installed in this Python environment"
[[ -f $RAW_DIR/breastmnist.npz ]] || skip "BreastMNIST not found in $RAW_DIR"

PKGS="munge slurmctld slurmd slurm-client slurmdbd mariadb-server"
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  log "installing $PKGS"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$STATE/apt.log" 2>&1 \
    && apt-get install -y -qq --no-install-recommends $PKGS >>"$STATE/apt.log" 2>&1 \
    || { tail -5 "$STATE/apt.log"; skip "could not install $PKGS"; }
fi

PIDS=()
cleanup() {
  log "stopping daemons"
  for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid; do
    [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null
  done
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 2
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  rm -f /run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid
  [[ -n ${MUNGE_PID:-} ]] && kill "$MUNGE_PID" 2>/dev/null
  [[ -n ${MARIADB_PID:-} ]] && mysqladmin --socket="$SOCK" shutdown 2>/dev/null
  return 0
}
trap cleanup EXIT

HOST=$(hostname -s)
grep -qw "$HOST" /etc/hosts || echo "127.0.0.1 $HOST" >>/etc/hosts

# --- munge
mkdir -p /etc/munge /var/log/munge /run/munge /var/lib/munge
[[ -f /etc/munge/munge.key ]] || mungekey --create >/dev/null 2>&1 || \
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
chown -R munge:munge /etc/munge /var/log/munge /run/munge /var/lib/munge
chmod 400 /etc/munge/munge.key
su -s /bin/sh munge -c "munged --force" || fail "munged did not start"
MUNGE_PID=$(cat /run/munge/munged.pid 2>/dev/null)

# --- mariadb (accounting: the slurm plugin polls job states with sacct)
mkdir -p "$STATE/mysql" "$STATE/mysqld" && chown mysql:mysql "$STATE/mysql" "$STATE/mysqld"
SOCK=$STATE/mysqld/mysqld.sock
mariadb-install-db --user=mysql --datadir="$STATE/mysql" >"$STATE/mariadb-install.log" 2>&1 \
  || fail "mariadb-install-db failed (see $STATE/mariadb-install.log)"
mariadbd --user=mysql --datadir="$STATE/mysql" --socket="$SOCK" \
  --skip-networking=0 --bind-address=127.0.0.1 --port=3306 >"$STATE/mariadb.log" 2>&1 &
MARIADB_PID=$!
PIDS+=("$MARIADB_PID")
for _ in $(seq 60); do mysqladmin --socket="$SOCK" ping >/dev/null 2>&1 && break; sleep 1; done
mysql --socket="$SOCK" -e "
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;" \
  || fail "could not create the slurm database user"

# --- slurm configuration
CONF=/etc/slurm
mkdir -p $CONF /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
chown -R slurm:slurm /var/spool/slurmctld /var/log/slurm 2>/dev/null
NODE=$(slurmd -C | head -1 | sed 's/ UpTime=.*//')
cat >$CONF/slurm.conf <<EOF
ClusterName=lnmtest
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=300
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/none
$NODE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
cat >$CONF/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurm
StoragePort=3306
PidFile=/run/slurmdbd.pid
LogFile=$STATE/slurmdbd.log
EOF
chown slurm:slurm $CONF/slurmdbd.conf && chmod 600 $CONF/slurmdbd.conf
rm -f /run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid

# --- daemons
slurmdbd || fail "slurmdbd did not start (see $STATE/slurmdbd.log)"
for _ in $(seq 30); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1; done
slurmctld || fail "slurmctld did not start (see $STATE/slurmctld.log)"
slurmd || fail "slurmd did not start (see $STATE/slurmd.log)"
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qE "^idle" && break
  scontrol update nodename="$HOST" state=resume >/dev/null 2>&1
  sleep 1
done
sinfo -h -o %T | grep -qE "^idle" || { sinfo; tail -20 "$STATE/slurmctld.log"; fail "node never became idle"; }
log "SLURM is up: $(sinfo -h -o '%P %D %T %c CPUs %m MB')"

# --- the workflow through the SLURM profile
START=$(date +%Y-%m-%dT%H:%M:%S)
cd "$REPO" || fail "no repository at $REPO"
timeout -s INT -k 30 "$TIMEOUT" snakemake --workflow-profile profiles/slurm \
  --configfile presets/smoke.yaml --config results="$RESULTS" raw_dir="$RAW_DIR" \
  --default-resources slurm_account=root slurm_partition=main mem_mb=1000 runtime=10 \
  --set-resources train:mem_mb=1000 train:runtime=10 \
  --slurm-init-seconds-before-status-checks 1 --jobs 4 >"$STATE/snakemake.log" 2>&1
RC=$?
tail -5 "$STATE/snakemake.log"
[[ $RC -eq 0 ]] || { tail -40 "$STATE/snakemake.log"; fail "snakemake exited with $RC"; }

# --- every non-local job went through sbatch and finished. The console shows the short lines of
# the lnm logger plugin; Snakemake's full log (named on the console's "Complete log(s):" line)
# has every job's "rule X:" block and the executor's submission messages.
FULL=$(sed -n 's/^Complete log(s): //p' "$STATE/snakemake.log" | tail -1)
[[ -f $FULL ]] || fail "no complete Snakemake log named in $STATE/snakemake.log"
EXPECTED=$(grep -cE "^rule (preprocess|noise|train):" "$FULL")
SUBMITTED=$(grep -c "has been submitted with SLURM jobid" "$FULL")
COMPLETED=$(sacct -n -X -S "$START" -o State%20 | grep -c COMPLETED)
NOT_OK=$(sacct -n -X -S "$START" -o State%20 | grep -vc COMPLETED)
log "jobs: $EXPECTED cluster jobs planned, $SUBMITTED submitted with sbatch, $COMPLETED completed in sacct, $NOT_OK not completed"
[[ $EXPECTED -ge 5 ]] || fail "expected at least 5 cluster jobs (preprocess, 2 noise, training), got $EXPECTED"
[[ $SUBMITTED -eq $EXPECTED ]] || fail "$EXPECTED cluster jobs planned but $SUBMITTED submitted"
[[ $COMPLETED -eq $EXPECTED && $NOT_OK -eq 0 ]] || { sacct -X -S "$START"; fail "not every job completed"; }

# --- outputs
for f in tables/runs.csv tables/summary.md MANIFEST.sha256; do
  [[ -s $RESULTS/$f ]] || fail "missing output $RESULTS/$f"
done
(cd "$RESULTS" && sha256sum --quiet -c MANIFEST.sha256) || fail "MANIFEST.sha256 does not verify"
[[ $(tail -n +2 "$RESULTS/tables/runs.csv" | wc -l) -eq 4 ]] || fail "runs.csv should have 4 runs"
echo "PASS: the smoke workflow ran through SLURM ($SUBMITTED sbatch jobs, all COMPLETED)"
