import math

import pytest
import torch

from saesite.stats.next_logit import next_tokens
from saesite.stats.weights import weight_stats
from tests.stats.test_pass import tiny_model, tiny_sae
from tests.stats.test_weights import CFG, direct_effects


def read_next_logits(model, sae, hook, tokens, seq_start, top, intervals):
    """NextLogit as the build computes it: next tokens, read off the weights' logit product."""
    following = next_tokens(tokens, seq_start, top, intervals)
    weights = weight_stats(model, sae, hook, CFG, read=following.ids)
    return following.effects(weights.logits_read)


@pytest.mark.parametrize("hook", ["blocks.0.mlp.hook_post", "blocks.1.hook_resid_pre"])
def test_next_token_effect_is_the_logit_effect_entry_of_the_token_that_followed(hook):
    model = tiny_model()
    mlp = hook.endswith("hook_post")
    sae = tiny_sae(64 if mlp else 32)
    d_sae, seq_len = sae.cfg.d_sae, 6
    tokens = torch.randint(
        0, model.cfg.d_vocab, (5, seq_len), generator=torch.Generator().manual_seed(1)
    )
    seq_start = 3  # global sequences 3..7
    rng = torch.Generator().manual_seed(2)
    index = torch.randint(seq_start * seq_len, (seq_start + 5) * seq_len, (d_sae, 4), generator=rng)
    index[0, 0] = -1  # an unused slot
    index[1, 1] = (seq_start + 1) * seq_len - 1  # the last token of a sequence: nothing follows
    top, intervals = index[:, :1], index[:, 1:].reshape(d_sae, 1, 3)
    result = read_next_logits(model, sae, hook, tokens, seq_start, top, intervals)
    assert result.top.shape == (d_sae, 1) and result.intervals.shape == (d_sae, 1, 3)
    got = torch.cat([result.top, result.intervals.reshape(d_sae, 3)], dim=1)
    with torch.no_grad():
        direction = sae.W_dec @ model.blocks[0].mlp.W_out if mlp else sae.W_dec
        effects = direct_effects(model, direction)  # [d_sae, d_vocab]
    flat = tokens.reshape(-1)
    for f in range(d_sae):
        for j, token in enumerate(index[f].tolist()):
            if token < 0 or token % seq_len == seq_len - 1:
                assert math.isnan(got[f, j])
                continue
            following = flat[token - seq_start * seq_len + 1]
            assert got[f, j].item() == pytest.approx(effects[f, following].item(), abs=1e-5)
    assert math.isnan(got[0, 0]) and math.isnan(got[1, 1])


def test_hooks_without_a_path_to_the_logits_have_no_next_token_effects():
    model = tiny_model()
    sae = tiny_sae(64)
    tokens = torch.zeros(2, 4, dtype=torch.long)
    top = torch.zeros(sae.cfg.d_sae, 3, dtype=torch.long)
    intervals = torch.zeros(sae.cfg.d_sae, 2, 2, dtype=torch.long)
    result = read_next_logits(model, sae, "blocks.0.mlp.hook_pre", tokens, 0, top, intervals)
    assert result.top.shape == (sae.cfg.d_sae, 3) and result.intervals.shape == (
        sae.cfg.d_sae,
        2,
        2,
    )
    assert torch.isnan(result.top).all() and torch.isnan(result.intervals).all()
