"""`saesite train-model`: a BPE tokenizer and a tiny transformer, trained on local text.

The default corpus is one every machine has offline: the Python standard library's own `.py`
files. Files are split into train / held-out by a hash of their relative path, so the split does
not depend on the order the filesystem lists them. The held-out files give the validation loss
and ``demo_tokens.npy``, the dataset the demo site is built on.

Sequences are packed the way ``saesite build`` packs text: BOS, then ``n_ctx - 1`` tokens of the
running token stream, with an end-of-text token between documents.
"""

from __future__ import annotations

import hashlib
import logging
import sysconfig
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from saesite.config import TrainModelConfig
from saesite.errors import SaesiteError
from saesite.train.schedule import warmup_cosine

log = logging.getLogger(__name__)

EOT = "<|endoftext|>"
HELD_OUT_PERCENT = 5


def stdlib_files() -> list[Path]:
    """The standard library's .py files (not site-packages), in sorted order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts and p.is_file())


def corpus_files(corpus: str | None) -> tuple[Path, list[Path]]:
    if corpus is None:
        return Path(sysconfig.get_paths()["stdlib"]), stdlib_files()
    path = Path(corpus)
    if path.is_file():
        return path.parent, [path]
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix in (".py", ".txt", ".md")
        )
        if files:
            return path, files
    raise SaesiteError(f"--corpus {corpus}: no .py/.txt/.md files found; expected a file or folder")


def is_held_out(relative: str) -> bool:
    digest = hashlib.sha256(relative.encode()).digest()
    return digest[0] * 100 // 256 < HELD_OUT_PERCENT


def read_texts(root: Path, files: list[Path]) -> tuple[list[str], list[str]]:
    train, held_out = [], []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if not text.strip():
            continue
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        (held_out if is_held_out(rel) and len(files) > 1 else train).append(text)
    if not held_out:  # a single-file corpus: hold out its last 5%
        text = train.pop()
        cut = len(text) * (100 - HELD_OUT_PERCENT) // 100
        train.append(text[:cut])
        held_out.append(text[cut:])
    return train, held_out


def train_tokenizer(texts: list[str], vocab_size: int):
    """A GPT-2 style byte-level BPE with one special token, ``<|endoftext|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def pack(stream: np.ndarray, n_ctx: int, bos: int) -> np.ndarray:
    """[n_seq, n_ctx] int32: BOS then n_ctx - 1 tokens of the stream, no overlap."""
    body = n_ctx - 1
    n_seq = len(stream) // body
    seqs = stream[: n_seq * body].reshape(n_seq, body)
    return np.concatenate([np.full((n_seq, 1), bos, dtype=np.int32), seqs], axis=1)


def token_stream(tokenizer, texts: list[str], eot: int) -> np.ndarray:
    ids: list[int] = []
    for enc in tokenizer.encode_batch(texts, add_special_tokens=False):
        ids.extend(enc.ids)
        ids.append(eot)
    return np.asarray(ids, dtype=np.int32)


def model_config(cfg: TrainModelConfig, d_vocab: int) -> dict:
    return {
        "n_layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "n_heads": cfg.n_heads,
        "d_head": cfg.d_model // cfg.n_heads,
        "d_mlp": cfg.d_mlp,
        "n_ctx": cfg.n_ctx,
        "d_vocab": d_vocab,
        "act_fn": "gelu",
        "normalization_type": "LN",
        "model_name": "saesite-demo",
        "default_prepend_bos": True,
        "tokenizer_prepends_bos": False,
    }


@torch.no_grad()
def evaluate(model, seqs: torch.Tensor, batch_size: int = 64) -> float:
    losses = []
    for start in range(0, len(seqs), batch_size):
        batch = seqs[start : start + batch_size]
        losses.append(model(batch, return_type="loss").item() * len(batch))
    return sum(losses) / len(seqs)


def train_model(cfg: TrainModelConfig) -> dict:
    """Train the tokenizer and the model; write the model folder and demo tokens to cfg.out."""
    from saesite.lm.model import build_model, save_model

    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    root, files = corpus_files(cfg.corpus)
    train_texts, held_texts = read_texts(root, files)
    log.info("corpus: %d train / %d held-out documents", len(train_texts), len(held_texts))

    tokenizer = train_tokenizer(train_texts, cfg.vocab_size)
    tokenizer_path = out / "tokenizer.json"
    tokenizer.save(str(tokenizer_path))
    eot = tokenizer.token_to_id(EOT)
    train = torch.from_numpy(pack(token_stream(tokenizer, train_texts, eot), cfg.n_ctx, eot))
    held = pack(token_stream(tokenizer, held_texts, eot), cfg.n_ctx, eot)
    n_demo = min(len(held), max(1, cfg.demo_tokens // cfg.n_ctx))
    np.save(out / "demo_tokens.npy", held[:n_demo])
    val = torch.from_numpy(held[n_demo:] if len(held) > n_demo + 8 else held[:n_demo])[:256]

    model = build_model(model_config(cfg, tokenizer.get_vocab_size()), cfg.device)
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    start_loss = evaluate(model.eval(), val.to(cfg.device))
    model.train()
    bar = tqdm(range(cfg.steps), desc="train-model", unit="step")
    for step in bar:
        idx = torch.randint(0, len(train), (cfg.batch_size,), generator=gen)
        loss = model(train[idx].to(cfg.device), return_type="loss")
        for group in optim.param_groups:
            # 5% warm-up, then cosine decay to a tenth of the peak
            group["lr"] = cfg.lr * warmup_cosine(step, cfg.steps, cfg.steps // 20, floor=0.1)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    val_loss = evaluate(model, val.to(cfg.device))
    save_model(model, tokenizer_path, out)
    n_params = sum(p.numel() for p in model.parameters())
    summary = {
        "n_params": n_params,
        "train_tokens_seen": cfg.steps * cfg.batch_size * cfg.n_ctx,
        "val_loss_start": round(start_loss, 4),
        "val_loss": round(val_loss, 4),
        "demo_tokens": int(n_demo * cfg.n_ctx),
    }
    log.info("train-model: %s", summary)
    return summary
