import pytest
import torch

from saesite.stats.metrics import LossAccumulator, ReconstructionAccumulator


def test_reconstruction_accumulator_merges_shards_like_one_pass_with_a_large_offset():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(300, 16, generator=gen) * 0.01 + 100.0  # mean >> spread
    x_hat = x + torch.randn(300, 16, generator=gen) * 0.001
    parts = [ReconstructionAccumulator(16) for _ in range(3)]
    for part, rows in zip(parts, (slice(0, 7), slice(7, 150), slice(150, 300)), strict=True):
        part.update(x[rows], x_hat[rows], rows.start, rows.stop)
    parts[2].merge(parts[0])
    parts[2].merge(parts[1])
    x64, x_hat64 = x.double(), x_hat.double()
    sse = (x64 - x_hat64).square().sum().item()
    spread = (x64 - x64.mean(0)).square().sum().item()
    metrics = parts[2].finalize()
    assert metrics["mse"] == pytest.approx(sse / 300, rel=1e-5)
    assert metrics["explained_variance"] == pytest.approx(1 - sse / spread, rel=1e-4)


def test_loss_accumulator_gives_ce_loss_recovered_and_its_delta_method_standard_error():
    gen = torch.Generator().manual_seed(0)
    clean = 30 + torch.rand(9, generator=gen, dtype=torch.float64)
    spliced = clean + 2 + torch.rand(9, generator=gen, dtype=torch.float64)
    zero = clean + 10 + 3 * torch.rand(9, generator=gen, dtype=torch.float64)
    losses = torch.stack([clean, spliced, zero])
    first, second = LossAccumulator(), LossAccumulator()
    first.update(losses[:, :4], seq_len=11)
    second.update(losses[:, 4:], seq_len=11, position=1)
    first.merge(second)
    metrics = first.finalize()
    assert metrics["ce_loss_tokens"] == 90
    assert metrics["ce_loss_clean"] == pytest.approx(clean.sum().item() / 90)
    assert metrics["ce_loss_spliced"] == pytest.approx(spliced.sum().item() / 90)
    a, b = zero - spliced, zero - clean
    ratio = (a.sum() / b.sum()).item()
    assert metrics["ce_loss_recovered"] == pytest.approx(ratio)
    residual = a - ratio * b  # delta method for a ratio of means over 9 sequences
    se = (residual.square().sum() / (9 * 8)).sqrt() / b.mean().abs()
    assert metrics["ce_loss_recovered_se"] == pytest.approx(se.item(), rel=1e-9)
