"""``--sae``: a folder, an SAELens release name or a hub path -> saesite's SAE.

Where SAELens is installed it reads everything (``saesite.sae.sae_lens``), so its defaults and
converters are the ones that apply. Without it, SAELens-6 folders are read natively
(``saesite.sae.folder``) and anything else is refused with the extra to install.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from saesite.errors import SaesiteError
from saesite.sae.model import CFG_FILENAME, INSTALL_HINT, SAE, WEIGHTS_FILENAME


def sae_lens_installed() -> bool:
    return importlib.util.find_spec("sae_lens") is not None


def load_sae(spec: str | Path, device: str = "cpu", *, use_sae_lens: bool | None = None) -> SAE:
    """The SAE named by ``spec``, in float32 on ``device``.

    ``use_sae_lens``: None reads through SAELens when it is installed; False reads SAELens-6
    folders natively (what a machine without SAELens does)."""
    if use_sae_lens is None:
        use_sae_lens = sae_lens_installed()
    path = Path(spec)
    if path.is_dir():
        if use_sae_lens:
            from saesite.sae.sae_lens import load_folder_with_sae_lens

            return load_folder_with_sae_lens(path).to(device)
        from saesite.sae.folder import load_folder

        return load_folder(path).to(device)
    text = str(spec)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") == 0:
        raise SaesiteError(
            f"--sae {spec}: not a folder; expected an SAELens folder with {CFG_FILENAME} and "
            f"{WEIGHTS_FILENAME}, an SAELens RELEASE/SAE_ID or a hub ORG/REPO/PATH"
        )
    if not use_sae_lens:
        raise SaesiteError(
            f"--sae {spec}: not a folder; SAELens release names and hub paths are read "
            f"through SAELens: {INSTALL_HINT}"
        )
    from saesite.sae.sae_lens import load_name_with_sae_lens

    return load_name_with_sae_lens(text).to(device)
