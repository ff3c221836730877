#!/usr/bin/env bash
# Distributed training with torchrun, one process per GPU (or per CPU worker: without a GPU the
# processes train on the CPU with the gloo backend).
#
#   bash tools/dist_train.sh CONFIG NUM_PROCS [tools/train.py arguments...]
#
# Several machines: run it on each with NNODES, NODE_RANK and MASTER_ADDR set alike.
# PORT (default 29500) is the master's port; PYTHON (default: python) the interpreter.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: bash $0 CONFIG NUM_PROCS [tools/train.py arguments...]" >&2
    exit 2
fi
CONFIG=$1
NUM_PROCS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$NUM_PROCS" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
