#!/usr/bin/env bash
# Training on a Slurm cluster: srun starts GPUS tasks, GPUS_PER_NODE per node, one GPU each.
#
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]
#
# Environment: GPUS (tasks in all, default 8), GPUS_PER_NODE (default 8; GPUS if fewer),
# CPUS_PER_TASK (default 5; Slurm queues a job whose tasks ask for more CPUs than a node has
# until it is cancelled), SRUN_ARGS (more srun options), PYTHON (default: python). CPU_ONLY=1
# asks for no GPUs: the tasks train on CPUs with the gloo backend. The master is the first node
# of the job on MASTER_PORT (default 29500).
set -euo pipefail
if [[ $# -lt 4 ]]; then
    echo "usage: bash $0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
PYTHON=${PYTHON:-python}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A job of fewer tasks than GPUS_PER_NODE asks for what it uses: Slurm refuses (or queues for
# ever) a request of GPUS_PER_NODE tasks' CPUs per node that a smaller node cannot give.
TASKS_PER_NODE=$((GPUS < GPUS_PER_NODE ? GPUS : GPUS_PER_NODE))
GRES=(--gres="gpu:$TASKS_PER_NODE")
if [[ "${CPU_ONLY:-0}" == 1 ]]; then
    GRES=()
fi

# shellcheck disable=SC2086  # SRUN_ARGS holds several options
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    "${GRES[@]}" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$TASKS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"
