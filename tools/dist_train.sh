#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py args]
# GPUS: processes per node (GPUs, or CPU processes that train with the gloo
# backend). Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT.
USAGE="tools/dist_train.sh CONFIG GPUS [train.py args]"
if [ "$#" -lt 2 ]; then
    echo "usage: $USAGE" >&2
    exit 2
fi
exec bash "$(dirname "$0")/dist_launch.sh" "$USAGE" "$2" train.py 1 "$1" "${@:3}"
