"""The sparse autoencoder: encode/decode exactly as SAELens does, and its folder format.

    sae_in  = x - b_dec            (only if apply_b_dec_to_input)
    pre     = sae_in @ W_enc + b_enc
    acts    = ReLU(pre)                                    standard
            = ReLU(pre) * (pre > threshold)                jumprelu
            = scatter(topk(pre, k).indices, ReLU(values))  topk
    x_hat   = acts @ W_dec + b_dec

A folder holds ``cfg.json`` (SAELens 6 layout: ``architecture, d_in, d_sae, dtype, device,
apply_b_dec_to_input, normalize_activations, metadata: {hook_name, model_name, ...}``; the older
flat layout with ``hook_name`` at top level is read too) and ``sae_weights.safetensors``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from jaxtyping import Float
from saesite.errors import SaesiteError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

Architecture = Literal["standard", "topk", "jumprelu"]
ARCHITECTURES: tuple[str, ...] = ("standard", "topk", "jumprelu")
CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"


@dataclass(frozen=True, kw_only=True)
class SaeConfig:
    """The SAE's shape and how it encodes; mirrors SAELens' cfg.json."""

    architecture: Architecture = "standard"
    d_in: int
    d_sae: int
    k: int | None = None
    """Active latents per token (topk only)."""
    apply_b_dec_to_input: bool = False
    """Subtract b_dec from the input before encoding."""
    dtype: str = "float32"
    hook_name: str = ""
    model_name: str = ""
    context_size: int | None = None
    prepend_bos: bool = True
    extra_metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture is {self.architecture!r}; expected one of {', '.join(ARCHITECTURES)}"
            )
        if self.d_in <= 0 or self.d_sae <= 0:
            raise ValueError(f"d_in and d_sae must be positive, got {self.d_in}, {self.d_sae}")
        if self.architecture == "topk" and (self.k is None or not 0 < self.k <= self.d_sae):
            raise ValueError(f"topk SAE needs 0 < k <= d_sae ({self.d_sae}), got k={self.k}")

    def to_cfg_json(self) -> dict[str, Any]:
        """The SAELens 6 cfg.json layout."""
        metadata = {
            "hook_name": self.hook_name,
            "model_name": self.model_name,
            "context_size": self.context_size,
            "prepend_bos": self.prepend_bos,
            "hook_head_index": None,
            **self.extra_metadata,
        }
        cfg: dict[str, Any] = {
            "architecture": self.architecture,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "dtype": self.dtype,
            "device": "cpu",
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "normalize_activations": "none",
            "reshape_activations": "none",
            "metadata": metadata,
        }
        if self.architecture == "topk":
            cfg["k"] = self.k
        return cfg


class SAE(nn.Module):
    """A sparse autoencoder with SAELens parameter names and encoding."""

    def __init__(self, cfg: SaeConfig):
        super().__init__()
        self.cfg = cfg
        d_in, d_sae = cfg.d_in, cfg.d_sae
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        if cfg.architecture == "jumprelu":
            self.threshold = nn.Parameter(torch.zeros(d_sae))

    def pre_acts(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """pre = (x - b_dec·apply_b_dec_to_input) @ W_enc + b_enc."""
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return torch.addmm(self.b_enc, x.reshape(-1, x.shape[-1]), self.W_enc).reshape(
            *x.shape[:-1], -1
        )

    def activation(self, pre: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_sae"]:
        """The architecture's nonlinearity applied to pre-activations."""
        arch = self.cfg.architecture
        if arch == "standard":
            return torch.relu(pre)
        if arch == "jumprelu":
            return torch.relu(pre) * (pre > self.threshold)
        top = torch.topk(pre, self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, top.indices, torch.relu(top.values))

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """acts = activation((x - b_dec) @ W_enc + b_enc).

        Without autograd the ReLU overwrites the pre-activations (a fresh tensor here): one
        [tok, d_sae] allocation fewer per batch, which is most of the cost of a ReLU.
        """
        pre = self.pre_acts(x)
        arch = self.cfg.architecture
        if torch.is_grad_enabled() or arch == "topk":
            return self.activation(pre)
        if arch == "jumprelu":
            keep = pre > self.threshold
            return torch.relu_(pre).mul_(keep)
        return torch.relu_(pre)

    def decode(self, acts: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_in"]:
        """x_hat = acts @ W_dec + b_dec."""
        return acts @ self.W_dec + self.b_dec

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Scale each decoder row W_dec[f] to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))


