"""saesite: static, offline, searchable feature-visualiser sites for sparse autoencoders.

The Python API (README "Python API")::

    import saesite
    saesite.build(model, sae, tokens, out="site")     # a HookedTransformer, an SAE, token ids
    saesite.show_feature("site", 12)                   # one page, inline in Jupyter

and the stages ``saesite build`` runs: ``load`` (or ``load_objects``) -> ``compute`` ->
``write_records`` -> ``render``. They are imported on first use, so ``import saesite`` (and the
torch-free ``saesite.site``) does not import torch.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "build": "saesite.api",
    "show_feature": "saesite.api",
    "load": "saesite.pipeline",
    "load_objects": "saesite.pipeline",
    "compute": "saesite.pipeline",
    "write_records": "saesite.pipeline",
    "render": "saesite.pipeline",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'saesite' has no attribute {name!r}")
