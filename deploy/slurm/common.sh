# Parameters shared by the stage scripts; each may be set in the environment of `sbatch`
# (sbatch passes the submitting shell's environment to the job by default).
SHARDS=${SHARDS:-8}                              # array tasks; each stage passes --shard-count $SHARDS
RUN_DIR=${RUN_DIR:-runs/experiment}              # the experiment's run directory (shared storage)
CONFIG=${CONFIG:-configs/experiment.yaml}        # the config file every shard reads
BIN=${BIN:-target/release}                       # where `cargo build --release` put the binaries
HUMAN_TRAIN=${HUMAN_TRAIN:-$RUN_DIR/data/processed/human_train.jsonl}
HUMAN_TEST=${HUMAN_TEST:-$RUN_DIR/data/processed/human_test.jsonl}
# The adapter `predict` answers with (empty: the base model, the zero-shot row).
ADAPTER=${ADAPTER:-}
# The name of the predictions being made, e.g. model_a_human (a directory under $RUN_DIR/runs).
MODEL_NAME=${MODEL_NAME:-zero_shot}
