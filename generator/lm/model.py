"""A TransformerLens model and its tokenizer: a hub name, or a local model folder.

A local model folder holds:
    config.json         HookedTransformerConfig fields
    model.safetensors   the HookedTransformer state dict (fp16 or fp32)
    tokenizer.json      a Hugging Face `tokenizers` file
The bundled demo model is such a folder inside the package (``generator/assets/demo/model``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from saesite.errors import SaesiteError
from saesite.lm.tokens import hex_bytes, is_valid_utf8, piece_bytes

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "demo"
DEMO_MODEL = ASSETS / "model"
DEMO_SAE = ASSETS / "sae"
DEMO_TOKENS = DEMO_MODEL / "demo_tokens.npy"

# HookedTransformerConfig fields written to a model folder's config.json.
CONFIG_FIELDS = (
    "n_layers",
    "d_model",
    "n_heads",
    "d_head",
    "d_mlp",
    "n_ctx",
    "d_vocab",
    "act_fn",
    "normalization_type",
    "positional_embedding_type",
    "attn_only",
    "d_vocab_out",
    "tokenizer_prepends_bos",
    "default_prepend_bos",
    "original_architecture",
    "model_name",
)


SPECIAL_TOKEN_ATTRS = (
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "sep_token_id",
    "decoder_start_token_id",
)
"""The structural special tokens SAELens' run_evals leaves out (sae_lens.util)."""
RAW_SPECIAL_TOKENS = ("<|endoftext|>", "<bos>", "<s>", "</s>", "<eos>", "<pad>", "<|padding|>")
"""Their usual spellings, for a bare ``tokenizers`` file, which has no such attributes."""


class Tokenizer:
    """What saesite needs of a tokenizer: encode text, decode one id, know its raw bytes."""

    def __init__(self, backend: Any, *, name: str = ""):
        """``backend`` is a `tokenizers.Tokenizer` or a Hugging Face `PreTrainedTokenizer`."""
        self.backend = backend
        self.name = name
        self._hf = not hasattr(backend, "id_to_token")
        self._cache: dict[int, str] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        from tokenizers import Tokenizer as RawTokenizer

        try:
            return cls(RawTokenizer.from_file(str(path)), name=str(path))
        except Exception as err:  # tokenizers raises a bare Exception on bad files
            raise SaesiteError(f"{path}: not a valid tokenizer.json ({err})") from None

    @property
    def vocab_size(self) -> int:
        if self._hf:
            return len(self.backend)
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def bos_id(self) -> int | None:
        if self._hf:
            return self.backend.bos_token_id
        for name in ("<|endoftext|>", "<bos>", "<s>"):
            token_id = self.backend.token_to_id(name)
            if token_id is not None:
                return token_id
        return None

    def special_ids(self) -> list[int]:
        """BOS, EOS, padding (and SEP, decoder start) ids: the tokens SAELens' run_evals leaves
        out of its metrics (``sae_lens.util.get_special_token_ids``)."""
        if self._hf:
            ids = {getattr(self.backend, attr, None) for attr in SPECIAL_TOKEN_ATTRS}
        else:
            ids = {self.backend.token_to_id(name) for name in RAW_SPECIAL_TOKENS}
        return sorted(i for i in ids if isinstance(i, int))

    def encode(self, text: str) -> list[int]:
        if self._hf:
            return self.backend.encode(text, add_special_tokens=False)
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode_token(self, token_id: int) -> str:
        """The text of one id exactly as the tokenizer decodes it."""
        text = self._cache.get(token_id)
        if text is None:
            text = self.backend.decode([int(token_id)], skip_special_tokens=False)
            self._cache[token_id] = text
        return text

    def piece(self, token_id: int) -> str | None:
        if self._hf:
            return self.backend.convert_ids_to_tokens(int(token_id))
        return self.backend.id_to_token(int(token_id))

    def invalid_utf8_bytes(self, token_id: int) -> str | None:
        """Hex of the token's raw bytes when they are not valid UTF-8 on their own, else None."""
        piece = self.piece(token_id)
        raw = piece_bytes(piece) if piece is not None else None
        if raw is None or is_valid_utf8(raw):
            return None
        return hex_bytes(raw)


@dataclass
class LoadedModel:
    model: HookedTransformer
    tokenizer: Tokenizer
    name: str


def build_model(
    config: dict[str, Any],
    device: str = "cpu",
    source: str = "model config.json",
    dtype: str = "float32",
) -> HookedTransformer:
    """A HookedTransformer from config fields (read from ``source``), randomly initialised, its
    weights in ``dtype``."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    try:
        cfg = HookedTransformerConfig(**config, device=device, dtype=getattr(torch, dtype))
        return HookedTransformer(cfg).eval()
    except (TypeError, ValueError, AssertionError) as err:
        raise SaesiteError(f"{source}: {_config_problem(err, config)}") from None


def _config_problem(err: Exception, config: Mapping[str, Any]) -> str:
    """One line for a config TransformerLens refuses (its act_fn assertion lists functions)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "act_fn" in text and " must be one of " in text:
        names = sorted(set(re.findall(r"'(\w+)':", text)))
        act_fn = config.get("act_fn")
        return f"act_fn {act_fn!r} is not supported; expected one of {', '.join(names)}"
    return text[:200]


PATH_SUFFIXES = (".json", ".safetensors", ".pt", ".pth", ".bin", ".npy", ".npz")


