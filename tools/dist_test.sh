#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]
# GPUS: processes per node (GPUs, or CPU processes that evaluate with the
# gloo backend). Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT.
USAGE="tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]"
if [ "$#" -lt 3 ]; then
    echo "usage: $USAGE" >&2
    exit 2
fi
exec bash "$(dirname "$0")/dist_launch.sh" "$USAGE" "$3" test.py 2 "$1" "$2" "${@:4}"
