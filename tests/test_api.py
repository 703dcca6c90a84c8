"""The Python API: ``saesite.build`` from objects in memory, ``saesite.show_feature``."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import saesite
from saesite.cli import main
from saesite.config import StatsConfig
from saesite.errors import SaesiteError
from saesite.lm.model import Tokenizer, build_model, save_model
from saesite.sae.model import SAE, SaeConfig, init_sae_, save_sae
from tests.conftest import TINY_HOOK, TINY_MODEL

STATS = dict(batch_size=8, top_k=5, n_bins=16, n_intervals=4, interval_samples=3, ce_loss=False)
FLAGS = ["--batch-size", "8", "--top-k", "5", "--n-bins", "16", "--n-intervals", "4"]
FLAGS += ["--interval-samples", "3", "--no-ce-loss", "--workers", "1"]


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def objects(tiny_model_dir, tiny_tokens_npy):
    """A tiny HookedTransformer from a config, a random SAE and a token tensor, in memory."""
    tokenizer = Tokenizer.from_file(tiny_model_dir / "tokenizer.json")
    torch.manual_seed(1)
    model = build_model({**TINY_MODEL, "d_vocab": tokenizer.vocab_size})
    cfg = SaeConfig(d_in=TINY_MODEL["d_mlp"], d_sae=48, hook_name=TINY_HOOK)
    sae = init_sae_(SAE(cfg), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        sae.b_enc.fill_(-0.05)
    tokens = torch.from_numpy(np.load(tiny_tokens_npy)).long()
    return model, sae, tokens, tokenizer


def test_a_site_built_from_objects_through_the_python_api_is_the_cli_build_of_them_saved(
    objects, tiny_model_dir, tmp_path, monkeypatch
):
    model, sae, tokens, tokenizer = objects
    monkeypatch.chdir(tmp_path)
    save_model(model, tiny_model_dir / "tokenizer.json", tmp_path / "model", dtype=torch.float32)
    save_sae(sae, tmp_path / "sae")
    np.save(tmp_path / "tokens.npy", tokens.numpy())
    args = ["build", "--model", "model", "--sae", "sae", "--dataset", "tokens.npy"]
    assert main([*args, *FLAGS, "--out", "cli"]) == 0

    api = saesite.build(
        model,
        sae,
        tokens.numpy(),
        out=tmp_path / "api",
        tokenizer=tokenizer,
        model_name="model",
        stats=StatsConfig(**STATS),
        workers=1,
    )
    cli, built = files(tmp_path / "cli"), files(api)
    n_pages = sum(1 for name in built if name.startswith("features/") and name.endswith(".html"))
    assert n_pages == 48 and "features/000/records.jsonl.gz" in built
    assert built.keys() == cli.keys()
    # The build config (site.json, and the index page's "Build configuration") records where
    # the inputs came from: folders or objects. Everything else is the same bytes.
    site_cli, site_api = json.loads(cli.pop("site.json")), json.loads(built.pop("site.json"))
    assert site_cli.pop("config")["sae"] == "sae" and site_api.pop("config")["sae"] is None
    assert site_api == site_cli
    config = re.compile(rb'<details class="config">.*?</details>', re.S)
    index_cli, index_api = cli.pop("index.html"), built.pop("index.html")
    assert config.sub(b"", index_api) == config.sub(b"", index_cli) != index_cli
    assert built == cli


def test_the_stage_functions_are_exported_and_importing_saesite_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, saesite; assert 'torch' not in sys.modules; "
        "assert callable(saesite.render) and 'torch' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    for name in ("build", "load", "load_objects", "compute", "write_records", "show_feature"):
        assert callable(getattr(saesite, name))


def test_show_feature_gives_jupyter_an_inline_frame_of_that_page_with_its_style(tiny_site):
    page = saesite.show_feature(tiny_site, 3)
    frame = page._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and "&lt;style&gt;" in frame
    assert "Content-Security-Policy" not in frame and "&lt;script src" not in frame
    assert page.path == tiny_site / "features" / "000" / "3.html"
    with pytest.raises(SaesiteError, match="feature 10000 is not in"):
        saesite.show_feature(tiny_site, 10_000)
