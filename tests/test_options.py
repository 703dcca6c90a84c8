"""Command-line options come from the config dataclasses: one source for names, defaults, help.

A field added to a config without an option, an option without a field, a field without a
docstring or a command-line default that differs from the config's all fail here.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest

from saesite import cli, config
from saesite.options import add_options, dest_of, field_docs, from_args, option


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _leaf_fields(cls: type, prefix: str = ""):
    """(owner class, field, prefix) for every non-config field, nested configs flattened."""
    for field in dataclasses.fields(cls):
        hint = inspect.get_annotations(cls, eval_str=True)[field.name]
        if dataclasses.is_dataclass(hint):
            yield from _leaf_fields(hint, prefix + field.metadata.get("prefix", ""))
        else:
            yield cls, field, prefix


def _option_fields():
    """(command, owner, field, prefix) for every field a command takes."""
    for name, (_, _, groups) in cli.COMMANDS.items():
        for cls, only in groups:
            for owner, field, prefix in _leaf_fields(cls):
                if only is None or field.name in only:
                    yield name, owner, field, prefix


def _config_classes() -> list[type]:
    found = [c for _, c in inspect.getmembers(config, inspect.isclass)]
    found += [c for _, c in inspect.getmembers(cli, inspect.isclass)]
    return [c for c in found if dataclasses.is_dataclass(c)]


def test_every_config_field_is_an_option_of_some_command():
    taken = {(owner, field.name) for _, owner, field, _ in _option_fields()}
    taken |= {(cli.CommandOptions, f.name) for f in dataclasses.fields(cli.CommandOptions)}
    nested = {
        (cls, f.name)
        for cls in _config_classes()
        for f in dataclasses.fields(cls)
        if dataclasses.is_dataclass(inspect.get_annotations(cls, eval_str=True)[f.name])
    }
    missing = [
        f"{cls.__name__}.{f.name}"
        for cls in _config_classes()
        for f in dataclasses.fields(cls)
        if (cls, f.name) not in taken | nested
    ]
    assert not missing, f"config fields no command takes: {missing}"


def test_every_option_has_its_fields_default_and_docstring_as_help():
    commands = _subparsers(cli.parser())
    for command, owner, field, prefix in _option_fields():
        actions = {a.dest: a for a in commands[command]._actions}
        action = actions[dest_of(field, prefix)]
        doc = field_docs(owner).get(field.name)
        assert doc, f"{owner.__name__}.{field.name} has no docstring"
        assert action.help.replace("%%", "%").startswith(doc), (command, field.name)
        if field.default is not dataclasses.MISSING:
            assert action.default == field.default, (command, field.name)
        elif field.default_factory is dataclasses.MISSING:
            assert action.required or not action.option_strings, (command, field.name)


def test_no_option_exists_without_a_config_field():
    parser = cli.parser()
    top_fields = {f.name for f in dataclasses.fields(cli.CommandOptions)}
    top = {a.dest for a in parser._actions if not isinstance(a, argparse._SubParsersAction)}
    assert top - {"help"} == top_fields
    for command, sub in _subparsers(parser).items():
        dests = {dest_of(f, p) for c, _, f, p in _option_fields() if c == command}
        stray = {a.dest for a in sub._actions} - dests - {"help"}
        assert not stray, f"{command}: options without a config field: {stray}"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["build"], lambda args: cli.from_args(config.BuildConfig, args) == config.BuildConfig()),
        (["toy"], lambda args: cli.from_args(config.ToyConfig, args) == config.ToyConfig()),
        (
            ["train-sae", "--out", "x"],
            lambda args: (
                cli.from_args(config.TrainSaeConfig, args) == config.TrainSaeConfig(out="x")
            ),
        ),
        (
            ["train-model", "--out", "x"],
            lambda args: (
                cli.from_args(config.TrainModelConfig, args) == config.TrainModelConfig(out="x")
            ),
        ),
    ],
)
def test_a_command_without_options_runs_with_the_config_defaults(argv, expected):
    assert expected(cli.parser().parse_args(argv))


def test_options_parse_into_the_nested_configs_they_name():
    args = cli.parser().parse_args(
        ["build", "--context-before", "5", "--no-bos", "--no-ce-loss", "--ce-tokens", "all"]
    )
    built = from_args(config.BuildConfig, args)
    assert built.stats.context_before == 5
    assert built.data.prepend_bos is False
    assert built.stats.ce_loss is False and built.stats.ce_tokens is None
    toy = cli.parser().parse_args(["toy", "--dd-sizes", "3,10", "--dd-steps", "7"])
    dd = from_args(config.ToyConfig, toy).double_descent
    assert (dd.sizes, dd.steps) == ((3, 10), 7)
    assert cli.parser().parse_args(["toy", "--dd-sizes", ""]).dd_sizes == ()


def test_field_docstrings_are_read_from_the_class_source():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Example:
        width: int = 3
        """How wide,
        in cells (100% of them)."""
        flag: bool = option(False, flag="--on")
        unseen: str = "x"

    assert field_docs(Example) == {"width": "How wide, in cells (100% of them)."}
    parser = argparse.ArgumentParser()
    add_options(parser, Example)
    assert "100% of them" in parser.format_help()
    assert parser.parse_args(["--on", "--width", "4"]).on is True
