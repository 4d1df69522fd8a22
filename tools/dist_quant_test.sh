#!/usr/bin/env bash
# Distributed quant_test: quantize once (rank 0), evaluate sharded over NGPUS processes.
#   tools/dist_quant_test.sh CONFIG CHECKPOINT NGPUS [quant_test.py arguments]
# Without GPUs the processes use gloo on the CPU. PORT, NNODES, NODE_RANK, MASTER_ADDR as in
# mmdet's tools/dist_test.sh; PYTHON picks the interpreter (default: python on PATH).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NGPUS [quant_test.py arguments]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NGPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29511}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$HERE/..:${PYTHONPATH:-}" \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NGPUS" --master_port="$PORT" \
    "$HERE/quant_test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
