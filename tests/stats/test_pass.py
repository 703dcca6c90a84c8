import pytest
import torch

from saesite.config import StatsConfig
from saesite.lm.model import build_model
from saesite.sae.model import SAE, SaeConfig, init_sae_
from saesite.stats.pass_ import run_pass
from tests.conftest import TINY_MODEL

MODEL = {**TINY_MODEL, "n_layers": 2, "n_ctx": 16, "d_vocab": 50}


def tiny_model():
    torch.manual_seed(0)
    return build_model(MODEL)


def tiny_sae(d_in: int, d_sae: int = 40, bias: float = -0.05) -> SAE:
    sae = init_sae_(SAE(SaeConfig(d_in=d_in, d_sae=d_sae)), torch.Generator().manual_seed(1))
    with torch.no_grad():
        sae.b_enc.fill_(bias)
    return sae


def tiny_tokens(n_seq: int = 6, seq_len: int = 16) -> torch.Tensor:
    return torch.randint(0, 50, (n_seq, seq_len), generator=torch.Generator().manual_seed(2))


def direct_losses(model, sae, tokens, hook):
    """The three mean losses from full forwards of the whole model (no continuation)."""

    def splice(act, hook):
        return sae(act.reshape(act.shape[0] * act.shape[1], -1)).reshape(act.shape)

    def zero(act, hook):
        return torch.zeros_like(act)

    with torch.no_grad():
        clean = model(tokens, return_type="loss").item()
        spliced = model.run_with_hooks(
            tokens, return_type="loss", fwd_hooks=[(hook, splice)]
        ).item()
        zeroed = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook, zero)]).item()
    return clean, spliced, zeroed


@pytest.mark.parametrize(
    "hook,d_in",
    [
        ("blocks.0.mlp.hook_post", 64),
        ("blocks.1.mlp.hook_post", 64),
        ("blocks.0.hook_resid_pre", 32),
        ("blocks.1.hook_resid_pre", 32),
        ("blocks.1.hook_resid_mid", 32),
        ("blocks.0.attn.hook_z", 32),  # 2 heads x d_head 16
        ("blocks.1.hook_attn_out", 32),
        ("blocks.0.hook_mlp_out", 32),
        ("blocks.1.mlp.hook_pre", 64),  # no hand-written suffix: the block is replayed
        ("ln_final.hook_normalized", 32),  # outside the blocks: the model is replayed
        ("blocks.0.hook_resid_post", 32),  # the copies start at the next block
        ("blocks.1.hook_resid_post", 32),  # ... which is the unembedding here
        ("hook_embed", 32),
    ],
)
def test_ce_loss_recovered_matches_direct_computation_with_hooks(hook, d_in):
    model, sae, tokens = tiny_model(), tiny_sae(d_in), tiny_tokens()
    cfg = StatsConfig(batch_size=4, top_k=3, n_bins=8, n_intervals=2, ce_loss=True)
    metrics = run_pass(model, sae, tokens, hook, cfg).finalize().metrics
    clean, spliced, zeroed = direct_losses(model, sae, tokens, hook)
    assert metrics["ce_loss_clean"] == pytest.approx(clean, rel=1e-5)
    assert metrics["ce_loss_spliced"] == pytest.approx(spliced, rel=1e-5)
    assert metrics["ce_loss_zero_ablated"] == pytest.approx(zeroed, rel=1e-5)
    assert metrics["ce_loss_recovered"] == pytest.approx(
        (zeroed - spliced) / (zeroed - clean), rel=1e-3
    )


@pytest.mark.parametrize(
    "hook", ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_mid", "blocks.0.hook_resid_post"]
)
def test_a_zeroed_residual_stream_is_one_position_through_the_rest_of_a_rotary_model(hook):
    # every later position sees the same vector, so the zero-ablated copy runs one position;
    # rotary attention weighs positions differently, but its values are all the same
    torch.manual_seed(0)
    model = build_model({**MODEL, "positional_embedding_type": "rotary", "rotary_dim": 16})
    sae, tokens = tiny_sae(32), tiny_tokens()
    rows: list[int] = []  # rows of logits the pass computes, per unembedding call
    counting = model.unembed.register_forward_hook(lambda mod, args, out: rows.append(out.shape[1]))
    cfg = StatsConfig(batch_size=4, top_k=3, n_bins=8, n_intervals=2, ce_loss=True)
    metrics = run_pass(model, sae, tokens, hook, cfg).finalize().metrics
    counting.remove()
    clean, spliced, zeroed = direct_losses(model, sae, tokens, hook)
    assert metrics["ce_loss_zero_ablated"] == pytest.approx(zeroed, rel=1e-5)
    assert metrics["ce_loss_spliced"] == pytest.approx(spliced, rel=1e-5)
    assert rows.count(1) == 2  # one row per batch (4 + 2 sequences) for the zeroed copy
    assert sum(rows) == 2 * tokens.numel() + 2


