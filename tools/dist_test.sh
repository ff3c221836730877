#!/usr/bin/env bash
# Distributed testing with torchrun, one process per GPU (or per CPU worker: without a GPU the
# processes run on the CPU with the gloo backend).
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [tools/test.py arguments...]
#
# Several machines: run it on each with NNODES, NODE_RANK and MASTER_ADDR set alike.
# PORT (default 29500) is the master's port; PYTHON (default: python) the interpreter.
set -euo pipefail
if [[ $# -lt 3 ]]; then
    echo "usage: bash $0 CONFIG CHECKPOINT NUM_PROCS [tools/test.py arguments...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NUM_PROCS=$3
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
    "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
