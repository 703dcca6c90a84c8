"""The Python API: build a site from objects a notebook already holds, and show one page inline.

    import saesite
    saesite.build(model, sae, tokens, out="site")       # HookedTransformer, SAE, [n_seq, seq_len]
    saesite.show_feature("site", 12)                     # the page of feature 12, inline in Jupyter

``build`` runs the same four stages as ``saesite build`` (``pipeline.load_objects -> compute ->
write_records -> render``), so for the same model weights, SAE, tokens and options it writes the
same site, byte for byte, as the command line does from those objects saved to disk (only
site.json's ``config`` records where they came from).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saesite.config import BuildConfig, RenderConfig, StatsConfig, WeightStatsConfig
from saesite.errors import SaesiteError

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


def build(
    model: HookedTransformer,
    sae: Any,
    tokens: Any,
    out: str | Path = "site",
    *,
    hook: str | None = None,
    tokenizer: Any = None,
    model_name: str | None = None,
    stats: StatsConfig | None = None,
    weights: WeightStatsConfig | None = None,
    labels: str | None = None,
    title: str | None = None,
    workers: int | None = None,
    replace_folder: str | None = None,
) -> Path:
    """Build a site from in-memory objects; returns its folder.

    ``sae``: a saesite SAE or a ``sae_lens`` SAE object, or a list (or ``{name: sae}`` dict)
    of them for one site of several SAEs (``saesite/multi.py``: one pass of the model);
    ``tokens``: a torch tensor or numpy array ``[n_seq, seq_len]`` of token ids;
    ``tokenizer``: defaults to ``model.tokenizer``
    (a Hugging Face tokenizer, a ``tokenizers.Tokenizer`` or ``saesite.lm.model.Tokenizer``);
    ``hook``: defaults to the SAE's ``hook_name``; ``model_name``: what the site calls the
    model (default ``model.cfg.model_name``). The other options are those of ``saesite build``.
    """
    from saesite.pipeline import compute, load_objects, preflight_out, render, write_records

    render_cfg = RenderConfig(
        out=str(out), replace_folder=replace_folder, labels=labels, title=title, workers=workers
    )
    stats = stats or StatsConfig()
    weights = weights or WeightStatsConfig()
    if isinstance(sae, list | tuple | dict):  # several SAEs, one site (saesite/multi.py)
        from saesite.multi import build_objects

        config = BuildConfig(
            model=model_name or model.cfg.model_name,
            hook=hook,
            stats=stats,
            weights=weights,
            render=render_cfg,
        )
        return build_objects(model, sae, tokens, config, tokenizer=tokenizer, model_name=model_name)
    loaded = load_objects(model, sae, tokens, hook=hook, tokenizer=tokenizer, model_name=model_name)
    config = BuildConfig(
        model=loaded.model_name, hook=loaded.hook, stats=stats, weights=weights, render=render_cfg
    )
    preflight_out(config)
    records = write_records(compute(loaded, stats, weights), loaded, config)
    return render(records, render_cfg)


@dataclass(frozen=True)
class FeaturePage:
    """One feature page of a built site; Jupyter shows it inline (``_repr_html_``)."""

    site_dir: Path
    path: Path
    """The page's HTML file."""
    height: int = 640
    """Height of the inline frame, in CSS pixels."""

    def _repr_html_(self) -> str:
        """An iframe whose ``srcdoc`` is the page with the site's stylesheet inlined.

        Notebooks cannot frame ``file://`` pages, and inside ``srcdoc`` the page's relative
        links and its Content-Security-Policy ('self') would block the stylesheet, so the
        preview drops the policy and the scripts (pages read the same without them) and
        inlines ``static/site.css``.
        """
        page = self.path.read_text(encoding="utf-8")
        page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
        page = re.sub(r'<script src="[^"]*"></script>', "", page)
        css = (self.site_dir / "static" / "site.css").read_text(encoding="utf-8")
        page = re.sub(
            r'<link rel="stylesheet" href="[^"]*site\.css">',
            lambda _: f"<style>{css}</style>",
            page,
        )
        return (
            f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;'
            f'height:{self.height}px;border:1px solid #ccc"></iframe>'
        )


def show_feature(site_dir: str | Path, feature_idx: int) -> FeaturePage:
    """The page of feature ``feature_idx`` in a built site, displayable in Jupyter."""
    import orjson

    site_dir = Path(site_dir)
    try:
        site = orjson.loads((site_dir / "site.json").read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise SaesiteError(f"{site_dir}: not a built site ({err})") from None
    for entry in site.get("features") or []:
        if int(entry["index"]) == feature_idx:
            return FeaturePage(site_dir, site_dir / entry["html"])
    raise SaesiteError(
        f"feature {feature_idx} is not in {site_dir}; expected 0..{len(site['features']) - 1}"
    )
