"""Checks that run before any expensive work, so a bad flag costs seconds, not a whole pass.

Each is a small function of the inputs it checks: the torch device, the statistics' sizes
against what the data allows and the memory they would take, the labels file against the SAE's
width. The published form of local paths (site.json must not leak a user's home folder) lives
here too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from saesite.config import StatsConfig
from saesite.errors import SaesiteError

log = logging.getLogger(__name__)

DEVICE_TYPES = ("cpu", "cuda", "mps")
MEMORY_SHARE = 0.5
"""The statistics' per-feature state may take at most this share of the machine's memory."""


def check_device(device: str) -> None:
    """Refuse a device torch cannot use here (``tpu:7``; ``cuda`` on a CPU-only torch)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise SaesiteError(
            f"--device {device!r} is not a torch device; expected cpu, cuda, cuda:N or mps"
        ) from None
    if parsed.type not in DEVICE_TYPES:
        raise SaesiteError(f"--device {device!r} is not supported; expected cpu, cuda or mps")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            built = "without CUDA" if not torch.backends.cuda.is_built() else "with no GPU visible"
            raise SaesiteError(
                f"--device {device!r}: this torch {torch.__version__} runs {built}; "
                "expected --device cpu"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise SaesiteError(
                f"--device {device!r}: there are {torch.cuda.device_count()} CUDA device(s); "
                f"expected an index below {torch.cuda.device_count()}"
            )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise SaesiteError(f"--device {device!r}: MPS is not available here; expected cpu")


def total_memory() -> int | None:
    """Bytes of physical memory, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_stats_sizes(stats: StatsConfig, n_seq: int, seq_len: int, d_sae: int) -> None:
    """Refuse example counts and context widths the data cannot fill, and statistics whose
    per-feature state would not fit in memory, before anything is allocated."""
    n_tokens = n_seq * seq_len
    for flag, value in (("top-k", stats.top_k), ("interval-samples", stats.interval_samples)):
        if value > n_tokens:
            raise SaesiteError(
                f"--{flag} is {value:,} but the dataset has {n_tokens:,} tokens; "
                f"expected at most {n_tokens:,}"
            )
    for flag, value in (
        ("context-before", stats.context_before),
        ("context-after", stats.context_after),
    ):
        if value >= seq_len:
            raise SaesiteError(
                f"--{flag} is {value:,} but sequences have {seq_len} tokens; "
                f"expected at most {seq_len - 1}"
            )
    width = stats.context_before + stats.context_after + 1
    examples = stats.top_k + stats.n_intervals * stats.interval_samples
    # per example: its activation (float32), token index (int64), window of float32 activations
    needed = d_sae * examples * (12 + 4 * width)
    memory = total_memory()
    if memory is not None and needed > MEMORY_SHARE * memory:
        raise SaesiteError(
            f"the statistics would hold {needed / 2**30:,.1f} GiB ({d_sae:,} features x "
            f"{examples:,} examples x {width} tokens); this machine has {memory / 2**30:,.1f} "
            "GiB; expected less: lower --top-k, --interval-samples or the context"
        )


def check_labels(path: str | None, d_sae: int) -> None:
    """Read and check the labels file against the SAE's width (the renderer reads it again)."""
    if path is None:
        return
    from saesite.site.labels import Labels

    Labels({}, path, d_sae)


def published_path(value: str | None, record_paths: bool) -> str | None:
    """How an input path appears in a published site: relative to the working folder when
    inside it, else its base name; the full path only with ``record_paths``. A name that is not
    a local path (a hub model name) is kept."""
    if value is None or not os.path.exists(value):
        return value
    path = Path(os.path.abspath(value))
    if record_paths:
        return str(path)
    try:
        return path.relative_to(Path.cwd()).as_posix() or "."
    except ValueError:
        return path.name
