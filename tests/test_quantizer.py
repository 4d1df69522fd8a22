"""Quantizers: outputs lie on their grid and equal round-to-nearest; STE; log2."""
import torch

from fimaq.quant import Log2Quantizer, QuantLinear, QuantMatMul, UniformQuantizer, set_quant_mode


def test_uniform_on_grid_and_round_to_nearest():
    torch.manual_seed(0)
    w = torch.randn(16, 24) * torch.linspace(0.1, 3, 16)[:, None]
    for bits in (2, 3, 4, 8):
        q = UniformQuantizer(bits, axes=(0,))
        q.init_minmax(w)
        assert q.scale.shape == (16, 1)
        out = q(w)
        k = out / q.scale + q.zero_point
        assert torch.allclose(k, k.round(), atol=1e-4)           # on the grid
        assert k.min() >= -1e-4 and k.max() <= 2 ** bits - 1 + 1e-4
        ref = (torch.clamp(torch.round(w / q.scale) + q.zero_point, 0, 2 ** bits - 1)
               - q.zero_point) * q.scale
        assert torch.equal(out, ref)                               # round to nearest
        # min/max range: every value is within half a step of its quantized value.
        assert ((out - w).abs() <= q.scale / 2 + 1e-6).all()


def test_per_head_and_per_tensor_shapes():
    x = torch.randn(5, 3, 7, 4)
    q = UniformQuantizer(4, axes=(1,))
    q.init_minmax(x)
    assert q.scale.shape == (1, 3, 1, 1)
    for h in range(3):  # each head's own range
        assert torch.isclose(q.scale[0, h, 0, 0],
                             (x[:, h].max().clamp(min=0) - x[:, h].min().clamp(max=0)) / 15)
    t = UniformQuantizer(4)
    t.init_minmax(x)
    assert t.scale.numel() == 1


def test_straight_through_gradient():
    q = UniformQuantizer(4)
    q.init_minmax(torch.tensor([-1.0, 1.0]))
    x = torch.tensor([-3.0, -0.5, -0.2, 0.0, 0.33, 0.5, 3.0], requires_grad=True)
    q(x).sum().backward()
    # Identity gradient inside the range, zero where the clamp saturates.
    assert torch.equal(x.grad, torch.tensor([0.0, 1, 1, 1, 1, 1, 0]))


def test_log2_values_are_powers_of_two():
    p = torch.softmax(torch.randn(2, 3, 6, 6) * 3, dim=-1)
    q = Log2Quantizer(4, axes=(1,))
    q.init_minmax(p)
    out = q(p)
    ratio = out / q.scale
    nz = ratio[ratio > 0]
    e = torch.log2(nz)
    assert torch.allclose(e, e.round(), atol=1e-5) and (e <= 0).all() and (e >= -15).all()
    assert ((p < q.scale * 2 ** -15.5) <= (out == 0)).all()


def test_modes_switch_between_fp_and_quant():
    lin = torch.nn.Linear(8, 4)
    ql = QuantLinear(lin, 3, 3, name='l')
    x = torch.randn(10, 8)
    ql.w_quant.init_minmax(ql.weight.detach())
    ql.a_quant.init_minmax(x)
    assert torch.equal(ql(x), lin(x))
    set_quant_mode(ql, 'quant')
    assert not torch.allclose(ql(x), lin(x))
    assert torch.equal(ql(x), torch.nn.functional.linear(ql.a_quant(x), ql.w_quant(ql.weight), ql.bias))
    mm = QuantMatMul(4, name='m')
    a, b = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 4, 5)
    assert torch.equal(mm(a, b), a @ b)
