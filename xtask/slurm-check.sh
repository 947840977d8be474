#!/usr/bin/env bash
# `cargo xtask slurm-check`: a real single-node Slurm cluster on this machine runs synthesis
# (tiny random T5, the committed season records) as a 3-task array through deploy/slurm/, and
# the merged result must equal an unsharded run byte for byte; then one task is cancelled
# mid-run, resubmitted alone, and the merge must still be identical.
#
# Usage: xtask/slurm-check.sh BIN_DIR (the directory holding qa-synth). Run as root from the
# repository root. Installs Debian's slurm-wlm and munge when absent; starts munged, slurmctld
# and slurmd with everything under a temporary directory; stops exactly those daemons (by pid)
# and removes the directory on exit.
set -euo pipefail
bin=$(realpath "${1:?usage: xtask/slurm-check.sh BIN_DIR}")
[ -x "$bin/qa-synth" ] || { echo "slurm-check: no qa-synth in $bin" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "slurm-check: needs root (it starts munged and slurmd)" >&2; exit 1; }
started=$(date +%s)

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm-check: installing slurm-wlm and munge"
    install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge)
    "${install[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && "${install[@]}" >/dev/null; }
fi

dir=$(mktemp -d /tmp/slurm-check.XXXXXX)
pids=()
cleanup() {
    local status=$?
    if [ "$status" != 0 ]; then
        for log in "$dir"/logs/qa-*.log; do
            [ -f "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
        done
    fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    rm -rf "$dir"
}
trap cleanup EXIT

# munge, with a fresh key and its socket in $dir.
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/logs"
chmod 700 "$dir/munge"
dd if=/dev/urandom bs=1 count=1024 of="$dir/munge/munge.key" status=none
chmod 400 "$dir/munge/munge.key"
munged --foreground --force --key-file="$dir/munge/munge.key" \
    --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
    2>>"$dir/logs/munged.err" &
pids+=($!)

node=$(hostname -s)
export SLURM_CONF="$dir/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=slurmcheck
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/logs/slurmctld.log
SlurmdLogFile=$dir/logs/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=check Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
for _ in $(seq 50); do [ -S "$dir/munge/munge.socket" ] && break; sleep 0.1; done
slurmctld -D -i -f "$SLURM_CONF" 2>>"$dir/logs/slurmctld.err" &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N "$node" 2>>"$dir/logs/slurmd.err" &
pids+=($!)
for i in $(seq 100); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && break
    [ "$i" = 100 ] && { echo "slurm-check: the node never came up" >&2; cat "$dir"/logs/*.log >&2; exit 1; }
    sleep 0.2
done
echo "slurm-check: cluster up ($node, $(nproc) CPUs) after $(( $(date +%s) - started )) s"

# The stage's inputs: 600 seed records (the season pattern) and a config whose generator is the
# tiny fixture and whose floor is off (its paraphrases are noise).
seeds="$dir/seeds.jsonl"
for i in $(seq 0 599); do
    printf '{"id":"s%d","question":"How many points did the home team score in game %d of the season?","context":"In game %d of the season the home team scored %d points.","answers":["%d points"],"source":"human"}\n' \
        "$i" "$i" "$i" $((i + 10)) $((i + 10))
done >"$seeds"
cat >"$dir/synth.yaml" <<EOF
synth:
  generator:
    t5:
      model: $PWD/fixtures/t5/flan-t5-tiny
      batch_size: 8
      generation: {max_new_tokens: 24, seed: 7}
  candidates: 2
  target: 100000
  min_acceptance: 0.0
  seeds_per_batch: 4
EOF
export CONFIG="$dir/synth.yaml" BIN="$bin" HUMAN_TRAIN="$seeds" SHARDS=3
# The scripts ask for a production node's resources; this one has $(nproc) CPUs.
small=(--cpus-per-task=1 --mem=0 --time=30 --output="$dir/logs/%x-%A_%a.log")

t0=$(date +%s)
"$bin/qa-synth" run --config "$CONFIG" --input "$seeds" --out-dir "$dir/whole" >/dev/null
unsharded=$(( $(date +%s) - t0 ))

same_as_whole() {
    for file in synthetic.jsonl rejected.jsonl funnel.json; do
        cmp -s "$dir/whole/$file" "$1/synth/merged/$file" || {
            echo "slurm-check: $1/synth/merged/$file differs from the unsharded run" >&2
            return 1
        }
    done
}

# 1. A 3-task array, then the merge as a dependent job, as deploy/slurm/submit.sh queues them.
export RUN_DIR="$dir/run"
t0=$(date +%s)
array=$(sbatch --parsable "${small[@]}" --array=0-2 deploy/slurm/synth.sbatch)
sbatch --parsable --wait "${small[@]}" --dependency="afterok:$array" \
    deploy/slurm/merge.sbatch synth >/dev/null
sharded=$(( $(date +%s) - t0 ))
same_as_whole "$RUN_DIR"
echo "slurm-check: 3-task array + merge equals the unsharded run (unsharded ${unsharded} s, array + merge ${sharded} s)"

# 2. Cancel task 1 mid-run, resubmit that index alone, merge: still identical.
export RUN_DIR="$dir/fault"
array=$(sbatch --parsable "${small[@]}" --array=0-2 deploy/slurm/synth.sbatch)
ledger="$RUN_DIR/synth/part-1/ledger.jsonl"
for i in $(seq 600); do
    [ "$(cat "$ledger" 2>/dev/null | wc -l)" -ge 5 ] && break
    [ "$i" = 600 ] && { echo "slurm-check: task 1 made no progress" >&2; exit 1; }
    sleep 0.1
done
scancel "${array}_1"
while squeue -h -j "$array" 2>/dev/null | grep -q .; do sleep 0.2; done
cancelled=$(wc -l <"$ledger")
sbatch --parsable --wait "${small[@]}" --array=1 deploy/slurm/synth.sbatch >/dev/null
finished=$(wc -l <"$ledger")
[ "$cancelled" -lt "$finished" ] || {
    echo "slurm-check: task 1 had finished ($cancelled seeds) before it was cancelled" >&2
    exit 1
}
sbatch --parsable --wait "${small[@]}" deploy/slurm/merge.sbatch synth >/dev/null
same_as_whole "$RUN_DIR"
echo "slurm-check: task 1 cancelled after $cancelled of $finished seeds, resubmitted alone," \
    "resumed; the merge still equals the unsharded run"
echo "slurm-check: passed in $(( $(date +%s) - started )) s"
