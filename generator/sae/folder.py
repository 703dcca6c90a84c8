"""SAELens-6 folders read without SAELens: ``cfg.json`` + ``sae_weights.safetensors``.

Used only where SAELens is not installed (``saesite.sae.load``). Anything that is not an
SAELens-6 folder (pre-6 configs, hub converters such as Gemma Scope's ``params.npz``) needs
SAELens' own loading; this reader refuses it with one line naming the extra to install.

Every cfg.json key is either understood or named in a logging warning; a key's absence takes
SAELens 6's own default (``apply_b_dec_to_input`` true, ``normalize_activations`` "none").
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from saesite.errors import SaesiteError
from saesite.sae.model import (
    ARCHITECTURES,
    CFG_FILENAME,
    IDENTITY_AT_INFERENCE,
    INSTALL_HINT,
    NORMALIZATIONS,
    SAE,
    WEIGHTS_FILENAME,
    SaeConfig,
    sae_from_tensors,
)

log = logging.getLogger(__name__)

TOP_LEVEL_KEYS = {
    "architecture",
    "d_in",
    "d_sae",
    "dtype",
    "device",
    "apply_b_dec_to_input",
    "normalize_activations",
    "reshape_activations",
    "metadata",
    "k",
    "rescale_acts_by_decoder_norm",
}
METADATA_KEYS = ("hook_name", "model_name", "context_size", "prepend_bos", "hook_head_index")


def read_cfg_json(path: Path) -> dict[str, Any]:
    """The folder's cfg.json as a dict, or one clear error."""
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
    metadata = raw.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise SaesiteError(
            f"{cfg_path}: metadata is a {type(metadata).__name__}; expected an object "
            '{"hook_name": ..., "model_name": ...}'
        )
    return raw


def config_from_fields(
    fields: dict[str, Any], metadata: dict[str, Any], source: str
) -> tuple[SaeConfig, bool]:
    """SaeConfig from SAELens-6 config fields (cfg.json, or an SAELens SAE's ``cfg.to_dict()``).

    Returns the config and whether the decoder norm rescaling must be folded in. Raises for what
    saesite cannot encode exactly; warns for keys it does not know."""
    unknown = sorted(set(fields) - TOP_LEVEL_KEYS)
    if unknown:
        log.warning(
            "%s: config key(s) %s not understood by saesite; ignored", source, ", ".join(unknown)
        )
    missing = [key for key in ("d_in", "d_sae") if key not in fields]
    if missing:
        raise SaesiteError(
            f"{source}: missing key(s) {', '.join(missing)}; SAELens cfg.json "
            "needs architecture, d_in, d_sae"
        )
    architecture = fields.get("architecture", "standard")
    if architecture not in ARCHITECTURES:
        raise SaesiteError(
            f"{source}: architecture {architecture!r} is not supported; expected one of "
            f"{', '.join(ARCHITECTURES)}"
        )
    normalize = fields.get("normalize_activations", "none")
    if normalize is None or normalize is False:
        normalize = "none"
    if normalize in IDENTITY_AT_INFERENCE:
        log.warning(
            "%s: normalize_activations %r: SAELens' SAE.encode applies no scaling for it (a "
            "release's scaling factor is folded in only by SAE.from_pretrained); saesite does "
            "the same",
            source,
            normalize,
        )
        normalize = "none"
    if normalize not in NORMALIZATIONS:
        raise SaesiteError(
            f"{source}: normalize_activations {normalize!r} is not supported; expected one of "
            f"{', '.join(NORMALIZATIONS + IDENTITY_AT_INFERENCE)}"
        )
    reshape = fields.get("reshape_activations", "none") or "none"
    if reshape not in ("none", "hook_z"):
        raise SaesiteError(
            f"{source}: reshape_activations {reshape!r} is not supported; expected none or hook_z"
        )
    if metadata.get("hook_head_index") is not None:
        raise SaesiteError(
            f"{source}: hook_head_index {metadata['hook_head_index']} (an SAE on one attention "
            "head) is not supported; expected null"
        )
    rescale = bool(fields.get("rescale_acts_by_decoder_norm", False))
    if rescale and architecture != "topk":
        raise SaesiteError(
            f"{source}: rescale_acts_by_decoder_norm is only supported for topk SAEs"
        )
    k = fields.get("k")
    try:
        cfg = SaeConfig(
            architecture=architecture,
            d_in=int(fields["d_in"]),
            d_sae=int(fields["d_sae"]),
            k=int(k) if k is not None and architecture == "topk" else None,
            apply_b_dec_to_input=bool(fields.get("apply_b_dec_to_input", True)),
            normalize_activations=normalize,
            dtype=str(fields.get("dtype", "float32")),
            hook_name=str(metadata.get("hook_name") or ""),
            model_name=str(metadata.get("model_name") or ""),
            context_size=metadata.get("context_size"),
            prepend_bos=bool(metadata.get("prepend_bos", True)),
            extra_metadata={
                key: value
                for key, value in metadata.items()
                if key not in METADATA_KEYS and key != "sae_lens_version"
            },
        )
    except (TypeError, ValueError) as err:
        raise SaesiteError(f"{source}: {err}") from None
    return cfg, rescale


