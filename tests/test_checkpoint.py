"""Runner-style checkpoints load on torch >= 2.6; mismatched keys give one clear line."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from fimaq.engine import UserError, load_detector_checkpoint, read_checkpoint, trust_local_checkpoints


class Net(torch.nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.a = torch.nn.Linear(3, width)
        self.b = torch.nn.Linear(width, 2)


def runner_style_checkpoint(path, model):
    # What mmengine's Runner writes: numpy scalars and history buffers beside the weights.
    torch.save({'meta': {'iter': np.int64(7), 'seed': np.array([1, 2])},
                'state_dict': model.state_dict(),
                'message_hub': {'log_scalars': {'loss': HistoryBuffer([1.0, 2.0], [1, 1])}}}, path)


def test_plain_torch_load_rejects_runner_checkpoints(tmp_path):
    # The problem we fix: torch's default weights_only=True refuses these files.
    path = tmp_path / 'c.pth'
    runner_style_checkpoint(path, Net())
    with pytest.raises(pickle.UnpicklingError, match='weights_only'):
        torch.load(path)


def test_mmengine_loader_goes_through_trusted_loader(tmp_path):
    trust_local_checkpoints()
    path = tmp_path / 'c.pth'
    net = Net()
    runner_style_checkpoint(path, net)
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['meta']['iter'] == 7
    assert CheckpointLoader._get_checkpoint_loader(str(path)).__name__ == 'load_from_trusted_local'
    other = Net()
    load_detector_checkpoint(other, str(path))
    for k, v in net.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)


def test_mismatch_is_one_line_with_counts(tmp_path):
    path = tmp_path / 'c.pth'
    runner_style_checkpoint(path, Net(width=5))
    with pytest.raises(UserError) as err:
        load_detector_checkpoint(Net(width=4), str(path))
    msg = str(err.value)
    assert '\n' not in msg
    assert '3 with another shape (a.weight, a.bias, b.weight) keys' in msg
    state = Net().state_dict()
    state['extra.weight'] = torch.zeros(1)
    del state['b.bias']
    torch.save({'state_dict': state}, tmp_path / 'd.pth')
    with pytest.raises(UserError, match=r'1 missing \(b.bias\); 1 unexpected \(extra.weight\)'):
        load_detector_checkpoint(Net(), str(tmp_path / 'd.pth'))


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(UserError, match='does not exist'):
        read_checkpoint(str(tmp_path / 'nope.pth'))
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(UserError, match='could not be read'):
        read_checkpoint(str(bad))


def test_quantized_model_reloads_bit_identical(tmp_path):
    import sys
    import os.path as osp
    sys.path.insert(0, osp.dirname(__file__))
    from helpers import build_tiny, fake_batch
    from fimaq import QuantConfig, quantize
    from fimaq.engine.checkpoint import load_quantized, save_quantized
    model = build_tiny('mask', seed=0)
    x, samples = fake_batch(n=1, h=96, w=128)
    qcfg = QuantConfig.from_dict(dict(method='calib', w_bits=4, a_bits=4, eq_n=4, search_round=1))
    quantize(model, [(x, samples)], qcfg, log=lambda s: None)
    with torch.no_grad():
        ref = model._forward(x, samples)
    save_quantized(model, qcfg, str(tmp_path / 'q.pth'))
    other = build_tiny('mask', seed=1)          # different FP weights: everything must come from the file
    _, loaded_cfg = load_quantized(other, str(tmp_path / 'q.pth'))
    assert loaded_cfg.method == 'calib' and loaded_cfg.w_bits == 4
    with torch.no_grad():
        out = other._forward(x, samples)
    from helpers import flat_outputs
    for a, b in zip(flat_outputs(out), flat_outputs(ref)):
        assert torch.equal(a, b)
    with pytest.raises(UserError, match='not a fimaq quantized checkpoint'):
        load_quantized(build_tiny('mask'), str(tmp_path / 'nothing.pth'))


def test_stage_a_state_reuse_is_bit_identical_and_checks_its_key(tmp_path):
    import sys
    import os.path as osp
    sys.path.insert(0, osp.dirname(__file__))
    from helpers import build_tiny, fake_batch, flat_outputs
    from fimaq import QuantConfig, quantize
    from fimaq.engine.checkpoint import WorkDirState, read_stage_a
    x, samples = fake_batch(n=1, h=96, w=128)
    qcfg = QuantConfig.from_dict(dict(method='calib', w_bits=4, a_bits=4, eq_n=4, search_round=1))
    key = dict(qcfg.stage_a_key(), model='weights-0')
    model = build_tiny('mask', seed=0)
    quantize(model, [(x, samples)], qcfg, log=lambda s: None,
             state=WorkDirState(str(tmp_path / 'a'), key, log=lambda s: None))
    with torch.no_grad():
        ref = model._forward(x, samples)
    path = str(tmp_path / 'a' / 'stage_a.pth')

    other = build_tiny('mask', seed=1)
    state = WorkDirState(str(tmp_path / 'b'), key, stage_a=path, log=lambda s: None)
    qm = quantize(other, [], qcfg, log=lambda s: None, state=state)  # no batches: stage A is not run
    assert qm.stats and state.stage_a_reused == path
    assert not osp.exists(tmp_path / 'b' / 'stage_a.pth')
    with torch.no_grad():
        out = other._forward(x, samples)
    for a, b in zip(flat_outputs(out), flat_outputs(ref)):
        assert torch.equal(a, b)
    w3 = dict(QuantConfig.from_dict(dict(method='calib', w_bits=3, a_bits=4, eq_n=4,
                                         search_round=1)).stage_a_key(),
              model='weights-0')
    with pytest.raises(UserError, match='w_bits: 4 there, 3 here'):
        read_stage_a(path, w3)
    with pytest.raises(UserError, match='not a fimaq stage A state'):
        read_stage_a(str(tmp_path / 'nothing.pth'), key)
    with pytest.raises(UserError, match='does not exist'):
        WorkDirState(str(tmp_path / 'c'), key, stage_a=str(tmp_path / 'nothing.pth'))
    # In its own work dir a run with other settings recomputes instead of failing.
    warned = []
    state = WorkDirState(str(tmp_path / 'a'), w3, log=lambda s: None, warn=warned.append)
    assert state.load_stage_a(build_tiny('mask')) is None and 'not reusing' in warned[0]


def test_stage_b_resumes_at_the_next_block_with_identical_weights(tmp_path):
    """A run stopped after two reconstructed blocks resumes there and ends bit-identical."""
    import sys
    import os.path as osp
    sys.path.insert(0, osp.dirname(__file__))
    from helpers import build_tiny, fake_batch
    from fimaq import QuantConfig, quantize
    from fimaq.engine.checkpoint import WorkDirState
    batches = [fake_batch(n=1, h=64, w=96, seed=i) for i in range(2)]
    qcfg = QuantConfig.from_dict(dict(method='mse', w_bits=4, a_bits=4, eq_n=4, search_round=1,
                                      recon=dict(iters=3)))
    key_a, key_b = dict(qcfg.stage_a_key()), dict(qcfg.to_dict())
    quiet = dict(log=lambda s: None)

    full = build_tiny('mask', seed=0)
    quantize(full, batches, qcfg, state=WorkDirState(str(tmp_path / 'full'), key_a, key_b, **quiet), **quiet)

    class Stop(Exception):
        pass

    class StopAfterTwo(WorkDirState):
        def save_block(self, model, done, stats):
            super().save_block(model, done, stats)
            if len(done) == 2:
                raise Stop()

    with pytest.raises(Stop):
        quantize(build_tiny('mask', seed=0), batches, qcfg,
                 state=StopAfterTwo(str(tmp_path / 'run'), key_a, key_b, **quiet), **quiet)
    logs = []
    resumed = build_tiny('mask', seed=0)
    state = WorkDirState(str(tmp_path / 'run'), key_a, key_b, log=logs.append)
    qm = quantize(resumed, batches, qcfg, state=state, log=logs.append)
    assert state.stage_a_reused and any('resuming after 2 reconstructed block(s)' in m for m in logs)
    assert len(qm.recon_stats) == len(qm.blocks)
    ref = full.state_dict()
    for k, v in resumed.state_dict().items():
        assert torch.equal(v, ref[k]), k


def test_nonfinite_loss_stops_the_block_and_keeps_the_ones_before(tmp_path, monkeypatch):
    import sys
    import os.path as osp
    sys.path.insert(0, osp.dirname(__file__))
    from helpers import build_tiny, fake_batch
    import fimaq.recon.reconstruct as rc
    from fimaq import QuantConfig, quantize
    from fimaq.engine.checkpoint import WorkDirState, load_from_trusted_local
    from fimaq.errors import NonFiniteLossError
    real = rc._rec_loss
    calls = []

    def nan_in_second_block(opts, out, *args):
        loss = real(opts, out, *args)
        calls.append(1)
        return loss * float('nan') if len(calls) > 2 else loss   # 2 iterations per block
    monkeypatch.setattr(rc, '_rec_loss', nan_in_second_block)
    qcfg = QuantConfig.from_dict(dict(method='mse', w_bits=4, a_bits=4, eq_n=4, search_round=1,
                                      recon=dict(iters=2)))
    state = WorkDirState(str(tmp_path), dict(qcfg.stage_a_key()), dict(qcfg.to_dict()),
                         log=lambda s: None)
    model = build_tiny('mask')
    with pytest.raises(NonFiniteLossError, match=r'non-finite loss \(nan\) in block .* at iteration 0; '
                       r'stopped there, the 1 block\(s\) before it are kept'):
        quantize(model, [fake_batch(n=1, h=64, w=96)], qcfg, state=state, log=lambda s: None)
    saved = load_from_trusted_local(str(tmp_path / 'stage_b.pth'))
    assert saved['done'] == ['backbone.patch_embed']


def test_device_out_of_memory_names_the_budget_options(monkeypatch):
    import sys
    import os.path as osp
    sys.path.insert(0, osp.dirname(__file__))
    from helpers import build_tiny, fake_batch
    import fimaq.api as api
    from fimaq import QuantConfig
    from fimaq.errors import DeviceMemoryError

    def oom(*a, **k):
        raise torch.OutOfMemoryError('CUDA out of memory')
    monkeypatch.setattr(api, 'run_stage_a', oom)
    with pytest.raises(DeviceMemoryError, match=r'stage A ran out of device memory; lower '
                       r'mem_cap_mb \(now 1024\), capture_mb \(now 2048\)'):
        api.quantize(build_tiny('mask'), [fake_batch(n=1, h=64, w=96)],
                     QuantConfig.from_dict(dict(method='calib')), log=lambda s: None)
