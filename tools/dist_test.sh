#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT. Without GPUs, GPUS CPU
# processes evaluate with the gloo backend.
set -e
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
# GPUS: processes per node (GPUs, or CPU processes without GPUs)
if [ "$#" -lt 3 ]; then
    echo "usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]" >&2
    exit 2
fi
case "$GPUS" in
    ''|*[!0-9]*) GPUS=0 BAD=1 ;;
esac
if [ -n "${BAD:-}" ] || [ "$((10#$GPUS))" -lt 1 ]; then
    echo "error: GPUS must be a positive integer (processes per node, e.g. 2), got '$3'; usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]" >&2
    exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
HERE=$(dirname "$0")
PYTHONPATH="$HERE/..":${PYTHONPATH:-} \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$HERE/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
