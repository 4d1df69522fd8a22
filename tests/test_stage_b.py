"""Stage B on the tiny detector: KL gradients, a block's loss goes down, determinism."""
import pytest
import torch

from fimaq import QuantConfig, quantize
from fimaq.models import quantize_detector_modules
from fimaq.models.detector import detector_forward
from fimaq.models.outputs import DetectorKL
from fimaq.quant import set_quant_mode
from fimaq.calib import run_stage_a, SearchOptions
from fimaq.recon.reconstruct import block_output_grads
from helpers import assert_reconstruction_improves, build_tiny, fake_batch

pytestmark = pytest.mark.slow


def stage_a_model(kind='mask', bits=4):
    model = build_tiny(kind)
    batch = fake_batch(n=2, h=160, w=192)
    qm = quantize_detector_modules(model, bits, bits)
    set_quant_mode(model, 'fp')
    run_stage_a(qm.ops(), qm.layernorm_pairs, [batch], detector_forward(model), search=False, reparam=False,
                opts=SearchOptions(), log=lambda s: None)
    return model, qm, batch


def test_kl_gradient_matches_finite_differences():
    torch.manual_seed(0)
    model, qm, batch = stage_a_model()
    name, block = qm.blocks[7]                       # the first Swin block of stage 3
    ops = {m for m in block.modules() if hasattr(m, 'quant_mode')}
    kl = DetectorKL(model, [batch], T=1.0)
    set_quant_mode(model, 'quant', only=ops)         # this block quantized, everything else FP
    g = block_output_grads(block, [batch], kl, per_sample=True)   # [images, N]
    flat_g = g.sum(0)
    idx = flat_g.abs().topk(3).indices.tolist()
    eps = 1e-2
    for j in idx:
        vals = []
        for sign in (1, -1):
            def bump(m, a, out, j=j, sign=sign):
                out = out.clone()
                per = out[0].numel()
                out.view(-1)[j % (2 * per)] += sign * eps  # index into the batch-flattened output
                return out
            h = block.register_forward_hook(bump)
            with torch.no_grad():
                vals.append(float(kl(0, batch)))
            h.remove()
        fd = (vals[0] - vals[1]) / (2 * eps)
        # rows of g are per image; element j of image b is flat index b * per + (j % per)
        per = g.shape[1]
        assert fd == pytest.approx(float(g.reshape(-1)[j % (2 * per)]), rel=0.1, abs=1e-7)


def test_reconstructing_a_block_lowers_its_loss():
    model, qm, batch = stage_a_model(bits=3)
    name, block = qm.blocks[3]
    assert_reconstruction_improves(model, name, block, batch, iters=80)


def test_fimaq_runs_and_is_deterministic():
    """Same seed, same weights; the second run keeps its caches on disk (cache_mb=0)."""
    outs = []
    for cache_mb in (8192, 0):
        model = build_tiny('mask')
        batch = fake_batch(n=1, h=96, w=128)
        qcfg = QuantConfig.from_dict(dict(method='fimaq', eq_n=4, search_round=1,
                                          recon=dict(iters=3, k=2, batch_size=1, cache_mb=cache_mb)))
        quantize(model, [batch], qcfg, log=lambda s: None)
        outs.append({k: v.clone() for k, v in model.state_dict().items()})
    assert outs[0].keys() == outs[1].keys()
    for k in outs[0]:
        assert torch.equal(outs[0][k], outs[1][k]), k
