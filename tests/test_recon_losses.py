"""Each reconstruction loss equals its formula, computed by hand on random tensors."""
import pytest
import torch

from fimaq.quant import UniformQuantizer
from fimaq.quant.adaround import AdaRoundQuantizer
from fimaq.recon import (FisherState, Normalized, beta_at, fisher_brecq_loss, fisher_diag_loss,
                         fisher_dplr_loss, fisher_lr_loss, mae_loss, mse_loss)


@pytest.fixture
def tensors():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(3, 2, 4, 5, generator=g, dtype=torch.float64)
    target = torch.randn(3, 2, 4, 5, generator=g, dtype=torch.float64)
    G = torch.rand(4, 40, generator=g, dtype=torch.float64)
    D = torch.rand(4, 40, generator=g, dtype=torch.float64)
    return out, target, G, D


def test_mse_mae(tensors):
    out, target, _, _ = tensors
    by_hand_mse = sum(float(((out[b] - target[b]) ** 2).sum()) for b in range(3)) / 3
    by_hand_mae = sum(float((out[b] - target[b]).abs().sum()) for b in range(3)) / 3
    assert float(mse_loss(out, target)) == pytest.approx(by_hand_mse, rel=1e-12)
    assert float(mae_loss(out, target)) == pytest.approx(by_hand_mae, rel=1e-12)


def test_fisher_losses(tensors):
    out, target, G, D = tensors
    B_inv = torch.linalg.inv(D @ D.t())
    delta = (out - target).reshape(3, -1)
    diag = [sum(float(G[j, n]) for j in range(4)) / 4 for n in range(40)]
    by_hand_diag = sum(float(delta[b, n]) ** 2 * diag[n] for b in range(3) for n in range(40)) / 120
    assert float(fisher_diag_loss(out, target, G)) == pytest.approx(by_hand_diag, rel=1e-12)
    lr = 0.0
    for b in range(3):
        a = [sum(abs(float(delta[b, n])) * float(G[j, n]) for n in range(40)) for j in range(4)]
        lr += sum(a[i] * float(B_inv[i, j]) * a[j] for i in range(4) for j in range(4))
    assert float(fisher_lr_loss(out, target, G, B_inv)) == pytest.approx(lr / 3, rel=1e-9)
    g_sq = torch.rand(3, 2, 4, 5, dtype=torch.float64)
    by_hand_brecq = float(sum((delta[b, n] ** 2) * g_sq.reshape(3, -1)[b, n]
                              for b in range(3) for n in range(40))) / 120
    assert float(fisher_brecq_loss(out, target, g_sq)) == pytest.approx(by_hand_brecq, rel=1e-12)
    # DPLR: each term divided by its first value, weighted p1/p2.
    n_lr, n_diag = Normalized(), Normalized()
    first = fisher_dplr_loss(out, target, G, B_inv, n_lr, n_diag, p1=0.3, p2=0.7)
    assert float(first) == pytest.approx(1.0)
    second = fisher_dplr_loss(out * 0.5, target * 0.5, G, B_inv, n_lr, n_diag, p1=0.3, p2=0.7)
    assert float(second) == pytest.approx(0.25)  # both terms are quadratic in Δ


def test_fisher_state_schedule_and_stable_inverse():
    logs = []
    st = FisherState(k=3, iters=30, mode='q', log=logs.append)
    assert [s for s in range(30) if st.due(s)] == [0, 10, 20]
    assert [s for s in range(30) if FisherState(3, 30, 'qf').due(s)] == [0, 1, 2]
    d = torch.rand(50)
    for _ in range(3):
        st.add(torch.rand(50), d)   # identical rows: B is singular
    assert logs and 'ill-conditioned' in logs[0] and len(logs) == 1
    assert torch.isfinite(st.b_inv).all()
    ok = FisherState(k=2, iters=10, log=logs.append)
    ok.add(torch.rand(50), torch.rand(50))
    ok.add(torch.rand(50), torch.rand(50))
    D = torch.stack(ok.d_rows)
    assert torch.allclose(ok.b_inv @ (D @ D.t()), torch.eye(2), atol=1e-4)


def test_adaround_step0_is_round_to_nearest_and_hard_lands_on_grid():
    torch.manual_seed(0)
    w = torch.randn(6, 10)
    base = UniformQuantizer(4, axes=(0,))
    base.init_minmax(w)
    ada = AdaRoundQuantizer(base, w)
    soft = ada(w)
    lo, hi = -ada.zero_point * ada.scale, (15 - ada.zero_point) * ada.scale
    assert torch.allclose(soft, torch.maximum(torch.minimum(w, hi), lo), atol=1e-3)  # soft = W on the grid's range
    ada.harden()
    hard = ada(w)
    assert torch.equal(hard, base(w))                       # hard at step 0 = round to nearest
    k = hard / ada.scale + ada.zero_point
    assert torch.allclose(k, k.round(), atol=1e-4)
    assert float(ada.regularizer(2.0)) == 0.0
    assert torch.equal(ada.to_uniform()(hard), hard)        # quantized weights are fixed points


def test_beta_schedule():
    assert beta_at(0, 100) is None and beta_at(19, 100) is None
    assert beta_at(20, 100) == 20.0 and beta_at(100, 100) == pytest.approx(2.0)
    assert beta_at(60, 100) == pytest.approx(20 - 18 * 40 / 80)


def test_cache_budget_spills_to_unlinked_memory_maps(tmp_path):
    from fimaq.recon.cache import BlockCache, CacheBudget
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, generator=g)) for _ in range(3)]
    ram, spilled = BlockCache(), BlockCache(budget=CacheBudget(2 * 3 * 4 * 2, str(tmp_path)))
    for cache in (ram, spilled):
        for a, b in batches:
            cache.add_inputs((a, b))
    # The first tensor fits the budget; the other five went to memory-mapped files.
    assert spilled.budget.ram_bytes == 48 and spilled.budget.disk_bytes == 2 * 48 + 3 * 20
    assert list(tmp_path.iterdir()) == []           # files are unlinked at once
    for idx in ([0], [5, 1, 3]):
        for x, y in zip(spilled.input_batch(idx, 'cpu'), ram.input_batch(idx, 'cpu')):
            assert torch.equal(x, y)
    assert torch.equal(ram.input_batch([3], 'cpu')[1], batches[1][1][1:2].half().float())
