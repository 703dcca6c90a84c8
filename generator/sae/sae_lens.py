"""SAELens as the loader of record: its loading, converters and defaults; saesite's fast SAE.

``from_sae_lens(sae)`` takes an SAELens SAE object (from ``SAE.load_from_disk``,
``SAE.from_pretrained`` or a user's own code) and returns saesite's SAE with the same parameters
and the same encode: SAELens has already applied its config defaulting (pre-6 configs:
``hook_point``, missing ``apply_b_dec_to_input`` = true, ``activation_fn_str: topk``, boolean
``normalize_activations``), its hub converters (Gemma Scope ``params.npz``, Llama Scope, OpenAI,
dictionary_learning, ...) and a release's ``expected_average_only_in`` scaling factor (folded into
the weights by ``from_pretrained``). What saesite cannot encode exactly is refused, never
approximated.

Names as researchers use them (``resolve_name``):
    RELEASE/SAE_ID       a release of SAELens' registry (pretrained_saes.yaml), e.g.
                         gpt2-small-res-jb/blocks.7.hook_resid_pre
    ORG/REPO/PATH        a folder of a Hugging Face repo, e.g.
                         jbloom/GPT2-Small-SAEs-Reformatted/blocks.7.hook_resid_pre
Both go through the Hugging Face cache and honour HF_HUB_OFFLINE.
"""

from __future__ import annotations

import difflib
import logging
import warnings
from pathlib import Path
from typing import Any

from saesite.errors import SaesiteError
from saesite.sae.folder import check_weights_file, config_from_fields, read_cfg_json
from saesite.sae.model import ARCHITECTURES, SAE, sae_from_tensors

log = logging.getLogger(__name__)

OFFLINE_HINT = "offline, set HF_HUB_OFFLINE=1 with the files in the Hugging Face cache"


def from_sae_lens(sae: Any) -> SAE:
    """saesite's SAE with the parameters and encoding of an SAELens SAE object."""
    fields = dict(sae.cfg.to_dict())
    metadata = dict(fields.pop("metadata", None) or {})
    source = f"SAELens {type(sae).__name__} ({metadata.get('hook_name') or 'no hook'})"
    cfg, rescale = config_from_fields(fields, metadata, source)
    tensors = {name: tensor for name, tensor in sae.state_dict().items()}
    return sae_from_tensors(cfg, tensors, source, rescale_acts_by_decoder_norm=rescale)


def _relay_warnings(caught: list[warnings.WarningMessage], spec: str) -> None:
    for warning in caught:
        first = str(warning.message).strip().splitlines()
        log.warning("SAELens on --sae %s: %s", spec, first[0] if first else "")


def load_folder_with_sae_lens(path: Path) -> SAE:
    """A local SAELens folder (any cfg.json version) through ``SAE.load_from_disk``."""
    from sae_lens import SAE as LensSAE

    raw = read_cfg_json(path)
    architecture = raw.get("architecture", "standard")
    if architecture not in ARCHITECTURES:  # SAELens would load it; saesite cannot encode it
        raise SaesiteError(
            f"{path / 'cfg.json'}: architecture {architecture!r} is not supported; expected one "
            f"of {', '.join(ARCHITECTURES)}"
        )
    check_weights_file(path, raw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            lens = LensSAE.load_from_disk(str(path), device="cpu")
        except Exception as err:  # SAELens raises KeyError/ValueError/RuntimeError/...
            raise SaesiteError(f"--sae {path}: SAELens cannot load it ({_one_line(err)})") from None
    _relay_warnings(caught, str(path))
    sae = from_sae_lens(lens)
    return _keep_written_metadata(sae, raw)


def _keep_written_metadata(sae: SAE, raw: dict[str, Any]) -> SAE:
    """Folders written by saesite before it wrote metadata.sae_lens_version: SAELens reads them as
    pre-6 configs and drops their metadata; take hook_name etc. from the file itself."""
    metadata = raw.get("metadata")
    if not isinstance(metadata, dict) or "sae_lens_version" in metadata:
        return sae
    from dataclasses import replace

    kept = {
        key: metadata[key]
        for key in ("hook_name", "model_name", "context_size")
        if metadata.get(key) and not getattr(sae.cfg, key)
    }
    if not kept:
        return sae
    fixed = SAE(replace(sae.cfg, **kept))
    fixed.load_state_dict(sae.state_dict())
    return fixed


def resolve_name(spec: str) -> tuple[str, str]:
    """(release, sae_id) for SAELens' from_pretrained: a registry release, or a hub repo."""
    from sae_lens.loading.pretrained_saes_directory import (
        get_pretrained_saes_directory,
        get_releases_for_repo_id,
    )

    directory = get_pretrained_saes_directory()
    parts = spec.strip("/").split("/")
    if parts[0] in directory:
        release, sae_id = parts[0], "/".join(parts[1:])
        ids = list(directory[release].saes_map)
        if sae_id not in ids:
            close = difflib.get_close_matches(sae_id, ids, n=3, cutoff=0.5) or ids[:3]
            raise SaesiteError(
                f"--sae {spec}: {sae_id!r} is not an SAE of SAELens release {release!r}; "
                f"expected one of its {len(ids)} ids, e.g. {', '.join(close)}"
            )
        return release, sae_id
    if len(parts) < 3:
        raise SaesiteError(
            f"--sae {spec}: not a folder, not an SAELens release/SAE_ID and not a hub "
            "ORG/REPO/PATH; expected one of them"
        )
    repo, path = "/".join(parts[:2]), "/".join(parts[2:])
    for release in get_releases_for_repo_id(repo):  # a registered repo: use its converter
        for sae_id, sae_path in directory[release].saes_map.items():
            if sae_path.strip("/") == path:
                return release, sae_id
    return repo, path


def load_name_with_sae_lens(spec: str) -> SAE:
    """An SAE named RELEASE/SAE_ID or ORG/REPO/PATH, through SAELens' from_pretrained."""
    from sae_lens import SAE as LensSAE

    release, sae_id = resolve_name(spec)
    log.info("SAE %s: SAELens release %s, id %s", spec, release, sae_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            lens = LensSAE.from_pretrained(release, sae_id, device="cpu")
        except Exception as err:  # hub errors, converter errors: one line for the user
            raise SaesiteError(
                f"--sae {spec}: SAELens cannot load {release} / {sae_id} "
                f"({_one_line(err)}); {OFFLINE_HINT}"
            ) from None
    relevant = [w for w in caught if "repo_id" not in str(w.message)]
    _relay_warnings(relevant, spec)
    return from_sae_lens(lens)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]
