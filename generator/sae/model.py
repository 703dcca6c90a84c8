"""The sparse autoencoder: encode/decode exactly as SAELens does, and its folder format.

    x'      = normalize(x)         layer_norm: (x - mean) / (std + 1e-5);
                                   constant_norm_rescale: x * sqrt(d_in) / |x|; none: x
    sae_in  = x' - b_dec           (only if apply_b_dec_to_input)
    pre     = sae_in @ W_enc + b_enc
    acts    = ReLU(pre)                                    standard
            = ReLU(pre) * (pre > threshold)                jumprelu
            = scatter(topk(pre, k).indices, ReLU(values))  topk
    x_hat   = denormalize(acts @ W_dec + b_dec)     (layer_norm: · std + mean; rescale: / coeff)

A folder holds ``cfg.json`` (SAELens 6 layout: ``architecture, d_in, d_sae, dtype, device,
apply_b_dec_to_input, normalize_activations, metadata: {hook_name, model_name, ...}``; the older
flat layout and every other format are read through SAELens, ``saesite.sae.sae_lens``) and
``sae_weights.safetensors``. Without SAELens installed, only SAELens-6 folders are read here.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from jaxtyping import Float
from safetensors.torch import save_file
from torch import Tensor, nn

from saesite.errors import SaesiteError

log = logging.getLogger(__name__)

Architecture = Literal["standard", "topk", "jumprelu"]
ARCHITECTURES: tuple[str, ...] = ("standard", "topk", "jumprelu")
Normalization = Literal["none", "layer_norm", "constant_norm_rescale"]
NORMALIZATIONS: tuple[str, ...] = ("none", "layer_norm", "constant_norm_rescale")
IDENTITY_AT_INFERENCE = ("expected_average_only_in", "covariance_whitening")
"""normalize_activations values SAELens' SAE.encode applies nothing for (a release's scaling
factor is folded into the weights by SAE.from_pretrained; whitening is folded after training)."""
CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
TRAINING_LOG = "training_log.json"
"""Beside cfg.json when saesite trained the SAE (``saesite train-sae``): shown on the site."""
SAE_LENS_FORMAT = "6.0.0"
"""metadata.sae_lens_version written when SAELens is not installed: the cfg.json layout's version
(SAELens reads a cfg.json without it as a pre-6 config and loses metadata.hook_name)."""
INSTALL_HINT = "pip install saesite[saelens]"


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
    normalize_activations: Normalization = "none"
    """Per-token input normalisation, undone on the reconstruction (SAELens' names)."""
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
        if self.normalize_activations not in NORMALIZATIONS:
            raise ValueError(
                f"normalize_activations is {self.normalize_activations!r}; expected one of "
                f"{', '.join(NORMALIZATIONS)}"
            )

    def to_cfg_json(self) -> dict[str, Any]:
        """The SAELens 6 cfg.json layout."""
        metadata = {
            **self.extra_metadata,
            "hook_name": self.hook_name,
            "model_name": self.model_name,
            "context_size": self.context_size,
            "prepend_bos": self.prepend_bos,
            "hook_head_index": None,
            "sae_lens_version": _sae_lens_version(),
        }
        cfg: dict[str, Any] = {
            "architecture": self.architecture,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "dtype": self.dtype,
            "device": "cpu",
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "normalize_activations": self.normalize_activations,
            "reshape_activations": "hook_z" if self.hook_name.endswith("hook_z") else "none",
            "metadata": metadata,
        }
        if self.architecture == "topk":
            cfg["k"] = self.k
        return cfg


def _sae_lens_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("sae-lens")
    except PackageNotFoundError:
        return SAE_LENS_FORMAT


class InputNorm(NamedTuple):
    """Per-token statistics of a normalised input, to undo the normalisation on x_hat."""

    shift: Tensor | None
    """[..., 1] mean added back (layer_norm), or None."""
    factor: Tensor
    """[..., 1] x_hat is multiplied by this (layer_norm: std; rescale: 1 / coeff)."""

    def undo(self, x_hat: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        x_hat = x_hat * self.factor
        return x_hat + self.shift if self.shift is not None else x_hat


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

    def normalize(self, x: Float[Tensor, "... d_in"]) -> tuple[Tensor, InputNorm | None]:
        """The input as the encoder sees it, and what undoes it (None: no normalisation).

        The same operations in the same order as SAELens' run_time_activation_norm_fn_in."""
        mode = self.cfg.normalize_activations
        if mode == "layer_norm":
            mean = x.mean(dim=-1, keepdim=True)
            x = x - mean
            std = x.std(dim=-1, keepdim=True)
            return x / (std + 1e-5), InputNorm(shift=mean, factor=std)
        if mode == "constant_norm_rescale":
            coeff = (self.cfg.d_in**0.5) / x.norm(dim=-1, keepdim=True)
            return x * coeff, InputNorm(shift=None, factor=1 / coeff)
        return x, None

    def pre_acts(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """pre = (x' - b_dec·apply_b_dec_to_input) @ W_enc + b_enc for an already normalised x'."""
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
        """acts = activation((normalize(x) - b_dec) @ W_enc + b_enc), as SAELens' SAE.encode."""
        return self.encode_normalized(self.normalize(x)[0])

    def encode_normalized(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """acts for an input already normalised by ``normalize``.

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

    def decode(
        self, acts: Float[Tensor, "... d_sae"], norm: InputNorm | None = None
    ) -> Float[Tensor, "... d_in"]:
        """x_hat = acts @ W_dec + b_dec, de-normalised with ``norm`` (from ``normalize``)."""
        x_hat = acts @ self.W_dec + self.b_dec
        return norm.undo(x_hat) if norm is not None else x_hat

    def forward(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_in"]:
        """The reconstruction of x in x's own space (SAELens' SAE.forward)."""
        x_in, norm = self.normalize(x)
        return self.decode(self.encode_normalized(x_in), norm)

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Scale each decoder row W_dec[f] to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))


def sae_from_tensors(
    cfg: SaeConfig,
    tensors: dict[str, Tensor],
    source: str,
    *,
    rescale_acts_by_decoder_norm: bool = False,
) -> SAE:
    """An SAE from its config and state dict, every tensor checked (name, dtype, shape, finite)
    and cast to float32. ``source`` names where the tensors came from in errors.

    A top-k SAE with ``rescale_acts_by_decoder_norm`` (pre-activations times ‖W_dec[f]‖, decoded
    through W_dec[f] / ‖W_dec[f]‖) is folded into plain weights: W_enc·n, b_enc·n, W_dec / n give
    the same activations and reconstruction (SAELens' fold_W_dec_norm)."""
    sae = SAE(cfg)
    expected = {name: tuple(p.shape) for name, p in sae.named_parameters()}
    unused = sorted(set(tensors) - set(expected))
    if unused:
        raise SaesiteError(
            f"{source}: tensor(s) {', '.join(unused)} not used by a {cfg.architecture} SAE; "
            f"expected only {', '.join(expected)}"
        )
    for name, shape in expected.items():
        if name not in tensors:
            raise SaesiteError(f"{source}: tensor {name!r} missing; expected shape {shape}")
        tensor = tensors[name]
        if not tensor.is_floating_point():
            raise SaesiteError(
                f"{source}: tensor {name!r} has dtype {tensor.dtype}; expected a float dtype"
            )
        if tuple(tensor.shape) != shape:
            raise SaesiteError(
                f"{source}: tensor {name!r} has shape {tuple(tensor.shape)}; expected "
                f"{shape} (d_in={cfg.d_in}, d_sae={cfg.d_sae} from the config)"
            )
        bad = (~torch.isfinite(tensor)).sum().item()
        if bad:
            raise SaesiteError(
                f"{source}: tensor {name!r} has {bad} NaN/Inf value(s); expected finite"
            )
    with torch.no_grad():
        for name, param in sae.named_parameters():
            param.copy_(tensors[name].detach().to("cpu", torch.float32))
        if rescale_acts_by_decoder_norm:
            norms = sae.W_dec.norm(dim=-1)
            sae.W_enc.mul_(norms)
            sae.b_enc.mul_(norms)
            sae.W_dec.div_(norms[:, None])
    return sae


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
