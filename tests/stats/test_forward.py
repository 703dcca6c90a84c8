import torch

from saesite.stats.forward import HookRunner
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
        assert out.loss is None if n_loss == 0 else out.loss.shape == (3, 2)
