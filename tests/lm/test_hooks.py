"""Hook names parsed in one place, and a forward that ends at a hook."""

from __future__ import annotations

import torch

from saesite.lm.hooks import hook_block, run_to_hook, split_hook, stop_layer
from tests.stats.test_pass import tiny_model, tiny_tokens


def test_stop_layer_runs_just_the_block_that_holds_the_hook():
    assert split_hook("blocks.11.attn.hook_z") == (11, "attn.hook_z")
    assert split_hook("ln_final.hook_normalized") is None
    assert hook_block("blocks.3.mlp.hook_post") == 3 and stop_layer("blocks.3.mlp.hook_post") == 4
    assert stop_layer("hook_embed") == 0
    assert stop_layer("ln_final.hook_normalized") is None


def test_run_to_hook_returns_the_cached_activations_and_runs_nothing_after_the_hook():
    model, tokens = tiny_model(), tiny_tokens(n_seq=2)
    hook, earlier = "blocks.0.mlp.hook_post", "blocks.0.hook_resid_mid"
    later: list[str] = []
    model.blocks[0].hook_resid_post.add_hook(lambda act, hook: later.append(hook.name))
    with torch.no_grad():
        ran = run_to_hook(model, tokens, hook, also=[earlier], stop_at_layer=1)
    assert later == [] and sorted(ran) == sorted([hook, earlier])
    model.reset_hooks()
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[hook, earlier])
    torch.testing.assert_close(ran[hook], cache[hook])
    torch.testing.assert_close(ran[earlier], cache[earlier])
    assert model.blocks[0].mlp.hook_post.fwd_hooks == []
