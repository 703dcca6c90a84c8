import torch
import torch.nn.functional as F

from saesite.config import StatsConfig
from saesite.stats.ablation import ablation_effects
from saesite.stats.pass_ import run_pass
from saesite.stats.windows import Window
from tests.stats.test_pass import tiny_model, tiny_sae, tiny_tokens

HOOK = "blocks.0.mlp.hook_post"


def test_ablation_of_each_top_example_matches_a_direct_run_without_the_feature():
    model, sae, tokens = tiny_model(), tiny_sae(64, d_sae=6), tiny_tokens(n_seq=4)
    cfg = StatsConfig(
        batch_size=3,
        top_k=2,
        n_bins=8,
        n_intervals=2,
        context_before=3,
        context_after=2,
        ce_loss=False,
        ablation=True,
    )
    topk = run_pass(model, sae, tokens, HOOK, cfg).topk.finalize()
    ablation = ablation_effects(model, sae, tokens, HOOK, topk, Window(3, 2), batch_size=3)
    seq_len = tokens.shape[1]
    checked = 0
    for f in range(6):
        for slot in range(2):
            index = int(topk.index[f, slot])
            if index < 0:
                continue
            seq, pos = divmod(index, seq_len)
            batch = tokens[seq : seq + 1]

            def remove(act, hook, f=f):
                acts = sae.encode(act)
                return act - acts[..., f : f + 1] * sae.W_dec[f]

            with torch.no_grad():
                clean = model(batch)
                ablated = model.run_with_hooks(batch, fwd_hooks=[(HOOK, remove)])
            target = batch[0, 1:]
            delta = F.cross_entropy(ablated[0, :-1], target, reduction="none") - F.cross_entropy(
                clean[0, :-1], target, reduction="none"
            )
            delta = torch.cat([delta, torch.zeros(1)])
            start, end = max(pos - 3, 0), min(pos + 2, seq_len - 1)
            expected = delta[start : end + 1]
            got = ablation[f, slot, : end - start + 1]
            assert torch.allclose(got, expected, atol=1e-5)
            assert (ablation[f, slot, end - start + 1 :] == 0).all()
            checked += 1
    assert checked >= 6