@pytest.mark.parametrize(
    "hook,d_in", [("blocks.1.mlp.hook_post", 64), ("blocks.1.attn.hook_q", 32)]
)
def test_ce_tokens_budget_computes_the_losses_on_the_leading_sequences_only(hook, d_in):
    model, sae, tokens = tiny_model(), tiny_sae(d_in), tiny_tokens(n_seq=7)
    cfg = StatsConfig(batch_size=2, top_k=3, n_bins=8, n_intervals=2, ce_tokens=40)
    metrics = run_pass(model, sae, tokens, hook, cfg).finalize().metrics
    clean, spliced, zeroed = direct_losses(model, sae, tokens[:3], hook)  # 40 tokens -> 3 seqs
    assert metrics["ce_loss_tokens"] == 3 * 15
    assert metrics["ce_loss_clean"] == pytest.approx(clean, rel=1e-5)
    assert metrics["ce_loss_spliced"] == pytest.approx(spliced, rel=1e-5)
    assert metrics["ce_loss_zero_ablated"] == pytest.approx(zeroed, rel=1e-5)
    assert metrics["ce_loss_recovered_se"] > 0


def test_pass_with_and_without_ce_loss_gives_the_same_feature_statistics():
    model, sae, tokens = tiny_model(), tiny_sae(64), tiny_tokens()
    hook = "blocks.0.mlp.hook_post"
    results = [
        run_pass(model, sae, tokens, hook, StatsConfig(batch_size=4, ce_loss=ce)).finalize()
        for ce in (False, True)
    ]
    assert torch.allclose(results[0].firing.max, results[1].firing.max)
    assert torch.equal(results[0].topk.index, results[1].topk.index)
    assert results[0].metrics["ce_loss_clean"] is None


def test_reconstruction_metrics_match_brute_force_over_all_tokens():
    model, sae, tokens = tiny_model(), tiny_sae(64), tiny_tokens()
    hook = "blocks.0.mlp.hook_post"
    cfg = StatsConfig(batch_size=4, ce_loss=False)
    metrics = run_pass(model, sae, tokens, hook, cfg).finalize().metrics
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=hook)
        x = cache[hook].reshape(-1, 64).double()
        acts = sae.encode(x.float())
        x_hat = sae.decode(acts).double()
    sse = (x - x_hat).square().sum()
    assert metrics["mse"] == pytest.approx((sse / x.shape[0]).item(), rel=1e-6)
    assert metrics["explained_variance"] == pytest.approx(
        1 - (sse / (x - x.mean(0)).square().sum()).item(), rel=1e-6
    )
    assert metrics["l0"] == pytest.approx((acts > 0).sum(1).double().mean().item(), rel=1e-9)
    assert metrics["dead_count"] == int(((acts > 0).sum(0) == 0).sum())


def test_nan_in_hook_activations_is_counted_and_refused_with_its_first_position(
    tiny_model_dir, tiny_sae_dir, tiny_tokens_npy
):
    import numpy as np

    from saesite.config import StatsConfig
    from saesite.errors import SaesiteError
    from saesite.lm.model import load_model
    from saesite.sae.load import load_sae
    from saesite.stats.pass_ import run_pass

    loaded = load_model(str(tiny_model_dir))
    sae = load_sae(tiny_sae_dir)
    tokens = torch.from_numpy(np.load(tiny_tokens_npy)).long()
    with torch.no_grad():  # a NaN in one embedding row poisons every token with that id
        bad_id = int(tokens[3, 5])
        loaded.model.W_E[bad_id, 0] = float("nan")
    n_bad = int((tokens == bad_id).sum())
    first = torch.nonzero((tokens == bad_id).flatten())[0].item()
    # masked attention weights are 0, and 0 * NaN = NaN: the whole sequence is poisoned
    with pytest.raises(
        SaesiteError,
        match=r"NaN/Inf value\(s\) in \d+ token\(s\), first at "
        rf"sequence {first // 32} position 0",
    ) as err:
        run_pass(
            loaded.model,
            sae,
            tokens,
            "blocks.0.mlp.hook_post",
            StatsConfig(batch_size=8, ce_loss=False),
        )
    assert int(str(err.value).split(" token(s)")[0].split()[-1]) >= n_bad


def test_cofiring_of_a_tiny_model_equals_a_brute_force_count_over_all_tokens():
    model, sae, tokens = tiny_model(), tiny_sae(64), tiny_tokens()
    hook = "blocks.0.mlp.hook_post"
    cfg = StatsConfig(batch_size=4, ce_loss=False, n_cofiring=6)
    cofiring = run_pass(model, sae, tokens, hook, cfg).finalize().cofiring
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=hook)
        fires = (sae.encode(cache[hook].reshape(-1, 64)) > 0).double()
    both = (fires.T @ fires).long()
    both.fill_diagonal_(0)
    assert cofiring.exact
    for f in range(both.shape[0]):
        order = torch.sort(both[f], descending=True, stable=True).indices[:6]
        order = order[both[f, order] > 0]
        assert cofiring.index[f, : order.numel()].tolist() == order.tolist()
        assert cofiring.count[f, : order.numel()].tolist() == both[f, order].tolist()