def check_weights_file(path: Path, raw: dict[str, Any]) -> None:
    """Cheap checks of sae_weights.safetensors from its header: readable, float tensors, and the
    shapes cfg.json's d_in / d_sae imply (before SAELens, which would cast or fail obscurely)."""
    weights_path = path / WEIGHTS_FILENAME
    if not weights_path.is_file():
        raise SaesiteError(f"{weights_path}: missing; expected the SAE weights (safetensors)")
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            headers = {name: handle.get_slice(name) for name in handle.keys()}  # noqa: SIM118
            shapes = {name: tuple(part.get_shape()) for name, part in headers.items()}
            dtypes = {name: part.get_dtype() for name, part in headers.items()}
    except (SafetensorError, OSError, ValueError) as err:
        raise SaesiteError(f"{weights_path}: cannot be read as safetensors ({err})") from None
    for name, dtype in dtypes.items():
        if not dtype.startswith(("F", "BF")):
            raise SaesiteError(
                f"{weights_path}: tensor {name!r} has dtype {dtype}; expected a float dtype"
            )
    d_in, d_sae = _whole(raw.get("d_in")), _whole(raw.get("d_sae"))
    if d_in is None or d_sae is None:
        return
    expected = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,)}
    for name, shape in expected.items():
        if name in shapes and shapes[name] != shape:
            raise SaesiteError(
                f"{weights_path}: tensor {name!r} has shape {shapes[name]}; expected {shape} "
                f"(d_in={d_in}, d_sae={d_sae} from cfg.json)"
            )


def _whole(value: object) -> int | None:
    """An integer given as such or as a whole float (``1e12`` in JSON), else None."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def load_folder(path: Path) -> SAE:
    """Read an SAELens-6 folder natively; weights are cast to float32 and checked."""
    raw = read_cfg_json(path)
    cfg_path = path / CFG_FILENAME
    metadata = raw.get("metadata")
    if not isinstance(metadata, dict):
        raise SaesiteError(
            f"{cfg_path}: not an SAELens-6 config (no metadata object); older SAELens configs "
            f"and other formats are read through SAELens: {INSTALL_HINT}"
        )
    if "sae_lens_version" not in metadata:
        log.warning("%s: no metadata.sae_lens_version; read as an SAELens-6 config", cfg_path)
    cfg, rescale = config_from_fields(raw, metadata, str(cfg_path))
    check_weights_file(path, raw)
    weights_path = path / WEIGHTS_FILENAME
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise SaesiteError(f"{weights_path}: cannot be read as safetensors ({err})") from None
    return sae_from_tensors(cfg, tensors, str(weights_path), rescale_acts_by_decoder_norm=rescale)
