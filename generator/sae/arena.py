"""The SAE formats of ARENA's exercises, read into saesite's SAE (SAELens names and encoding).

ARENA ``AutoEncoder`` / ``ToySAE`` (superposition & SAEs): one state dict holds ``n_instances``
SAEs trained side by side, saved with ``torch.save(sae.state_dict(), FILE)`` (or safetensors)::

    W_enc [n_instances, d_in, d_sae]   W_dec (or _W_dec) [n_instances, d_sae, d_in]
    b_enc [n_instances, d_sae]         b_dec [n_instances, d_in]

    h_cent = h - b_dec;   acts = ReLU(h_cent @ W_enc + b_enc)
    h_hat  = acts @ W_dec_n + b_dec,   W_dec_n = W_dec / (‖W_dec[f]‖ + eps)

``W_dec_n`` is what ``normalize_and_return_W_dec`` returns (``W_dec_normalized`` in the newer
``ToySAE``), eps = ``weight_normalize_eps`` = 1e-8. Without a decoder (``tied_weights``) the
decoder is ``W_enc`` transposed, normalised the same way. The loader stores ``W_dec_n``, so
saesite's ``decode`` reconstructs exactly as the exercise's forward does.

gelu-1l 1-layer SAE (Neel Nanda's, used in ARENA's language-model section): ``NAME.pt`` (a state
dict) next to ``NAME_cfg.json`` (``d_mlp``, ``dict_mult``, ``seed``, ``l1_coeff``, ``enc_dtype``…)::

    W_enc [d_mlp, d_mlp·dict_mult]   W_dec [d_mlp·dict_mult, d_mlp]   b_enc, b_dec
    acts = ReLU((x - b_dec) @ W_enc + b_enc);   x_hat = acts @ W_dec + b_dec

on ``blocks.0.mlp.hook_post`` (the cfg's ``act_name`` when it has one).
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from saesite.errors import SaesiteError
from saesite.sae.model import SAE, SaeConfig

ArenaFormat = Literal["arena-instances", "gelu-1l"]
WEIGHT_NORMALIZE_EPS = 1e-8
GELU_1L_HOOK = "blocks.0.mlp.hook_post"
GELU_1L_MODEL = "gelu-1l"
STATE_DICT_SUFFIXES = (".pt", ".pth", ".safetensors")
NAMES = ("W_enc", "b_enc", "b_dec")


def gelu_1l_cfg_path(path: Path) -> Path:
    """``NAME.pt`` → ``NAME_cfg.json``."""
    return path.with_name(f"{path.stem}_cfg.json")


def _read_json(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SaesiteError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(raw, dict):
        raise SaesiteError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    return raw


def detect_arena_format(path: str | Path) -> ArenaFormat | None:
    """Which ARENA format a ``--sae`` path is in; None for anything else (an SAELens folder).

    A ``NAME_cfg.json`` with ``d_mlp`` and ``dict_mult`` (given itself, or next to ``NAME.pt``)
    is the gelu-1l format; any other state-dict file is read as ARENA's ``n_instances`` layout.
    """
    path = Path(path)
    if not path.is_file():
        return None
    if path.name.endswith("_cfg.json"):
        raw = _read_json(path)
        return "gelu-1l" if {"d_mlp", "dict_mult"} <= raw.keys() else None
    if path.suffix not in STATE_DICT_SUFFIXES:
        return None
    cfg = gelu_1l_cfg_path(path)
    if cfg.is_file() and {"d_mlp", "dict_mult"} <= _read_json(cfg).keys():
        return "gelu-1l"
    return "arena-instances"


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Tensors of a ``torch.save``d state dict (``weights_only``) or of a safetensors file."""
    try:
        if path.suffix == ".safetensors":
            tensors = load_file(str(path))
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except (
        SafetensorError,
        OSError,
        RuntimeError,
        ValueError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SaesiteError(
            f"--sae {path}: not a torch state dict or safetensors file ({reason})"
        ) from None
    if not isinstance(tensors, dict) or not all(isinstance(v, Tensor) for v in tensors.values()):
        raise SaesiteError(f"--sae {path}: expected a state dict of tensors (torch.save(sd))")
    if "_W_dec" in tensors and "W_dec" not in tensors:
        tensors = {("W_dec" if k == "_W_dec" else k): v for k, v in tensors.items()}
    return tensors


def _check(path: Path, tensors: dict[str, Tensor], shapes: dict[str, tuple[int, ...]]) -> None:
    for name, shape in shapes.items():
        if name not in tensors:
            raise SaesiteError(f"--sae {path}: tensor {name!r} missing; expected shape {shape}")
        tensor = tensors[name]
        if tuple(tensor.shape) != shape:
            raise SaesiteError(
                f"--sae {path}: tensor {name!r} has shape {tuple(tensor.shape)}; expected {shape}"
            )
        if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
            raise SaesiteError(f"--sae {path}: tensor {name!r} must hold finite floats")


def normalized_decoder(W_dec: Tensor, eps: float = WEIGHT_NORMALIZE_EPS) -> Tensor:
    """ARENA's ``normalize_and_return_W_dec``: each row over d_in, W_dec / (‖W_dec[f]‖ + eps)."""
    return W_dec / (W_dec.norm(dim=-1, keepdim=True) + eps)


def _to_sae(cfg: SaeConfig, weights: dict[str, Tensor], device: str) -> SAE:
    sae = SAE(cfg)
    with torch.no_grad():
        for name, param in sae.named_parameters():
            param.copy_(weights[name].to(torch.float32))
    return sae.to(device)


def load_arena_instances(
    path: str | Path, instance: int | None = None, device: str = "cpu"
) -> list[SAE]:
    """ARENA's ``AutoEncoder`` state dict: instance ``instance``, or every instance in order.

    The SAEs carry no hook (the state dict has none): ``--hook`` names it.
    """
    path = Path(path)
    tensors = read_state_dict(path)
    W_enc = tensors.get("W_enc")
    if W_enc is None or W_enc.dim() != 3:
        shape = None if W_enc is None else tuple(W_enc.shape)
        raise SaesiteError(
            f"--sae {path}: W_enc has shape {shape}; expected ARENA's AutoEncoder layout "
            "[n_instances, d_in, d_sae] (or a gelu-1l NAME.pt with NAME_cfg.json beside it)"
        )
    n_instances, d_in, d_sae = W_enc.shape
    tied = "W_dec" not in tensors
    shapes = {
        "W_enc": (n_instances, d_in, d_sae),
        "b_enc": (n_instances, d_sae),
        "b_dec": (n_instances, d_in),
    }
    if not tied:
        shapes["W_dec"] = (n_instances, d_sae, d_in)
    _check(path, tensors, shapes)
    if instance is not None and not 0 <= instance < n_instances:
        raise SaesiteError(
            f"--instance {instance}: {path} holds {n_instances} instance(s); expected 0 to "
            f"{n_instances - 1}"
        )
    W_dec = W_enc.transpose(-1, -2) if tied else tensors["W_dec"]
    W_dec = normalized_decoder(W_dec.double()).float()
    chosen = range(n_instances) if instance is None else [instance]
    return [
        _to_sae(
            SaeConfig(
                d_in=d_in,
                d_sae=d_sae,
                apply_b_dec_to_input=True,
                extra_metadata={
                    "format": "arena-instances",
                    "instance": index,
                    "n_instances": n_instances,
                    "tied_weights": tied,
                },
            ),
            {
                "W_enc": W_enc[index],
                "W_dec": W_dec[index],
                "b_enc": tensors["b_enc"][index],
                "b_dec": tensors["b_dec"][index],
            },
            device,
        )
        for index in chosen
    ]


def load_gelu_1l(path: str | Path, device: str = "cpu") -> SAE:
    """The 1-layer SAE of ARENA's language-model section: ``NAME.pt`` + ``NAME_cfg.json``."""
    path = Path(path)
    if path.name.endswith("_cfg.json"):
        cfg_path, path = path, path.with_name(path.name.removesuffix("_cfg.json") + ".pt")
    else:
        cfg_path = gelu_1l_cfg_path(path)
    raw = _read_json(cfg_path)
    try:
        d_mlp, dict_mult = int(raw["d_mlp"]), int(raw["dict_mult"])
    except (KeyError, TypeError, ValueError):
        raise SaesiteError(
            f"{cfg_path}: expected integer d_mlp and dict_mult, got {raw.get('d_mlp')!r}, "
            f"{raw.get('dict_mult')!r}"
        ) from None
    if d_mlp <= 0 or dict_mult <= 0:
        raise SaesiteError(f"{cfg_path}: d_mlp {d_mlp} and dict_mult {dict_mult} must be positive")
    if not path.is_file():
        raise SaesiteError(f"{path}: missing; expected the state dict next to {cfg_path.name}")
    tensors = read_state_dict(path)
    d_sae = d_mlp * dict_mult
    _check(
        path,
        tensors,
        {"W_enc": (d_mlp, d_sae), "W_dec": (d_sae, d_mlp), "b_enc": (d_sae,), "b_dec": (d_mlp,)},
    )
    extra = {"format": "gelu-1l", "dict_mult": dict_mult}
    for key in ("seed", "l1_coeff"):
        if key in raw:
            extra[key] = raw[key]
    cfg = SaeConfig(
        d_in=d_mlp,
        d_sae=d_sae,
        apply_b_dec_to_input=True,
        hook_name=str(raw.get("act_name") or GELU_1L_HOOK),
        model_name=str(raw.get("model_name") or GELU_1L_MODEL),
        extra_metadata=extra,
    )
    return _to_sae(cfg, tensors, device)


def load_arena(
    path: str | Path, fmt: ArenaFormat, instance: int | None = None, device: str = "cpu"
) -> list[SAE]:
    """The SAEs of an ARENA file (several for an ``n_instances`` file without ``instance``)."""
    if fmt == "gelu-1l":
        if instance is not None:
            raise SaesiteError(
                f"--instance {instance}: {path} is a gelu-1l SAE with one instance; expected no "
                "--instance"
            )
        return [load_gelu_1l(path, device)]
    return load_arena_instances(path, instance, device)
