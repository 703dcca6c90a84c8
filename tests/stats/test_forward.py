import weakref

import torch

from saesite.config import StatsConfig
from saesite.stats.feature_stats import FeatureStats
from saesite.stats.forward import HookRunner
from saesite.stats.pass_ import feed_batch
from tests.stats.test_pass import tiny_model, tiny_sae, tiny_tokens


def test_hook_runner_activations_and_reconstruction_match_a_cached_forward():
    model, sae, tokens = tiny_model(), tiny_sae(32), tiny_tokens(n_seq=3)
    hook = "blocks.1.hook_resid_mid"
    for n_loss in (0, 2):
        out = HookRunner(model, sae, hook).run(tokens, n_loss)
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=hook)
            x = cache[hook].reshape(-1, 32)
            acts = sae.encode(x)
        assert torch.allclose(out.x, x, atol=1e-6)
        assert torch.allclose(out.acts, acts, atol=1e-6)
        assert torch.allclose(out.x_hat, sae.decode(acts).detach(), atol=1e-5)
        assert torch.equal(out.active.values, out.acts[out.active.tok, out.active.feat])
        assert out.active.values.numel() == int((out.acts > 0).sum())
        assert out.losses() is None if n_loss == 0 else out.losses().shape == (3, 2)


def test_feed_batch_drops_the_activations_before_the_ce_continuation_runs():
    # the [tok, d_sae] activations and the three copies' temporaries never share memory
    model, sae, tokens = tiny_model(), tiny_sae(32), tiny_tokens(n_seq=3)
    out = HookRunner(model, sae, "blocks.1.hook_resid_pre").run(tokens, 2)
    acts, continuation = weakref.ref(out.acts), out.continuation
    assert continuation is not None and out.loss is None
    acts_alive = []

    def watched():
        acts_alive.append(acts() is not None)
        return continuation()

    out.continuation = watched
    stats = FeatureStats.empty(40, 32, StatsConfig(batch_size=3, n_bins=16, n_intervals=4), tokens)
    feed_batch(stats, out, tokens, 0)
    assert acts_alive == [False]
    assert out.acts is None and out.loss.shape == (3, 2)
    assert stats.losses.n_seq == 2 and stats.firing.finalize().density.sum() > 0
