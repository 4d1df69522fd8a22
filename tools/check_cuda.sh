#!/usr/bin/env bash
# CUDA check on a machine with a GPU (CI has none and does not run this): the embedded tiny
# Swin Mask R-CNN end to end on CUDA -- FP evaluation, stage A (calib), stage B (fimaq, short
# schedule) and evaluation -- then prints each step's time and throughput. About 5 minutes
# on a recent GPU once the environment exists (make demo builds it; tools/setup_env.sh
# builds mmcv's CUDA ops when nvcc is present).
#   tools/check_cuda.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-work_dirs/check_cuda}
PY=${PYTHON:-python}
[ -x .venv/bin/python ] && PY=.venv/bin/python
"$PY" - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit('error: no CUDA device visible to torch; run tools/check_cuda.sh on a GPU machine')
print(f'[check_cuda] torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}')
PYEOF
CFG=mmdet_configs/tiny/mask-rcnn_swin-tiny_fpn_shapes.py
CKPT=checkpoints/mask-rcnn_swin-tiny_fpn_shapes.pth
run() {  # name, then quant_test arguments
    local name=$1; shift
    local t0=$(date +%s.%N)
    "$PY" tools/quant_test.py "$CFG" "$CKPT" --work-dir "$WORK/$name" "$@" > "$WORK/$name.log" 2>&1 \
        || { echo "[check_cuda] $name FAILED; see $WORK/$name.log"; tail -n 5 "$WORK/$name.log"; exit 1; }
    local t1=$(date +%s.%N)
    "$PY" - "$WORK/$name/results.json" "$name" "$t0" "$t1" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
m, wall = r['metrics'], float(sys.argv[4]) - float(sys.argv[3])
assert r['device'].startswith('cuda'), f"ran on {r['device']}, not CUDA"
print(f"[check_cuda] {sys.argv[2]:<12} box AP {100 * m['coco/bbox_mAP']:.1f} mask AP {100 * m['coco/segm_mAP']:.1f} | "
      f"quantization {r['calib_seconds']:.1f} s (stage A {r.get('stage_a_seconds') or 0:.1f} s) | "
      f"evaluation {r['eval_seconds']:.1f} s = {r['num_images'] / max(r['eval_seconds'], 1e-9):.1f} img/s | "
      f"wall {wall:.0f} s | peak GPU {r.get('peak_cuda_mb') or 0:.0f} MiB")
PYEOF
}
mkdir -p "$WORK"
run fp --method fp
run calib_w4a4 --method calib --w-bits 4 --a-bits 4
run fimaq_w4a4 --method fimaq --w-bits 4 --a-bits 4 --stage-a "$WORK/calib_w4a4/stage_a.pth" \
    --quant-options recon.iters=500 recon_images=32
"$PY" benchmarks/recon_speed.py --images 8 --iters 100 --out "$WORK/recon_speed.md" | tail -n 20
echo "[check_cuda] done; results under $WORK"