def _read_cfg(path: Path) -> SaeConfig:
    cfg_path = path / CFG_FILENAME
    if not cfg_path.is_file():
        raise SaesiteError(
            f"{cfg_path}: missing; expected an SAELens folder with {CFG_FILENAME} and "
            f"{WEIGHTS_FILENAME}"
        )
    try:
        raw = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SaesiteError(f"{cfg_path}: not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise SaesiteError(f"{cfg_path}: expected a JSON object, got {type(raw).__name__}")
    missing = [key for key in ("d_in", "d_sae") if key not in raw]
    if missing:
        raise SaesiteError(
            f"{cfg_path}: missing key(s) {', '.join(missing)}; SAELens cfg.json "
            "needs architecture, d_in, d_sae"
        )
    architecture = raw.get("architecture", "standard")
    if architecture not in ARCHITECTURES:
        raise SaesiteError(
            f"{cfg_path}: architecture {architecture!r} is not supported; expected one of "
            f"{', '.join(ARCHITECTURES)}"
        )
    normalize = raw.get("normalize_activations", "none") or "none"
    if normalize != "none":
        raise SaesiteError(
            f"{cfg_path}: normalize_activations {normalize!r} is not supported; expected 'none'"
        )
    if raw.get("rescale_acts_by_decoder_norm"):
        raise SaesiteError(
            f"{cfg_path}: rescale_acts_by_decoder_norm is not supported; expected false"
        )
    metadata = raw.get("metadata") or {}
    known = {"hook_name", "model_name", "context_size", "prepend_bos", "hook_head_index"}
    get = lambda key, default=None: metadata.get(key, raw.get(key, default))  # noqa: E731
    k = raw.get("k", (raw.get("activation_fn_kwargs") or {}).get("k"))
    try:
        return SaeConfig(
            architecture=architecture,
            d_in=int(raw["d_in"]),
            d_sae=int(raw["d_sae"]),
            k=int(k) if k is not None else None,
            apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", False)),
            dtype=str(raw.get("dtype", "float32")),
            hook_name=str(get("hook_name", "") or ""),
            model_name=str(get("model_name", "") or ""),
            context_size=get("context_size"),
            prepend_bos=bool(get("prepend_bos", True)),
            extra_metadata={k_: v for k_, v in metadata.items() if k_ not in known},
        )
    except (TypeError, ValueError) as err:
        raise SaesiteError(f"{cfg_path}: {err}") from None


def load_sae(path: str | Path, device: str = "cpu") -> SAE:
    """Read an SAELens-format folder; weights are cast to float32 and checked for shape/NaN."""
    path = Path(path)
    if not path.is_dir():
        raise SaesiteError(
            f"--sae {path}: not a folder; expected an SAELens folder with "
            f"{CFG_FILENAME} and {WEIGHTS_FILENAME}"
        )
    cfg = _read_cfg(path)
    weights_path = path / WEIGHTS_FILENAME
    if not weights_path.is_file():
        raise SaesiteError(f"{weights_path}: missing; expected the SAE weights (safetensors)")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise SaesiteError(f"{weights_path}: cannot be read as safetensors ({err})") from None
    sae = SAE(cfg)
    expected = {name: tuple(p.shape) for name, p in sae.named_parameters()}
    for name, shape in expected.items():
        if name not in tensors:
            raise SaesiteError(f"{weights_path}: tensor {name!r} missing; expected shape {shape}")
        tensor = tensors[name]
        if not tensor.is_floating_point():
            raise SaesiteError(
                f"{weights_path}: tensor {name!r} has dtype {tensor.dtype}; expected a float dtype"
            )
        if tuple(tensor.shape) != shape:
            raise SaesiteError(
                f"{weights_path}: tensor {name!r} has shape {tuple(tensor.shape)}; expected "
                f"{shape} (d_in={cfg.d_in}, d_sae={cfg.d_sae} from cfg.json)"
            )
        bad = (~torch.isfinite(tensor)).sum().item()
        if bad:
            raise SaesiteError(
                f"{weights_path}: tensor {name!r} has {bad} NaN/Inf value(s); expected finite"
            )
    with torch.no_grad():
        for name, param in sae.named_parameters():
            param.copy_(tensors[name].to(torch.float32))
    return sae.to(device)


def save_sae(sae: SAE, path: str | Path, dtype: torch.dtype = torch.float32) -> None:
    """Write cfg.json and sae_weights.safetensors (readable by SAELens' SAE.load_from_disk)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    dtype_name = str(dtype).removeprefix("torch.")
    cfg = {**sae.cfg.to_cfg_json(), "dtype": dtype_name}
    (path / CFG_FILENAME).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    tensors = {name: p.detach().to("cpu", dtype).contiguous() for name, p in sae.named_parameters()}
    save_file(tensors, str(path / WEIGHTS_FILENAME))


def init_sae_(sae: SAE, generator: torch.Generator | None = None) -> SAE:
    """Kaiming-uniform decoder with unit-norm rows, encoder = decoder transpose, zero biases."""
    with torch.no_grad():
        bound = 1.0 / math.sqrt(sae.cfg.d_in)
        sae.W_dec.uniform_(-bound, bound, generator=generator)
        sae.normalize_decoder_()
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def sae_summary(sae: SAE) -> dict[str, Any]:
    """Plain description for site.json."""
    cfg = asdict(sae.cfg)
    cfg.pop("extra_metadata", None)
    return cfg
