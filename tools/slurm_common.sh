#!/usr/bin/env bash
# Shared by tools/slurm_train.sh and tools/slurm_test.sh (sourced).
# srun_tool PARTITION JOB_NAME TOOL [TOOL args]: one srun task per GPU, each
# running tools/TOOL (callers pass --launcher=slurm).
# Environment: GPUS (total, default 8), GPUS_PER_NODE (default 8, at most
# GPUS), CPUS_PER_TASK (default 5), SRUN_ARGS (extra srun options), PORT
# (rendezvous port, default 29500), PYTHON (default python).
srun_tool() {
  local partition=$1 job_name=$2 tool=$3
  shift 3
  local gpus=${GPUS:-8}
  local gpus_per_node=${GPUS_PER_NODE:-8}
  [ "$gpus" -lt "$gpus_per_node" ] && gpus_per_node=$gpus
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  export PYTHONPATH="$here/..":${PYTHONPATH:-}
  [ -n "${PORT:-}" ] && export MASTER_PORT=$PORT
  # SRUN_ARGS is split on spaces on purpose: it holds several options.
  # shellcheck disable=SC2086
  exec srun -p "$partition" \
      --job-name="$job_name" \
      --gres=gpu:"$gpus_per_node" \
      --ntasks="$gpus" \
      --ntasks-per-node="$gpus_per_node" \
      --cpus-per-task="${CPUS_PER_TASK:-5}" \
      --kill-on-bad-exit=1 \
      ${SRUN_ARGS:-} \
      "${PYTHON:-python}" -u "$here/$tool" "$@"
}
