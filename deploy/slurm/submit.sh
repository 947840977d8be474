#!/usr/bin/env bash
# Submits a sharded stage as a Slurm array and its merge as a job that runs only if every task
# succeeded. Run from the repository root, with the parameters of common.sh in the environment:
#
#   deploy/slurm/submit.sh synth                 # SHARDS=8 by default: --array=0-7
#   SHARDS=16 deploy/slurm/submit.sh contaminate
#   MODEL_NAME=model_a_human ADAPTER=runs/experiment/runs/model_a_human/adapter \
#       deploy/slurm/submit.sh predict
#
# Extra arguments go to the array's sbatch (e.g. --partition).
set -euo pipefail
source deploy/slurm/common.sh
export SHARDS
stage=${1:?usage: deploy/slurm/submit.sh synth|contaminate|predict [sbatch options]}
shift
array=$(sbatch --parsable --array="0-$((SHARDS - 1))" "$@" "deploy/slurm/$stage.sbatch")
merge=$(sbatch --parsable --dependency="afterok:${array%%;*}" deploy/slurm/merge.sbatch "$stage")
echo "array job $array, merge job $merge"
