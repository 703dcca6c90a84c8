import numpy as np
import pytest
import torch
import torch.nn.functional as F

from saesite.config import WeightStatsConfig
from saesite.stats.weights import logit_histogram, weight_stats
from tests.stats.test_pass import tiny_model, tiny_sae

CFG = WeightStatsConfig(n_logits=5, n_neurons=4, n_neighbours=3, n_logit_bins=8, chunk_size=7)


def direct_effects(model, direction):
    centred = direction - direction.mean(-1, keepdim=True)
    return (centred * model.ln_final.w) @ model.W_U


@pytest.mark.parametrize("hook", ["blocks.0.mlp.hook_post", "blocks.1.hook_resid_pre"])
def test_logit_effects_and_their_histograms_match_direct_matrix_products(hook):
    model = tiny_model()
    mlp = hook.endswith("hook_post")
    sae = tiny_sae(64 if mlp else 32)
    stats = weight_stats(model, sae, hook, CFG)
    with torch.no_grad():
        direction = sae.W_dec @ model.blocks[0].mlp.W_out if mlp else sae.W_dec
        effects = direct_effects(model, direction)
    for f in range(sae.cfg.d_sae):
        order = torch.argsort(effects[f], descending=True)
        assert stats.logit_top_ids[f].tolist() == order[:5].tolist()
        assert stats.logit_bottom_ids[f].tolist() == order.flip(0)[:5].tolist()
        assert torch.allclose(stats.logit_top_values[f], effects[f][order[:5]], atol=1e-5)
        assert stats.logit_hist_counts[f].sum() == model.cfg.d_vocab
        edges = stats.logit_hist_edges[f]
        assert edges[0] == effects[f].min() and edges[-1] == effects[f].max()
        expected, _ = np.histogram(effects[f].numpy(), bins=edges.numpy())
        assert stats.logit_hist_counts[f].tolist() == expected.tolist()


@pytest.mark.parametrize("n_bins", [8, 200])  # 200: more bins than int8 holds
def test_logit_histogram_counts_match_numpy_on_its_edges(n_bins):
    effects = torch.randn(5, 3000, generator=torch.Generator().manual_seed(0))
    edges, counts = logit_histogram(effects, n_bins)
    for row in range(5):
        expected, _ = np.histogram(effects[row].numpy(), bins=edges[row].numpy())
        assert counts[row].tolist() == expected.tolist()
        assert edges[row, 0] == effects[row].min() and edges[row, -1] == effects[row].max()


def test_mlp_neuron_exposures_are_the_largest_decoder_weights_with_their_share():
    model, sae = tiny_model(), tiny_sae(64)
    stats = weight_stats(model, sae, "blocks.0.mlp.hook_post", CFG)
    top = sae.W_dec.abs().topk(4, dim=1)
    assert torch.equal(stats.neuron_ids, top.indices)
    assert torch.equal(stats.neuron_weights, sae.W_dec.detach().gather(1, top.indices))
    share = top.values.square().sum(1) / sae.W_dec.square().sum(1)
    assert torch.allclose(stats.neuron_share, share.detach())


def test_residual_neuron_exposures_are_cosines_with_the_next_mlp_inputs():
    model, sae = tiny_model(), tiny_sae(32)
    stats = weight_stats(model, sae, "blocks.0.hook_resid_post", CFG)
    with torch.no_grad():
        cosines = F.normalize(sae.W_dec, dim=1) @ F.normalize(model.blocks[1].mlp.W_in, dim=0)
    assert torch.equal(stats.neuron_ids, cosines.abs().topk(4, dim=1).indices)
    assert torch.allclose(stats.neuron_weights, cosines.gather(1, stats.neuron_ids))
    assert stats.neuron_share is None


def test_neighbours_are_the_nearest_other_decoder_directions():
    model, sae = tiny_model(), tiny_sae(64)
    stats = weight_stats(model, sae, "blocks.0.mlp.hook_post", CFG)
    with torch.no_grad():
        unit = F.normalize(sae.W_dec, dim=1)
        cosines = unit @ unit.T
        cosines.fill_diagonal_(-2)
        enc_dec = F.cosine_similarity(sae.W_enc.T, sae.W_dec, dim=1)
    assert torch.equal(stats.neighbour_ids, cosines.topk(3, dim=1).indices)
    assert (stats.neighbour_ids != torch.arange(40)[:, None]).all()
    assert torch.allclose(stats.encoder_decoder_cosine, enc_dec)


def test_hooks_without_a_path_to_the_logits_get_no_logit_effects():
    model, sae = tiny_model(), tiny_sae(64)
    stats = weight_stats(model, sae, "blocks.0.mlp.hook_pre", CFG)
    assert stats.logit_top_ids is None and stats.logit_hist_counts is None
    assert stats.neuron_ids is not None
