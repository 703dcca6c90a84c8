import pytest
import torch
from saesite.stats.metrics import LossAccumulator, LossSums, ReconstructionAccumulator


def test_reconstruction_accumulator_merges_shards_like_one_pass_with_a_large_offset():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(300, 16, generator=gen) * 0.01 + 100.0  # mean >> spread
    x_hat = x + torch.randn(300, 16, generator=gen) * 0.001
    parts = [ReconstructionAccumulator(16) for _ in range(3)]
    for part, rows in zip(parts, (slice(0, 7), slice(7, 150), slice(150, 300)), strict=True):
        part.update(x[rows], x_hat[rows])
    parts[2].merge(parts[0])
    parts[2].merge(parts[1])
    x64, x_hat64 = x.double(), x_hat.double()
    sse = (x64 - x_hat64).square().sum().item()
    spread = (x64 - x64.mean(0)).square().sum().item()
    metrics = parts[2].finalize()
    assert metrics["mse"] == pytest.approx(sse / 300, rel=1e-5)
    assert metrics["explained_variance"] == pytest.approx(1 - sse / spread, rel=1e-4)


def test_loss_accumulator_gives_ce_loss_recovered_from_mean_losses():
    first, second = LossAccumulator(), LossAccumulator()
    first.update(LossSums(clean=20.0, spliced=25.0, zero_ablated=40.0, n_predictions=10))
    second.update(LossSums(clean=10.0, spliced=15.0, zero_ablated=20.0, n_predictions=5))
    first.merge(second)
    metrics = first.finalize()
    assert metrics["ce_loss_clean"] == pytest.approx(2.0)
    assert metrics["ce_loss_spliced"] == pytest.approx(40 / 15)
    assert metrics["ce_loss_recovered"] == pytest.approx((4.0 - 40 / 15) / (4.0 - 2.0))
