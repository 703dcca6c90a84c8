"""The pass's state on disk: a folder per shard, merged later into one site (docs/distributed.md).

Format (version 2), a folder holding two files:

    stats.safetensors   every tensor of every accumulator, named ``<accumulator>.<name>``
                        (``firing.count``, ``topk.windows``, ``reconstruction.tree.value.3``
                        …), and ``shard.token_ids``, the shard's token ids
    stats.json          {"format": "saesite-stats", "format_version": 1,
                         "provenance": {saesite_version, model, hook, sae_fingerprint,
                                        tokens: {n_seq, seq_len, fingerprint}, config},
                         "range": {first_seq, stop_seq,       sequences this state covers,
                                   first_feature, stop_feature, d_sae},  and features
                                   (a feature shard's, stats/feature_range.py; else all)
                         "build": the BuildConfig it was computed for (``saesite merge`` reuses it),
                         "scalars": {<accumulator>: {name: int | float | str},
                                     "shard": {seq_start, context_before, context_after}}}

A state is a ``FeatureStats`` without its weight statistics (the same for every shard, they are
computed once, after the merge) and without ablation effects (computed on the merged top-k).

No pickle anywhere: safetensors holds raw tensors and JSON the rest, so a state from an
untrusted place cannot run code. ``sae_fingerprint`` and ``tokens.fingerprint`` are SHA-256
hashes of the SAE's tensors and of the token ids. A state is refused (one line, naming what
differs) when its format, saesite version, model, hook, SAE, dataset or statistics config differ
from what the reader expects, or from the other states it is merged with. ``stats.json`` is
written last, so a folder without it is an unfinished state.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from saesite import __version__
from saesite.errors import SaesiteError
from saesite.stats.cofiring import CofiringAccumulator
from saesite.stats.cofiring_rows import CofiringRowsAccumulator
from saesite.stats.cofiring_sample import SampledCofiringAccumulator
from saesite.stats.feature_range import FeatureRange
from saesite.stats.feature_stats import FeatureStats
from saesite.stats.firing import FiringAccumulator
from saesite.stats.histogram import HistogramAccumulator
from saesite.stats.metrics import LossAccumulator, ReconstructionAccumulator
from saesite.stats.quantiles import IntervalAccumulator
from saesite.stats.topk import TopKAccumulator
from saesite.stats.windows import Window

FORMAT = "saesite-stats"
FORMAT_VERSION = 2
"""2: feature ranges (feature shards) in ``range``, co-firing rows (``kind: exact_rows``)."""
HEADER = "stats.json"
TENSORS = "stats.safetensors"
ACCUMULATORS = {
    "firing": FiringAccumulator,
    "histograms": HistogramAccumulator,
    "topk": TopKAccumulator,
    "intervals": IntervalAccumulator,
    "cofiring": CofiringAccumulator,
    "reconstruction": ReconstructionAccumulator,
    "losses": LossAccumulator,
}
NOT_STATS = ("device",)
"""Statistics-config fields that do not change the numbers (left out of the comparison)."""
CHECKED = (
    ("saesite_version", "saesite version"),
    ("model", "model"),
    ("hook", "hook"),
    ("sae_fingerprint", "SAE (weights fingerprint)"),
    ("tokens", "dataset"),
    ("config", "statistics config"),
)


def _class(name: str, part: dict) -> type:
    """The accumulator class of a state part (co-firing: exact or sampled, by its ``kind``)."""
    if name == "cofiring" and part.get("kind") == "sampled":
        return SampledCofiringAccumulator
    if name == "cofiring" and part.get("kind") == "exact_rows":
        return CofiringRowsAccumulator
    return ACCUMULATORS[name]


def fingerprint(tensors: dict[str, Tensor]) -> str:
    """SHA-256 of named tensors: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def provenance(
    model_name: str, hook: str, sae: torch.nn.Module, tokens: Tensor, config: dict
) -> dict[str, Any]:
    """What a state is computed from; two states merge only if these are equal."""
    stats = {k: v for k, v in config["stats"].items() if k not in NOT_STATS}
    return {
        "saesite_version": __version__,
        "model": model_name,
        "hook": hook,
        "sae_fingerprint": fingerprint(dict(sae.state_dict())),
        "tokens": {
            "n_seq": int(tokens.shape[0]),
            "seq_len": int(tokens.shape[1]),
            "fingerprint": fingerprint({"tokens": tokens.long()}),
        },
        "config": {"data": config["data"], "stats": stats},
    }


def check_provenance(found: dict, expected: dict, source: str) -> None:
    """Refuse, in one line, a state computed from something else than ``expected``."""
    for key, what in CHECKED:
        if found.get(key) != expected.get(key):
            shown = {
                "sae_fingerprint": lambda v: str(v)[:12],
                "tokens": lambda v: (
                    f"{v.get('n_seq')}x{v.get('seq_len')} {str(v.get('fingerprint'))[:12]}"
                ),
            }.get(key, lambda v: json.dumps(v, sort_keys=True)[:80])
            raise SaesiteError(
                f"{source}: state computed with a different {what} "
                f"({shown(found.get(key))}); expected {shown(expected.get(key))}"
            )


