import pytest
import torch

from saesite.stats.metrics import LossAccumulator, ReconstructionAccumulator


def test_reconstruction_accumulator_merges_shards_like_one_pass_with_a_large_offset():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(300, 16, generator=gen) * 0.01 + 100.0  # mean >> spread
    x_hat = x + torch.randn(300, 16, generator=gen) * 0.001
    active = torch.randint(0, 9, (300,), generator=gen)
    ids = torch.randint(0, 50, (300,), generator=gen)
    parts = [ReconstructionAccumulator(16) for _ in range(3)]
    for part, rows in zip(parts, (slice(0, 7), slice(7, 150), slice(150, 300)), strict=True):
        part.update(x[rows], x_hat[rows], active[rows], ids[rows], rows.start, rows.stop)
    parts[2].merge(parts[0])
    parts[2].merge(parts[1])
    x64, x_hat64 = x.double(), x_hat.double()
    sse = (x64 - x_hat64).square().sum().item()
    spread = (x64 - x64.mean(0)).square().sum().item()
    metrics = parts[2].finalize()
    assert metrics["mse"] == pytest.approx(sse / 300, rel=1e-5)
    assert metrics["explained_variance"] == pytest.approx(1 - sse / spread, rel=1e-4)
    assert metrics["l0"] == pytest.approx(active.double().mean().item(), rel=1e-12)
    assert (metrics["n_tokens_measured"], metrics["excluded_token_ids"]) == (300, [])


def test_reconstruction_leaves_out_the_excluded_token_ids_and_counts_the_rest():
    gen = torch.Generator().manual_seed(4)
    x, x_hat = torch.randn(50, 8, generator=gen), torch.randn(50, 8, generator=gen)
    active = torch.randint(0, 5, (50,), generator=gen)
    ids = torch.randint(0, 6, (50,), generator=gen)
    masked = ReconstructionAccumulator(8, excluded_token_ids=(5, 0))
    masked.update(x, x_hat, active, ids)
    keep = (ids != 0) & (ids != 5)
    subset = ReconstructionAccumulator(8)
    subset.update(x[keep], x_hat[keep], active[keep], ids[keep])
    expected = {**subset.finalize(), "excluded_token_ids": [0, 5]}
    assert masked.finalize() == expected
    assert 0 < expected["n_tokens_measured"] == int(keep.sum()) < 50


def test_reconstruction_of_a_batch_of_special_tokens_only_merges_as_no_tokens():
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(5))
    ids = torch.tensor([7] * 4 + [1, 2, 3, 4, 5, 6, 1, 2])
    active = torch.arange(12)
    whole = ReconstructionAccumulator(4, excluded_token_ids=(7,))
    whole.update(x, x * 0.5, active, ids)
    split = [ReconstructionAccumulator(4, excluded_token_ids=(7,)) for _ in range(2)]
    split[0].update(x[:4], x[:4] * 0.5, active[:4], ids[:4], 0, 1)
    split[1].update(x[4:], x[4:] * 0.5, active[4:], ids[4:], 1, 2)
    split[0].merge(split[1])
    merged, one = split[0].finalize(), whole.finalize()
    assert merged["n_tokens_measured"] == one["n_tokens_measured"] == 8
    assert merged["l0"] == one["l0"] == active[4:].double().mean().item()
    assert merged["mse"] == pytest.approx(one["mse"], rel=1e-12)


def test_metrics_leaving_out_other_tokens_refuse_to_merge():
    with pytest.raises(ValueError, match="expected one build"):
        ReconstructionAccumulator(4, excluded_token_ids=(0,)).merge(ReconstructionAccumulator(4))


def test_loss_accumulator_gives_ce_loss_recovered_and_its_delta_method_standard_error():
    gen = torch.Generator().manual_seed(0)
    clean = 30 + torch.rand(9, generator=gen, dtype=torch.float64)
    spliced = clean + 2 + torch.rand(9, generator=gen, dtype=torch.float64)
    zero = clean + 10 + 3 * torch.rand(9, generator=gen, dtype=torch.float64)
    losses = torch.stack([clean, spliced, zero])
    first, second = LossAccumulator(), LossAccumulator()
    first.update(losses[:, :4], n_predictions=40)
    second.update(losses[:, 4:], n_predictions=50, position=1)
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


def test_a_batchs_metrics_are_the_same_bits_whatever_the_number_of_torch_threads():
    """A Ray shard's worker runs torch on 1 thread, a one-process build on 2: the same batch
    must give the same float64 leaf, or the sharded site's mse differs in its last digits
    (seen at 16,384 features × 131,072 tokens: a float64 dot over 3 M values split over 2
    threads rounds differently)."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4096, 768, generator=gen) * 3 + 1
    x_hat = x + torch.randn(4096, 768, generator=gen) * 0.1
    active = torch.randint(0, 50, (4096,), generator=gen)
    ids = torch.zeros(4096, dtype=torch.int64)
    before = torch.get_num_threads()
    finals = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            acc = ReconstructionAccumulator(768)
            acc.update(x, x_hat, active, ids, 0, 32)
            finals.append(acc.finalize())
    finally:
        torch.set_num_threads(before)
    assert finals[0] == finals[1]
