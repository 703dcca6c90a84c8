import weakref

import pytest

from saesite.config import StatsConfig
from saesite.stats.forward import HookRunner
from saesite.stats.multi_pass import run_multi_pass
from tests.stats.test_pass import tiny_model, tiny_sae, tiny_tokens


@pytest.mark.parametrize("ce_loss", [False, True], ids=["shared forward", "ce losses"])
def test_one_saes_activations_are_in_memory_at_a_time_in_a_multi_sae_pass(monkeypatch, ce_loss):
    # each SAE's [tok, d_sae] activations are fed and dropped before the next SAE's are made
    model, tokens = tiny_model(), tiny_tokens()
    saes, hooks = [tiny_sae(32), tiny_sae(32, 60)], ["blocks.0.hook_resid_pre"] * 2
    earlier: list[weakref.ref] = []
    alive_at_creation: list[int] = []

    def watching(method):
        def wrapped(self, *args, **kwargs):
            alive_at_creation.append(sum(ref() is not None for ref in earlier))
            out = method(self, *args, **kwargs)
            earlier.append(weakref.ref(out.acts))
            return out

        return wrapped

    monkeypatch.setattr(HookRunner, "run", watching(HookRunner.run))
    monkeypatch.setattr(HookRunner, "from_activation", watching(HookRunner.from_activation))
    cfg = StatsConfig(batch_size=4, n_bins=8, n_intervals=2, ce_loss=ce_loss)
    stats = run_multi_pass(model, saes, hooks, tokens, cfg)
    assert len(alive_at_creation) == 2 * 2  # two batches of 4 + 2 sequences, two SAEs
    assert alive_at_creation == [0] * 4
    assert [s.firing.finalize().density.shape[0] for s in stats] == [40, 60]