def test_above_the_exact_limit_cofiring_is_estimated_and_says_so():
    model, sae, tokens = tiny_model(), tiny_sae(64), tiny_tokens()
    cfg = StatsConfig(batch_size=4, ce_loss=False, cofiring_exact_max_features=8)
    stats = run_pass(model, sae, tokens, "blocks.0.mlp.hook_post", cfg)
    assert not stats.finalize().cofiring.exact


def test_bfloat16_model_gives_the_float32_statistics_within_its_precision():
    from saesite.lm.model import build_model

    torch.manual_seed(0)
    model32 = build_model(MODEL)
    model16 = build_model(MODEL, dtype="bfloat16")
    model16.load_state_dict({k: v.bfloat16() for k, v in model32.state_dict().items()})
    sae, tokens, hook = tiny_sae(64), tiny_tokens(), "blocks.1.mlp.hook_post"
    cfg = StatsConfig(batch_size=4, top_k=3, n_bins=8, n_intervals=2)
    full, half = (
        run_pass(m, sae, tokens, hook, cfg).finalize().metrics for m in (model32, model16)
    )
    for key in ("ce_loss_clean", "ce_loss_spliced", "ce_loss_zero_ablated", "l0"):
        assert half[key] == pytest.approx(full[key], rel=0.05), key


def masked_reference(model, sae, tokens, hook, keep):
    """run_evals' numbers computed directly: L0 / MSE / explained variance over the kept tokens;
    the three mean losses over the predictions made at kept tokens, the SAE spliced in at the
    kept tokens only."""

    def splice(act, hook):
        flat = act.reshape(act.shape[0] * act.shape[1], -1)
        out = sae(flat).reshape(act.shape)
        return torch.where(keep.view(*keep.shape, *[1] * (act.ndim - 2)), out, act)

    def zero(act, hook):
        return torch.zeros_like(act)

    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=hook)
        x = cache[hook].reshape(tokens.numel(), -1)[keep.flatten()].double()
        acts = sae.encode(x.float())
        x_hat = sae.decode(acts).double()
        losses = [
            model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks)
            for hooks in ([], [(hook, splice)], [(hook, zero)])
        ]
    sse = (x - x_hat).square().sum()
    predicting = keep[:, :-1]
    return {
        "n_tokens_measured": int(keep.sum()),
        "l0": (acts > 0).sum(1).double().mean().item(),
        "mse": (sse / x.shape[0]).item(),
        "explained_variance": 1 - (sse / (x - x.mean(0)).square().sum()).item(),
        "ce_loss_tokens": int(predicting.sum()),
        **{
            key: loss[predicting].double().mean().item()
            for key, loss in zip(
                ("ce_loss_clean", "ce_loss_spliced", "ce_loss_zero_ablated"), losses, strict=True
            )
        },
    }


@pytest.mark.parametrize(
    "hook,d_in",
    [
        ("blocks.0.mlp.hook_post", 64),  # the copies start at the hook
        ("blocks.1.hook_resid_pre", 32),  # the zeroed copy is one position
        ("blocks.1.mlp.hook_pre", 64),  # the block is replayed
        ("ln_final.hook_normalized", 32),  # the model is replayed
    ],
)
def test_special_tokens_are_left_out_of_l0_mse_variance_and_ce_as_in_run_evals(hook, d_in):
    model, sae, tokens = tiny_model(), tiny_sae(d_in), tiny_tokens()
    special = [0, 3, 7]
    tokens[:, 0] = 0  # a BOS at every sequence start, and EOS / padding ids inside
    keep = ~torch.isin(tokens, torch.tensor(special))
    cfg = StatsConfig(batch_size=4, top_k=3, n_bins=8, n_intervals=2, ce_loss=True)
    stats = run_pass(model, sae, tokens, hook, cfg, special_ids=special).finalize()
    metrics, expected = stats.metrics, masked_reference(model, sae, tokens, hook, keep)
    assert metrics["excluded_token_ids"] == special
    assert expected["n_tokens_measured"] < tokens.numel() - tokens.shape[0]  # not only BOS
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-5), key
    assert metrics["l0_all_tokens"] == stats.firing.l0 != metrics["l0"]


def test_include_special_tokens_measures_every_token():
    model, sae, tokens = tiny_model(), tiny_sae(64), tiny_tokens()
    hook = "blocks.0.mlp.hook_post"
    cfg = StatsConfig(batch_size=4, top_k=3, n_bins=8, n_intervals=2, include_special_tokens=True)
    metrics = run_pass(model, sae, tokens, hook, cfg, special_ids=[0, 3]).finalize().metrics
    expected = masked_reference(model, sae, tokens, hook, torch.ones_like(tokens, dtype=bool))
    assert metrics["excluded_token_ids"] == []
    assert metrics["n_tokens_measured"] == tokens.numel()
    assert metrics["l0"] == metrics["l0_all_tokens"]
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-5), key
