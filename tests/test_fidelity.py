"""Output KL to the FP detector (tools/output_kl.py): zero for FP, the hand formula otherwise."""
import copy

import pytest
import torch
import torch.nn.functional as F

from fimaq.engine.fidelity import (fp_reference, group_terms, mean_and_stderr,
                                   output_kl_per_image)
from fimaq.models.outputs import DetectorOutputs
from fimaq.recon.targets import output_kl, output_kl_terms
from helpers import build_tiny, fake_batch


@pytest.fixture(scope='module')
def detector():
    model = build_tiny('cascade')
    model.roi_head.test_cfg.score_thr = 0.0   # random weights: keep detections so the masks run
    batches = [fake_batch(n=1, h=160, w=192, seed=s) for s in (0, 1)]
    return model, batches, fp_reference(model, batches)


def test_fp_detector_has_zero_output_kl(detector):
    model, batches, ref = detector
    rows = output_kl_per_image(model, ref, batches, T=1.0)
    assert len(rows) == 2
    names = set(rows[0])
    assert {'rpn_cls', 'rpn_reg', 'roi_cls.2', 'roi_reg.0', 'mask.1'} <= names
    assert all(abs(v) < 1e-7 for r in rows for v in r.values())


def test_perturbed_rpn_changes_only_rpn_terms_by_the_bernoulli_formula(detector):
    model, batches, ref = detector
    other = copy.deepcopy(model)
    with torch.no_grad():
        g = torch.Generator().manual_seed(3)
        other.rpn_head.rpn_cls.weight.add_(0.3 * torch.randn(other.rpn_head.rpn_cls.weight.shape, generator=g))
    T = 2.0
    rows = output_kl_per_image(other, ref, batches, T=T)
    for i, (inputs, _) in enumerate(batches):
        with torch.no_grad():
            feats = model.extract_feat(inputs)
            lp = torch.cat([c.flatten(1) for c in model.rpn_head(feats)[0]], 1) / T
            lq = torch.cat([c.flatten(1) for c in other.rpn_head(feats)[0]], 1) / T
        p, q = torch.sigmoid(lp), torch.sigmoid(lq)
        hand = (p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))).mean()
        assert rows[i]['rpn_cls'] == pytest.approx(float(hand), rel=1e-4)
        assert rows[i]['rpn_cls'] > 0
        # RoI and mask heads see the FP proposals and detections: untouched by the RPN.
        assert all(v == 0 for n, v in rows[i].items() if not n.startswith('rpn_cls'))
    grouped = group_terms(rows[0])
    assert grouped['roi_cls'] == sum(v for n, v in rows[0].items() if n.startswith('roi_cls'))


def test_terms_sum_to_the_stage_b_kl(detector):
    model, batches, ref = detector
    other = copy.deepcopy(model)
    with torch.no_grad():
        for prm in other.roi_head.parameters():
            prm.mul_(1.05)
    outputs = DetectorOutputs(other)
    inputs, _ = batches[0]
    with torch.no_grad():
        cur = outputs(other.extract_feat(inputs), ref.fixed[0])
    terms = output_kl_terms(cur, ref.fp[0], T=4.0)
    assert float(sum(terms.values())) == pytest.approx(float(output_kl(cur, ref.fp[0], T=4.0)), rel=1e-6)
    w = {'mask': 0.0, 'roi_cls': 2.0}
    weighted = sum(v * w.get(n.split('.')[0], 1.0) for n, v in terms.items())
    assert float(output_kl(cur, ref.fp[0], T=4.0, weights=w)) == pytest.approx(float(weighted), rel=1e-6)
    # softmax term by hand: KL of class distributions, averaged over rows × classes
    lp = F.log_softmax(ref.fp[0]['roi_cls.0'][1] / 4.0, -1)
    lq = F.log_softmax(cur['roi_cls.0'][1] / 4.0, -1)
    assert float(terms['roi_cls.0']) == pytest.approx(float((lp.exp() * (lp - lq)).mean()), rel=1e-5)


def test_mean_and_stderr():
    m, se = mean_and_stderr([1.0, 2.0, 3.0, 6.0])
    assert m == 3.0
    assert se == pytest.approx((((4 + 1 + 0 + 9) / 3) ** 0.5) / 2)
    assert mean_and_stderr([5.0]) == (5.0, 0.0)
