"""Tiny, real fixtures: a TransformerLens model folder, an SAELens-format SAE, an .npy dataset.

Everything is built offline in about a second: a byte-level BPE trained on a few kilobytes of
this repository's own text, a 1-layer model from a HookedTransformerConfig, and an SAE whose
encoder biases are shifted so that features fire sparsely.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# Under pytest-xdist each worker gets one torch thread: two workers with two OpenMP threads each
# on a 2-core machine spin-wait on each other and run about ten times slower (measured here).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

TINY_TEXT = (
    "def add(a, b):\n    return a + b\n\n"
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n\n"
    "for i in range(10):\n    print(i, 'hello world')\n\n"
    "import os\nimport sys\nif __name__ == '__main__':\n    sys.exit(main())\n"
) * 4

TINY_MODEL = dict(
    n_layers=1,
    d_model=32,
    n_heads=2,
    d_head=16,
    d_mlp=64,
    n_ctx=32,
    act_fn="gelu",
    normalization_type="LN",
)
TINY_HOOK = "blocks.0.mlp.hook_post"
TINY_D_SAE = 96


def make_tiny_model_dir(path: Path, seed: int = 0) -> Path:
    from saesite.lm.model import build_model, save_model
    from saesite.train.model import train_tokenizer

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer([TINY_TEXT], vocab_size=300)
    tokenizer.save(str(path / "tokenizer.json"))
    torch.manual_seed(seed)
    model = build_model({**TINY_MODEL, "d_vocab": tokenizer.get_vocab_size()})
    save_model(model, path / "tokenizer.json", path, dtype=torch.float32)
    return path


def make_tiny_sae_dir(
    path: Path,
    d_in: int = 64,
    d_sae: int = TINY_D_SAE,
    architecture: str = "standard",
    seed: int = 0,
    hook: str = TINY_HOOK,
    bias: float = -0.05,
) -> Path:
    from saesite.sae.model import SAE, SaeConfig, init_sae_, save_sae

    gen = torch.Generator().manual_seed(seed)
    cfg = SaeConfig(
        architecture=architecture,
        d_in=d_in,
        d_sae=d_sae,
        hook_name=hook,
        model_name="tiny",
        k=8 if architecture == "topk" else None,
    )
    sae = init_sae_(SAE(cfg), generator=gen)
    with torch.no_grad():
        sae.b_enc.fill_(bias)
        if architecture == "jumprelu":
            sae.threshold.fill_(0.02)
    save_sae(sae, path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_sae_dir(tmp_path_factory) -> Path:
    return make_tiny_sae_dir(tmp_path_factory.mktemp("tiny-sae"))


@pytest.fixture(scope="session")
def tiny_tokens_npy(tmp_path_factory, tiny_model_dir) -> Path:
    """24 sequences of 32 tokens: the tiny text tokenised, with a few random ids mixed in."""
    from saesite.lm.model import Tokenizer

    tokenizer = Tokenizer.from_file(tiny_model_dir / "tokenizer.json")
    ids = np.array(tokenizer.encode(TINY_TEXT * 3), dtype=np.int64)
    rng = np.random.default_rng(0)
    n_seq, seq_len = 24, 32
    stream = np.resize(ids, n_seq * seq_len)
    noise = rng.integers(0, tokenizer.vocab_size, size=stream.shape)
    stream = np.where(rng.random(stream.shape) < 0.2, noise, stream)
    path = tmp_path_factory.mktemp("tiny-data") / "tokens.npy"
    np.save(path, stream.reshape(n_seq, seq_len).astype(np.int32))
    return path


@pytest.fixture(scope="session")
def tiny_site(tmp_path_factory, tiny_model_dir, tiny_sae_dir, tiny_tokens_npy) -> Path:
    """A real site built end to end from the tiny model, SAE and tokens."""
    from saesite.config import BuildConfig, DataConfig, RenderConfig, StatsConfig
    from saesite.pipeline import build_site

    out = tmp_path_factory.mktemp("tiny-site") / "site"
    config = BuildConfig(
        model=str(tiny_model_dir),
        sae=str(tiny_sae_dir),
        data=DataConfig(dataset=str(tiny_tokens_npy)),
        stats=StatsConfig(
            batch_size=8,
            top_k=5,
            n_bins=16,
            n_intervals=4,
            interval_samples=3,
            context_before=4,
            context_after=2,
        ),
        render=RenderConfig(out=str(out)),
    )
    return build_site(config)


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory) -> Path:
    """A Hugging Face cache with tiny SAEs under real SAELens release repos and a tiny
    TinyStories-1M (tests/fixtures/hf_cache.py)."""
    from tests.fixtures.hf_cache import make_hf_cache

    return make_hf_cache(tmp_path_factory.mktemp("hf-home"), TINY_TEXT)


@pytest.fixture
def offline_hf(hf_home) -> Path:
    """HF_HOME = the fixture cache and HF_HUB_OFFLINE=1 for one test."""
    from tests.fixtures.hf_cache import offline_hub

    with offline_hub(hf_home):
        yield hf_home


SHARD_STATS_ARGS = ["--batch-size", "2", "--top-k", "5", "--n-bins", "16", "--n-intervals", "4"]
"""Statistics flags of the sharded-build tests: batches of 2 sequences, so 12 batches to split."""


def shard_build_args(model, sae, tokens, out=None) -> list[str]:
    """``saesite build`` arguments for the tiny inputs (``--out`` only when given)."""
    args = ["-q", "build", "--model", str(model), "--sae", str(sae), "--dataset", str(tokens)]
    return [*args, *SHARD_STATS_ARGS, *(["--out", str(out)] if out else []), "--workers", "1"]


@pytest.fixture(scope="session")
def one_process_site(tmp_path_factory, tiny_model_dir, tiny_sae_dir, tiny_tokens_npy) -> Path:
    """The one-process site that sharded and Ray builds of the tiny inputs must equal."""
    from saesite.cli import main

    out = tmp_path_factory.mktemp("one-process") / "site"
    assert main(shard_build_args(tiny_model_dir, tiny_sae_dir, tiny_tokens_npy, out)) == 0
    return out
