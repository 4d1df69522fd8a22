# The embedded benchmark as one sweep (README "Results"): the tiny detectors, every method.
#   python tools/sweep.py --grid benchmarks/embedded_sweep.py
#   python tools/sweep.py --grid benchmarks/embedded_sweep.py --collect-only \
#       --merge benchmarks/embedded_summary.json --out benchmarks/embedded_summary.md
#   python tools/make_table.py benchmarks/embedded_summary.json --out benchmarks/embedded \
#       --label mask-rcnn_swin-tiny_fpn_shapes=MR-tiny cascade-mask-rcnn_swin-tiny_fpn_shapes=Cascade-tiny \
#       mask-rcnn_vit-tiny_fpn_shapes=ViT-MR-tiny
# (--merge keeps the rows of the checked-in summary whose work dirs are gone; a cell run
# again replaces its row.)
# Stage B is shortened for a 2-core CPU (published: 20000 iterations on 256 images); the
# settings are here, not in the library, and the README table says so.
# The tiny ViT's rows so far: --models vit --methods fp calib mse fimaq --bits 4 3.
models = ['mask', 'cascade', 'vit']
methods = ['fp', 'minmax', 'calib', 'mse', 'fisher_brecq', 'fisher_diag', 'fisher_lr', 'fimaq']
bits = [4, 3, 6, 8]
seeds = [0]
# The table was computed drawing calibration images among all train images (padded to the
# largest); the library default now draws among the most common input shape.
quant_options = ['calib_shape=largest']
recon_options = ['recon.iters=300', 'recon_images=16']
work_dir = 'work_dirs/embedded_sweep'
threads = 1
