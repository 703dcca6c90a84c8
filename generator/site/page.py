"""One page rendered: the Jinja environment and the context every page shares. No torch here.

The Content-Security-Policy forbids any request but same-origin scripts, styles and images (on
``file://`` Chromium treats other local files as 'self', which is what lets the classic scripts
load there); pages have no inline script or style.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import jinja2
from markupsafe import Markup

import saesite

PROJECT_DIR = Path(saesite.__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_DIR / "templates"
STATIC_DIR = PROJECT_DIR / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'"
)


_INCLUDE = re.compile(r'^\{% include "([^"]+)" %\}\n?', re.MULTILINE)
"""A whole-line ``{% include %}`` tag and the newline that ``trim_blocks`` removes after it."""


class InliningLoader(jinja2.FileSystemLoader):
    """Templates with every whole-line ``{% include "…" %}`` replaced by the partial's source,
    so the partials cost nothing at render time: an include makes a new context (a copy of
    every name) on each page, and a feature page has eleven, rendered for every feature.

    The output is the same as Jinja's include while partials keep to what they do now: no
    ``{% set %}``, ``{% block %}``, ``{% macro %}`` or ``{% extends %}`` (an inlined ``set``
    would reach the including template). Other include forms stay Jinja's includes."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)

        def partial(match: re.Match) -> str:
            return self.get_source(environment, match.group(1))[0]

        return _INCLUDE.sub(partial, source), filename, uptodate


def make_environment() -> jinja2.Environment:
    """Jinja with autoescape on and undefined names as errors."""
    return jinja2.Environment(
        loader=InliningLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates do not change during a build: no stat per include
    )


@functools.cache
def shared_environment() -> jinja2.Environment:
    """One environment per process, for the feature-page jobs: a forked worker inherits the
    parent's compiled templates, a Ray worker compiles them once for all its tasks."""
    return make_environment()


def root_of(rel_path: str) -> str:
    """Relative prefix from a page to the site root: ``""`` or ``"../../"``."""
    return "../" * rel_path.count("/")


def page_url(base_url: str | None, rel_path: str) -> str:
    """A page's hosted address (the site root for ``index.html``), or "" without a base URL."""
    if not base_url:
        return ""
    return base_url if rel_path == "index.html" else base_url + rel_path


def render_page(
    env: jinja2.Environment,
    template: str,
    rel_path: str,
    context: dict,
    *,
    title: str,
    nav: Sequence[tuple[str, str]],
    base_url: str | None = None,
) -> str:
    """Render one page; the common context (site title, ``root``, nav, CSP, ``url``: its hosted
    address or "") wins over ``context``, so every page links correctly from its own depth."""
    common = {
        "url": page_url(base_url, rel_path),
        "site_title": title,
        "root": root_of(rel_path),
        # (href, text, current) rows: a template unpacks a tuple without a lookup per field
        "nav": [(href, text, href == rel_path) for href, text in nav],
        "csp": Markup(CSP),  # a constant with quotes, no data
        "version": saesite.__version__,
        # a multi-SAE site (site/multi_site.py): the SAE's folder and the switcher's entries
        "sae_prefix": context.get("sae_prefix", ""),
        "saes": context.get("saes", []),
        # the go-to box opens a feature of one SAE: none on a multi-SAE site's shared pages
        "goto": not context.get("saes") or bool(context.get("sae_prefix")),
    }
    return env.get_template(template).render({**context, **common})