def pack_stats(stats: FeatureStats, prov: dict, build: dict) -> tuple[dict, bytes]:
    """(header, safetensors bytes) of ``stats``: the file format, in memory (Ray ships this)."""
    from safetensors.torch import save

    if stats.ablation is not None:
        raise ValueError("ablation effects belong to the merged top-k; save states before them")
    tensors: dict[str, Tensor] = {"shard.token_ids": stats.token_ids.contiguous()}
    scalars: dict[str, dict] = {
        "shard": {
            "seq_start": stats.seq_start,
            "context_before": stats.window.before,
            "context_after": stats.window.after,
        }
    }
    for name in ACCUMULATORS:
        scalars[name] = {}
        for key, value in getattr(stats, name).state_dict().items():
            if isinstance(value, Tensor):
                tensors[f"{name}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars[name][key] = value
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "provenance": prov,
        "range": {
            "first_seq": stats.seq_start,
            "stop_seq": stats.seq_start + stats.n_seq,
            "first_feature": stats.features.start,
            "stop_feature": stats.features.stop,
            "d_sae": stats.features.d_sae,
        },
        "build": build,
        "scalars": scalars,
    }
    return header, save(tensors)


def save_stats(state: FeatureStats, directory: str | Path, prov: dict, build: dict) -> Path:
    """Write ``state`` into ``directory`` (created; refused if it holds files saesite did not
    write). ``prov`` from ``provenance``; ``build`` is the BuildConfig as a dict."""
    folder = Path(directory)
    if folder.exists() and any(folder.iterdir()) and not (folder / HEADER).is_file():
        raise SaesiteError(
            f"--state-out {folder}: folder holds files saesite did not write; "
            "expected an empty folder or a previous state"
        )
    folder.mkdir(parents=True, exist_ok=True)
    header, blob = pack_stats(state, prov, build)
    tmp_tensors, tmp_header = folder / f".{TENSORS}.tmp", folder / f".{HEADER}.tmp"
    tmp_tensors.write_bytes(blob)
    tmp_header.write_text(json.dumps(header, sort_keys=True, indent=1) + "\n")
    (folder / HEADER).unlink(missing_ok=True)  # an unfinished state until the header is back
    os.replace(tmp_tensors, folder / TENSORS)
    os.replace(tmp_header, folder / HEADER)
    return folder


def read_header(directory: str | Path) -> dict:
    """The JSON header of a state folder, its format and version checked."""
    path = Path(directory) / HEADER
    if not path.is_file():
        raise SaesiteError(f"{directory}: no {HEADER}; expected a folder written by --state-out")
    try:
        header = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SaesiteError(f"{path}: not valid JSON ({err})") from None
    check_header(header, str(path))
    return header


def check_header(header: dict, source: str) -> None:
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise SaesiteError(
            f"{source}: format {header.get('format')!r} version {header.get('format_version')}; "
            f"expected {FORMAT!r} version {FORMAT_VERSION}"
        )


def unpack_stats(
    header: dict, blob: bytes, expected: dict | None, source: str, device: str = "cpu"
) -> FeatureStats:
    """The state ``pack_stats`` packed; refused if its provenance differs from ``expected``
    (by default, only the saesite version is checked)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    check_header(header, source)
    prov = header["provenance"]
    check_provenance(prov, expected or {**prov, "saesite_version": __version__}, source)
    try:
        tensors = load(blob)
    except SafetensorError as err:
        raise SaesiteError(f"{source}: cannot read its tensors ({err})") from None
    parts: dict[str, dict] = {name: dict(header["scalars"][name]) for name in ACCUMULATORS}
    parts["shard"] = dict(header["scalars"]["shard"])
    for key, tensor in tensors.items():
        name, _, rest = key.partition(".")
        parts[name][rest] = tensor
    shard = parts.pop("shard")
    span = header["range"]
    return FeatureStats(
        features=FeatureRange(span["first_feature"], span["stop_feature"], span["d_sae"]),
        token_ids=shard["token_ids"],
        seq_start=shard["seq_start"],
        window=Window(shard["context_before"], shard["context_after"]),
        **{
            name: _class(name, parts[name]).from_state_dict(parts[name], device)
            for name in ACCUMULATORS
        },
    )


def load_stats(
    directory: str | Path, expected: dict | None = None, device: str = "cpu"
) -> tuple[FeatureStats, dict]:
    """(state, header) of a state folder; refused if its provenance differs from ``expected``
    (by default, this saesite version's)."""
    header = read_header(directory)
    try:
        blob = (Path(directory) / TENSORS).read_bytes()
    except OSError as err:
        raise SaesiteError(f"{directory}/{TENSORS}: cannot read ({err.strerror})") from None
    return unpack_stats(header, blob, expected, str(directory), device), header