def _looks_like_path(name: str) -> bool:
    """A path the user meant (not a hub name, which may hold dots: pythia-1.4b, Qwen2.5)."""
    return (
        name.startswith(("/", "./", "../", "~"))
        or name.endswith("/")
        or Path(name).exists()
        or name.endswith(PATH_SUFFIXES)
    )


def load_model(
    name_or_dir: str | None,
    device: str = "cpu",
    dtype: str = "float32",
    from_pretrained_kwargs: dict[str, Any] | None = None,
) -> LoadedModel:
    """The bundled demo (None), a local model folder, a Hugging Face model folder or snapshot,
    or any TransformerLens name; the forward runs in ``dtype``."""
    from saesite.lm.hub import is_hf_folder, load_hf_folder, load_hub_model

    path = DEMO_MODEL if name_or_dir is None else Path(name_or_dir)
    if path.is_dir():
        if is_hf_folder(path):
            model, name = load_hf_folder(path, device, dtype)
            return LoadedModel(model, Tokenizer(model.tokenizer, name=name), name)
        name = "demo" if name_or_dir is None else str(path)
        return _load_folder(path, device, name=name, dtype=dtype)
    if _looks_like_path(name_or_dir):
        raise SaesiteError(
            f"--model {name_or_dir}: not a model folder; expected a folder with "
            "config.json, model.safetensors and tokenizer.json, a Hugging Face model folder, "
            "or a TransformerLens model name"
        )
    model = load_hub_model(name_or_dir, device, dtype, from_pretrained_kwargs)
    return LoadedModel(model, Tokenizer(model.tokenizer, name=name_or_dir), name_or_dir)


def read_folder_config(path: Path) -> dict[str, Any]:
    """The HookedTransformerConfig fields of a saesite model folder's config.json."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SaesiteError(f"{path / 'config.json'}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise SaesiteError(f"{path / 'config.json'}: expected a JSON object of config fields")
    return config


def _load_folder(path: Path, device: str, name: str, dtype: str = "float32") -> LoadedModel:
    for filename in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (path / filename).is_file():
            raise SaesiteError(
                f"--model {path}: {filename} missing; a model folder needs "
                "config.json, model.safetensors and tokenizer.json"
            )
    config = read_folder_config(path)
    model = build_model(config, device, source=str(path / "config.json"), dtype=dtype)
    try:
        state = load_file(str(path / "model.safetensors"))
    except (SafetensorError, OSError, ValueError) as err:
        raise SaesiteError(f"{path / 'model.safetensors'}: cannot be read ({err})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state) - {k for k in expected if _is_buffer(k)})
    if missing:
        raise SaesiteError(f"{path / 'model.safetensors'}: missing tensors {missing[:3]}")
    for key, tensor in state.items():
        if key in expected and expected[key].shape != tensor.shape:
            raise SaesiteError(
                f"{path / 'model.safetensors'}: {key} has shape {tuple(tensor.shape)}; expected "
                f"{tuple(expected[key].shape)} from config.json"
            )
    state = {k: v.to(expected[k].dtype) for k, v in state.items() if k in expected}
    model.load_state_dict(state, strict=False)
    tokenizer = Tokenizer.from_file(path / "tokenizer.json")
    if tokenizer.vocab_size > model.cfg.d_vocab:
        raise SaesiteError(
            f"{path}: tokenizer has {tokenizer.vocab_size} tokens but the model's "
            f"d_vocab is {model.cfg.d_vocab}"
        )
    return LoadedModel(model.eval(), tokenizer, name)


def _is_buffer(key: str) -> bool:
    return key.endswith((".IGNORE", ".mask", ".rotary_sin", ".rotary_cos"))


def save_model(
    model: HookedTransformer,
    tokenizer_json: str | Path,
    path: str | Path,
    dtype: torch.dtype = torch.float16,
) -> None:
    """Write config.json, model.safetensors (parameters only, in ``dtype``) and tokenizer.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg.to_dict()
    config = {key: cfg[key] for key in CONFIG_FIELDS if key in cfg and cfg[key] is not None}
    (path / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    state = {name: p.detach().to("cpu", dtype).contiguous() for name, p in model.named_parameters()}
    save_file(state, str(path / "model.safetensors"))
    (path / "tokenizer.json").write_bytes(Path(tokenizer_json).read_bytes())


def hook_names(model: HookedTransformer) -> list[str]:
    return list(model.hook_dict)


def check_hook(model: HookedTransformer, hook: str) -> None:
    """Raise a SaesiteError suggesting close names when ``hook`` is not in the model."""
    problem = hook_problem(hook_names(model), hook)
    if problem is not None:
        raise SaesiteError(problem)


def hook_problem(names: list[str], hook: str) -> str | None:
    """One line when ``hook`` is not among the model's hook ``names`` (with close names)."""
    import difflib

    if hook in names:
        return None
    close = difflib.get_close_matches(hook, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"--hook {hook!r} is not a hook point of the model{hint}"


def invalid_token_bytes(tokenizer: Tokenizer, token_ids: set[int]) -> dict[str, str]:
    """``{"<id>": "e2 80"}`` for the ids whose raw bytes are not valid UTF-8 on their own."""
    out = {}
    for token_id in sorted(token_ids):
        raw = tokenizer.invalid_utf8_bytes(token_id)
        if raw is not None:
            out[str(token_id)] = raw
    return out
