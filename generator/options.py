"""Command-line options generated from config dataclasses: one source for names, defaults, help.

Each field of a frozen config dataclass is one option of the commands that take that config:

    name          ``--`` + the field name with ``-`` for ``_`` (``context_before`` ->
                  ``--context-before``), or ``option(flag=...)``; a nested config's fields get
                  its ``option(prefix=...)`` (``ToyConfig.double_descent.steps`` -> ``--dd-steps``)
    default       the field's default (a field without one is a required option)
    help          the field's docstring (the string literal under it), read from the source
    type          from the annotation: ``int``, ``float``, ``str``, ``X | None``, ``Literal[...]``
                  (its values are the choices), ``tuple[int, ...]`` (comma-separated), or
                  ``option(parse=...)``
    bool          default False: ``--name`` sets it; default True: ``--no-name`` clears it;
                  ``bool | None``: ``option(flag="--no-x", const=False)`` sets the constant

``option()`` is the only thing config.py needs from here; ``add_options`` and ``from_args`` are
the command line's. A command that takes a config but not all of its fields names the ones it
takes (``only=``); the tests check that every field is some command's option and that no option
lacks a field.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from typing import Any, Literal


def option(default: Any = dataclasses.MISSING, **meta: Any) -> Any:
    """A dataclass field with command-line metadata: ``flag``, ``aliases``, ``prefix`` (nested
    configs), ``parse`` (text -> value), ``const`` (set by a flag that takes no value or an
    optional one), ``metavar``, ``positional``, ``repeat`` (the option may be given several
    times: the parsed value is their list, which the command turns into configs). For a
    mutable default pass ``default_factory``."""
    factory = meta.pop("default_factory", dataclasses.MISSING)
    return dataclasses.field(default=default, default_factory=factory, metadata=meta)


def count_or_all(text: str) -> int | None:
    """A count, or ``all`` (None)."""
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count; expected N or 'all'") from None


def instance_or_all(text: str) -> int | str:
    """An instance number, or ``all``."""
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}; expected an instance number (0-based) or 'all'"
        ) from None


def int_tuple(text: str) -> tuple[int, ...]:
    """``3,5,8`` -> (3, 5, 8); an empty string -> ()."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated whole numbers, e.g. 3,10,100"
        ) from None


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string literal right under it), whitespace collapsed; the
    class's bases first."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__[1:]):
        if dataclasses.is_dataclass(base):
            docs.update(field_docs(base))
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    for node, after in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def flag_of(field: dataclasses.Field, prefix: str = "") -> str:
    """The option string of a field: ``option(flag=...)`` or ``--`` + prefix + its name."""
    if "flag" in field.metadata:
        return field.metadata["flag"]
    return f"--{prefix}{field.name.replace('_', '-')}"


def dest_of(field: dataclasses.Field, prefix: str = "") -> str:
    """The argparse destination of a field (its option string, as an identifier)."""
    if field.metadata.get("positional"):
        return field.name
    return flag_of(field, prefix).lstrip("-").replace("-", "_")


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _fields(cls: type, only: tuple[str, ...] | None) -> list[tuple[dataclasses.Field, type]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if only is None or f.name in only]


def _value_type(hint: Any) -> Any:
    """``X | None`` -> X."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return hint


def _argument(field: dataclasses.Field, hint: Any, prefix: str, doc: str) -> tuple[list, dict]:
    meta = field.metadata
    default = _default(field)
    kind = _value_type(hint)
    kwargs: dict[str, Any] = {"help": doc.replace("%", "%%")}
    if default is dataclasses.MISSING:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
        if default not in (None, False, True, ()) and not meta.get("positional"):
            kwargs["help"] += f" (default: {default})"
    if kind is bool and "const" not in meta:
        kwargs["action"] = "store_false" if default is True else "store_true"
        if default is True:
            flag = meta.get("flag", f"--{prefix}no-{field.name.replace('_', '-')}")
            return [flag, *meta.get("aliases", ())], {**kwargs, "dest": dest_of(field, prefix)}
    elif "const" in meta:
        if kind is bool:
            kwargs["action"] = "store_const"
        else:
            kwargs["nargs"] = "?"
        kwargs["const"] = meta["const"]
    elif "parse" in meta:
        kwargs["type"] = meta["parse"]
    elif typing.get_origin(kind) is Literal:
        kwargs["choices"] = list(typing.get_args(kind))
    elif typing.get_origin(kind) is tuple:
        if meta.get("positional"):
            kwargs["nargs"] = "+"
        else:
            kwargs["type"] = int_tuple
    elif kind in (int, float):
        kwargs["type"] = kind
        kwargs["metavar"] = "N" if kind is int else "X"
    if "metavar" in meta:
        kwargs["metavar"] = meta["metavar"]
    if meta.get("repeat"):
        kwargs["action"] = "append"
    if meta.get("positional"):
        kwargs.pop("required", None)
        if default is not dataclasses.MISSING and "nargs" not in kwargs:
            kwargs["nargs"] = "?"
        return [field.name], kwargs
    kwargs["dest"] = dest_of(field, prefix)
    return [flag_of(field, prefix), *meta.get("aliases", ())], kwargs


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    only: tuple[str, ...] | None = None,
    prefix: str = "",
) -> None:
    """Add one option per field of the config class ``cls`` (recursing into nested configs)."""
    docs = field_docs(cls)
    for field, hint in _fields(cls, only):
        if dataclasses.is_dataclass(hint):
            add_options(parser, hint, prefix=prefix + field.metadata.get("prefix", ""))
            continue
        names, kwargs = _argument(field, hint, prefix, docs.get(field.name, ""))
        parser.add_argument(*names, **kwargs)


def from_args(
    cls: type,
    args: argparse.Namespace,
    *,
    only: tuple[str, ...] | None = None,
    prefix: str = "",
    **given: Any,
) -> Any:
    """The config ``cls`` from parsed options (``given`` overrides or adds fields)."""
    values: dict[str, Any] = {}
    for field, hint in _fields(cls, only):
        if dataclasses.is_dataclass(hint):
            values[field.name] = from_args(
                hint, args, prefix=prefix + field.metadata.get("prefix", "")
            )
        else:
            values[field.name] = getattr(args, dest_of(field, prefix))
    return cls(**{**values, **given})
