#!/usr/bin/env bash
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# Environment: GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, PORT, PYTHON
# (see tools/slurm_common.sh).
set -e
if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2
  exit 2
fi
source "$(dirname "$0")/slurm_common.sh"
srun_tool "$1" "$2" train.py "$3" --work-dir="$4" --launcher="slurm" "${@:5}"
