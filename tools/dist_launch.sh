#!/usr/bin/env bash
# What tools/dist_train.sh and tools/dist_test.sh share: check GPUS, then
# start GPUS processes per node of a tool with torch.distributed.run.
#   dist_launch.sh USAGE GPUS SCRIPT NPOS ARGS...
# runs tools/SCRIPT with the first NPOS of ARGS (its positional arguments),
# --launcher pytorch, then the rest of ARGS.
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT.
set -e
USAGE=$1
GPUS=$2
SCRIPT=$3
NPOS=$4
shift 4
case "$GPUS" in
    ''|*[!0-9]*) BAD=1 ;;
esac
if [ -n "${BAD:-}" ] || [ "$((10#$GPUS))" -lt 1 ]; then
    echo "error: GPUS must be a positive integer (processes per node, e.g. 2), got '$GPUS'; usage: $USAGE" >&2
    exit 2
fi
HERE=$(dirname "$0")
PYTHONPATH="$HERE/..":${PYTHONPATH:-} \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$((10#$GPUS))" \
    --master_port="${PORT:-29500}" \
    "$HERE/$SCRIPT" "${@:1:$NPOS}" --launcher pytorch "${@:$((NPOS + 1))}"
