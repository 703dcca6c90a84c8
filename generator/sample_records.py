"""Synthetic, schema-conformant records (docs/schema.md) for the renderer: no model, no torch.

For developing templates, measuring page sizes, testing the renderer, and the adversarial
fixture: ``ADVERSARIAL_TOKENS`` and ``ADVERSARIAL_LABELS`` hold text that must show literally
and never run (script tags, quotes, entities, comment openers, U+2028/9, NUL and control
characters, an RTL override, a 500-character token, an empty token, lone UTF-8 bytes and an
emoji split across two tokens).
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Sequence

import generator

PWN = "window.__pwned=1"
ADVERSARIAL_TOKENS: tuple[str, ...] = (
    f'</script><img src=x onerror="{PWN}">',
    f"<script>{PWN}</script>",
    '"',
    "'",
    "&amp;",
    "<!--",
    "]]>",
    "\u2028",
    "\u2029",
    "\x00",
    "\x01\x1b[31m",
    "\u202eevil",
    "é" + "a" * 499,
    "",
    "\ufffd",  # bytes e2 (lone lead byte), see ADVERSARIAL_TOKEN_BYTES
    "\ufffd",  # bytes f0 9f: first half of U+1F600
    "\ufffd\ufffd",  # bytes 98 80: second half of U+1F600
    "{{ 7*7 }}",
    f"javascript:{PWN}",
    "\\u003c/script\\u003e",
    " django",
    "\n\n",
    "\t",
)
ADVERSARIAL_TOKEN_BYTES = {"14": "e2", "15": "f0 9f", "16": "98 80"}
ADVERSARIAL_LABELS: tuple[str, ...] = (
    f'</script><svg onload="{PWN}">',
    "\"quoted\" & 'single' <!-- ]]>",
    "line\u2028sep\u2029para\x00nul",
    "\u202eright-to-left",
    f"<img src=x onerror={PWN}>",
)


def _f32(value: float) -> float:
    """A float32 value as Python float, like statistics computed in float32."""
    return struct.unpack("f", struct.pack("f", value))[0]


def default_vocab(size: int = 512, seed: int = 0) -> list[str]:
    """Pseudo-words, most with a leading space, plus punctuation and whitespace runs."""
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgk"
    vocab = ["\n", " ", "    ", ".", ",", "(", ")", ":", "=", "_", "\n    "]
    while len(vocab) < size:
        word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 7)))
        vocab.append((" " if rng.random() < 0.6 else "") + word)
    return vocab


def _example(
    rng: random.Random,
    vocab: Sequence[str],
    act: float,
    width: int,
    context_before: int,
    stream: Sequence[int] | None,
) -> dict:
    seq = rng.randrange(1000)
    pos = rng.randrange(context_before, context_before + 100)
    own = min(context_before, pos)
    if stream is not None:
        start = rng.randrange(0, len(stream) - width)
        ids = [int(t) for t in stream[start : start + width]]
    else:
        ids = [rng.randrange(len(vocab)) for _ in range(width)]
    acts = [0.0] * width
    for j in range(width):
        if j != own and rng.random() < 0.15:
            acts[j] = _f32(act * rng.random())
    acts[own] = act
    acts = [float(f"{a:.4g}") for a in acts]  # as records.py rounds window activations
    return {
        "act": act,
        "seq": seq,
        "pos": pos,
        "window_start": pos - own,
        "tokens": [vocab[t] for t in ids],
        "token_ids": ids,
        "acts": acts,
    }


def _histogram(rng: random.Random, lo: float, hi: float, n_bins: int, total: int) -> dict:
    edges = [_f32(lo + (hi - lo) * k / n_bins) for k in range(n_bins + 1)]
    weights = [math.exp(-3 * k / n_bins) * (0.5 + rng.random()) for k in range(n_bins)]
    scale = total / sum(weights)
    return {"edges": edges, "counts": [int(w * scale) for w in weights]}


def sample_feature(
    index: int,
    rng: random.Random,
    vocab: Sequence[str],
    *,
    n_features: int,
    n_tokens: int,
    top_k: int = 20,
    n_intervals: int = 10,
    interval_samples: int = 5,
    context_before: int = 12,
    context_after: int = 4,
    stream: Sequence[int] | None = None,
    dead: bool = False,
    dense: bool = False,
) -> dict:
    """One feature record shaped as docs/schema.md describes."""
    width = context_before + 1 + context_after
    density = 0.0 if dead else (0.2 if dense else 10 ** rng.uniform(-4.5, -1.2))
    fired = round(density * n_tokens)
    max_act = 0.0 if dead else _f32(rng.uniform(0.5, 12.0))
    n_top = min(top_k, fired)
    tops = sorted(
        (_f32(max_act * (1 - 0.4 * rng.random())) for _ in range(n_top - 1)), reverse=True
    )
    top_acts = ([max_act] + tops) if n_top else []
    intervals = []
    if not dead:
        # activations roughly exponential: the top intervals hold few firings, hence few examples
        weights = [math.exp(-0.5 * k) for k in range(n_intervals)]
        for k in range(n_intervals):
            lo, hi = max_act * k / n_intervals, max_act * (k + 1) / n_intervals
            fraction = weights[k] / sum(weights)
            n_ex = min(interval_samples, round(fired * fraction))
            intervals.append(
                {
                    "lo": _f32(lo),
                    "hi": _f32(hi),
                    "fraction": _f32(fraction),
                    "examples": [
                        _example(
                            rng,
                            vocab,
                            _f32(rng.uniform(lo, hi) or hi / 2),
                            width,
                            context_before,
                            stream,
                        )
                        for _ in range(n_ex)
                    ],
                }
            )
    logit_ids = rng.sample(range(len(vocab)), 20)
    positive = sorted((_f32(rng.uniform(0.1, 1.5)) for _ in range(10)), reverse=True)
    negative = sorted(_f32(-rng.uniform(0.1, 1.5)) for _ in range(10))
    return {
        "index": index,
        "label": None,
        "density": density,
        "log10_density": None if dead else math.log10(density),
        "max_activation": max_act,
        "mean_activation": 0.0 if dead else _f32(max_act * 0.3),
        "dead": dead,
        "dense": dense,
        "histogram": _histogram(rng, 0.0, 16.0 if dead else max_act * 1.2, 64, fired),
        "top_examples": [_example(rng, vocab, a, width, context_before, stream) for a in top_acts],
        "quantile_examples": intervals,
        "logit_effects": {
            "positive": [
                {"token": vocab[t], "token_id": t, "value": v}
                for t, v in zip(logit_ids[:10], positive)
            ],
            "negative": [
                {"token": vocab[t], "token_id": t, "value": v}
                for t, v in zip(logit_ids[10:], negative)
            ],
        },
        "logit_histogram": _histogram(rng, -1.5, 1.5, 32, len(vocab)),
        "neuron_exposures": sorted(
            (
                {"neuron": rng.randrange(512), "weight": _f32(rng.uniform(-0.5, 0.5))}
                for _ in range(8)
            ),
            key=lambda n: -abs(n["weight"]),
        ),
        "neuron_share": _f32(rng.uniform(0.05, 0.6)),
        "neighbours": [
            {"index": rng.randrange(n_features), "cosine": _f32(rng.uniform(0.1, 0.9))}
            for _ in range(8)
        ],
        "cofiring": [
            {
                "index": rng.randrange(n_features),
                "count": rng.randrange(1, 100),
                "jaccard": _f32(rng.random() * 0.5),
            }
            for _ in range(5)
        ],
        "encoder_decoder_cosine": _f32(rng.uniform(0.3, 0.95)),
    }


def sample_site(
    n_features: int = 64,
    *,
    seed: int = 0,
    vocab: Sequence[str] | None = None,
    stream: Sequence[int] | None = None,
    token_bytes: dict[str, str] | None = None,
    n_tokens: int = 131072,
    **feature_kw,
) -> tuple[dict, list[dict]]:
    """``(site, features)``: site.json fields except ``features``, and the feature records.

    Feature 1 is dead and feature 2 dense (when they exist). ``stream`` (token ids) gives
    realistic windows; otherwise tokens are drawn uniformly from ``vocab``.
    """
    rng = random.Random(seed)
    vocab = list(vocab) if vocab is not None else default_vocab(seed=seed)
    features = [
        sample_feature(
            i,
            rng,
            vocab,
            n_features=n_features,
            n_tokens=n_tokens,
            stream=stream,
            dead=i == 1,
            dense=i == 2,
            **feature_kw,
        )
        for i in range(n_features)
    ]
    live = [math.log10(f["density"]) for f in features if not f["dead"]]
    n_bins = 30
    edges = [-6 + 6 * k / n_bins for k in range(n_bins + 1)]
    counts = [0] * n_bins
    for value in live:
        counts[min(n_bins - 1, max(0, int((value + 6) / 6 * n_bins)))] += 1
    site = {
        "saesite_version": generator.__version__,
        "model": "synthetic",
        "hook": "blocks.0.mlp.hook_post",
        "d_in": 512,
        "d_sae": n_features,
        "sae": {"architecture": "standard", "apply_b_dec_to_input": True},
        "n_tokens": n_tokens,
        "n_seq": n_tokens // 128,
        "seq_len": 128,
        "config": {"seed": seed, "render": {"features_per_folder": 500, "title": None}},
        "metrics": {
            "l0": 31.5,
            "explained_variance": 0.81,
            "mse": 0.0123,
            "dead_count": sum(f["dead"] for f in features),
            "dense_count": sum(f["dense"] for f in features),
            "ce_loss_clean": 3.1,
            "ce_loss_spliced": 3.3,
            "ce_loss_zero_ablated": 4.9,
            "ce_loss_recovered": 0.89,
        },
        "density_histogram": {
            "edges": edges,
            "counts": counts,
            "dead": sum(f["dead"] for f in features),
        },
        "token_bytes": dict(token_bytes or {}),
        "labels": {},
    }
    return site, features


def adversarial_site(n_features: int = 8, seed: int = 0) -> tuple[dict, list[dict]]:
    """A small site whose every token and label is hostile text (see module docstring)."""
    vocab = list(ADVERSARIAL_TOKENS)
    site, features = sample_site(
        n_features,
        seed=seed,
        vocab=vocab,
        token_bytes=ADVERSARIAL_TOKEN_BYTES,
        top_k=6,
        n_intervals=3,
        interval_samples=2,
    )
    rng = random.Random(seed)
    for feature in features:
        feature["label"] = ADVERSARIAL_LABELS[feature["index"] % len(ADVERSARIAL_LABELS)]
        # every token shows up in each live feature: the windows walk the whole vocabulary
        for k, example in enumerate(feature["top_examples"]):
            ids = [(k * 7 + j) % len(vocab) for j in range(len(example["tokens"]))]
            example["token_ids"] = ids
            example["tokens"] = [vocab[t] for t in ids]
            example["acts"] = [_f32(rng.random() * feature["max_activation"]) for _ in ids]
        effects = feature["logit_effects"]
        for sign, offset in (("positive", 0), ("negative", 10)):
            for j, effect in enumerate(effects[sign]):
                t = (offset + j) % len(vocab)
                effect["token"], effect["token_id"] = vocab[t], t
    site["model"] = ADVERSARIAL_TOKENS[0]
    site["hook"] = "blocks.0.hook_resid_pre<!--"
    return site, features
