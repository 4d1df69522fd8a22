#!/bin/bash
# Issue 4's "obvious fixes" for the stage B ordering, on the tiny detectors at W3A3 (seed 0),
# and the output KL of every run to the FP detector (tools/output_kl.py). Results:
# benchmarks/stage_b_variants.md (written by hand from the tables this prints) and
# benchmarks/stage_b_kl_*.{md,json} (per-image values in the JSON).
#
#   bash benchmarks/stage_b_variants.sh            # ~4 h on one CPU thread per run
#
# Every run reuses the stage A of the sweep's calib cell and has the grid's stage B settings
# (300 iterations on 16 images) unless the variant changes them. Runs already done are
# skipped. THREADS (default 1): torch threads per run; PY: the python to use.
set -e
cd "$(dirname "$0")/.."
PY=${PY:-python}
THREADS=${THREADS:-1}
SWEEP=work_dirs/embedded_sweep
VAR=work_dirs/stage_b_variants
GRID=benchmarks/embedded_sweep.py
BASE="calib_shape=largest recon.iters=300 recon_images=16"

$PY tools/sweep.py --grid $GRID --models mask --bits 3 --methods calib mse fimaq
$PY tools/sweep.py --grid $GRID --models cascade --bits 3 --methods calib mse fisher_brecq fisher_diag fisher_lr fimaq
$PY tools/sweep.py --grid $GRID --models mask --bits 3 --seeds 1 --methods calib

variant() {   # variant DETECTOR NAME METHOD OPTIONS...   (CALIB=calib_w3a3_seed1: that stage A)
    local det=$1 name=$2 method=$3; shift 3
    local cfg=mmdet_configs/tiny/${det}_swin-tiny_fpn_shapes.py
    local ckpt=checkpoints/${det}_swin-tiny_fpn_shapes.pth
    local dir=$VAR/$det/$name
    [ -f $dir/results.json ] && return 0
    mkdir -p $dir
    echo "[stage_b_variants] $det $name"
    $PY tools/quant_test.py $cfg $ckpt --work-dir $dir --method $method --w-bits 3 --a-bits 3 \
        --stage-a $SWEEP/${det}_swin-tiny_fpn_shapes/${CALIB:-calib_w3a3}/stage_a.pth --threads $THREADS \
        --quant-options $BASE "$@" > $dir.log 2>&1
}
mask=mask-rcnn; cascade=cascade-mask-rcnn
variant $cascade fimaq_T1 fimaq temperature=1.0
variant $cascade fimaq_k10 fimaq recon.k=10
variant $cascade fimaq_rpn fimaq target=rpn
variant $cascade fimaq_regw fimaq target_weights.rpn_reg=0.0025 target_weights.roi_reg=0.0025
variant $mask mse_it1000 mse recon.iters=1000
variant $mask fimaq_it1000 fimaq recon.iters=1000
CALIB=calib_w3a3_seed1 variant $mask mse_it1000_seed1 mse recon.iters=1000 seed=1
CALIB=calib_w3a3_seed1 variant $mask fimaq_it1000_seed1 fimaq recon.iters=1000 seed=1
variant $cascade fimaq_it1000 fimaq recon.iters=1000
variant $cascade mse_it1000 mse recon.iters=1000
variant $mask fisher_diag_it1000 fisher_diag recon.iters=1000
variant $cascade fisher_diag_it1000 fisher_diag recon.iters=1000

kl() {   # kl DETECTOR OUT REF RUN... [--temperature T]
    local det=$1 out=$2 ref=$3; shift 3
    $PY tools/output_kl.py mmdet_configs/tiny/${det}_swin-tiny_fpn_shapes.py \
        checkpoints/${det}_swin-tiny_fpn_shapes.pth "$@" --ref $ref --threads $THREADS --out $out
}
S=$SWEEP/${cascade}_swin-tiny_fpn_shapes
kl $cascade benchmarks/stage_b_kl_cascade-mask-rcnn_w3a3.md fimaq calib=$S/calib_w3a3 mse=$S/mse_w3a3 \
    fisher_brecq=$S/fisher_brecq_w3a3 fisher_diag=$S/fisher_diag_w3a3 fisher_lr=$S/fisher_lr_w3a3 fimaq=$S/fimaq_w3a3 \
    fimaq_T1=$VAR/$cascade/fimaq_T1 fimaq_k10=$VAR/$cascade/fimaq_k10 \
    fimaq_rpn=$VAR/$cascade/fimaq_rpn fimaq_regw=$VAR/$cascade/fimaq_regw \
    mse_it1000=$VAR/$cascade/mse_it1000 fisher_diag_it1000=$VAR/$cascade/fisher_diag_it1000 \
    fimaq_it1000=$VAR/$cascade/fimaq_it1000
S=$SWEEP/${mask}_swin-tiny_fpn_shapes
kl $mask benchmarks/stage_b_kl_mask-rcnn_w3a3.md fimaq_it1000 calib=$S/calib_w3a3 mse=$S/mse_w3a3 \
    fimaq=$S/fimaq_w3a3 mse_it1000=$VAR/$mask/mse_it1000 fisher_diag_it1000=$VAR/$mask/fisher_diag_it1000 \
    fimaq_it1000=$VAR/$mask/fimaq_it1000
kl $mask benchmarks/stage_b_kl_mask-rcnn_w3a3_seed1.md fimaq_it1000_seed1 calib_seed1=$S/calib_w3a3_seed1 \
    mse_it1000_seed1=$VAR/$mask/mse_it1000_seed1 fimaq_it1000_seed1=$VAR/$mask/fimaq_it1000_seed1
# What the KL is made of at stage B's temperature (20): almost only the box regression.
kl $mask benchmarks/stage_b_kl_mask-rcnn_w3a3_T20.md calib calib=$S/calib_w3a3 --temperature 20
S=$SWEEP/${cascade}_swin-tiny_fpn_shapes
kl $cascade benchmarks/stage_b_kl_cascade-mask-rcnn_w3a3_T20.md calib calib=$S/calib_w3a3 --temperature 20

# What stage B changed relative to its stage A start (roundings, activation scales).
S=$SWEEP/${mask}_swin-tiny_fpn_shapes
$PY benchmarks/stage_b_changes.py mmdet_configs/tiny/${mask}_swin-tiny_fpn_shapes.py \
    checkpoints/${mask}_swin-tiny_fpn_shapes.pth $S/calib_w3a3 $S/mse_w3a3 $S/fimaq_w3a3 \
    $VAR/$mask/mse_it1000 $VAR/$mask/fimaq_it1000
$PY benchmarks/stage_b_changes.py mmdet_configs/tiny/${mask}_swin-tiny_fpn_shapes.py \
    checkpoints/${mask}_swin-tiny_fpn_shapes.pth $S/calib_w3a3_seed1 \
    $VAR/$mask/mse_it1000_seed1 $VAR/$mask/fimaq_it1000_seed1
S=$SWEEP/${cascade}_swin-tiny_fpn_shapes
$PY benchmarks/stage_b_changes.py mmdet_configs/tiny/${cascade}_swin-tiny_fpn_shapes.py \
    checkpoints/${cascade}_swin-tiny_fpn_shapes.pth $S/calib_w3a3 $S/mse_w3a3 \
    $S/fisher_brecq_w3a3 $S/fisher_diag_w3a3 $S/fisher_lr_w3a3 $S/fimaq_w3a3 $VAR/$cascade/fimaq_k10 \
    $VAR/$cascade/mse_it1000 $VAR/$cascade/fimaq_it1000
