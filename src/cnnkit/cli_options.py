"""Command-line flags derived from the `Config` fields: name, metavar, help with the default, a group per section.

Each key is described once, by `config.option`; this module only renders that description for
argparse. Values stay strings on the command line and go through `Config.set`, which converts and
checks them (type, choices, bounds): a bad `--augment` and a bad `--set data.augment=` or YAML
value end in the same one sentence naming the key.
"""
from __future__ import annotations

import argparse
import dataclasses
import textwrap

from cnnkit.config import Config, check_bounds, config_fields, field_default, flag_of, value_kind
from cnnkit.errors import CnnkitError

SECTION_TITLES = {"data": "data", "model": "model", "train": "training"}


def add_config_flags(parser: argparse.ArgumentParser, keys: tuple[str, ...] | None = None) -> None:
    """One flag per key (`dest` is the key itself). Without `keys`: every flagged key, in one group per
    section whose description lists the section's `--set`-only keys with their defaults."""
    table = config_fields()
    if keys is not None:
        for key in keys:
            _add_flag(parser, key, table[key])
        return
    groups = {}
    for sec, title in SECTION_TITLES.items():
        others = [k for k in table if k.startswith(sec + ".") and not flag_of(k)]
        groups[sec] = parser.add_argument_group(title, _set_only_text(others))
    for key, f in table.items():
        if flag_of(key, f):
            _add_flag(groups[key.split(".")[0] if "." in key else "data"], key, f)


def add_set_option(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help=f"any config key, e.g. {example} (see `cnnkit train --help` for the keys)")


def apply_flags(cfg: Config, args: argparse.Namespace) -> Config:
    """Set each config flag given on the command line, then the `--set KEY=VALUE` items (they win)."""
    table = config_fields()
    for key, value in vars(args).items():
        if key in table and value is not None:
            cfg.set(key, value)
    return cfg.apply_overrides(getattr(args, "set", None) or [])


def _add_flag(parser, key: str, f: dataclasses.Field) -> None:
    kind, meta, name = value_kind(f), f.metadata, flag_of(key, f, any_key=True)
    if kind == "bool":
        parser.add_argument(name, dest=key, action=argparse.BooleanOptionalAction, default=None,
                            help=_help(f))
        return
    choices = meta.get("choices")
    if choices:
        metavar = "{" + ",".join(choices) + "}"
    else:
        metavar = meta.get("metavar") or (kind.upper() if kind in ("int", "float") else key.split(".")[-1].upper())
    parser.add_argument(name, dest=key, metavar=metavar, default=None, help=_help(f))


def _help(f: dataclasses.Field) -> str:
    default = field_default(f)
    text = f.metadata.get("help", "") + _cap_text(f.metadata.get("bounds"))
    if isinstance(default, bool):
        text += f" (default: {'on' if default else 'off'})"
    elif default is not None and default != {}:
        text += f" (default: {default})"
    return text.replace("%", "%%")  # argparse expands %-formats in help


def _cap_text(bounds: str | None) -> str:
    """'; at most N' for an interval with a finite upper end (a cap against runaway time or memory)."""
    if not bounds or bounds.rstrip(")]").endswith("inf"):
        return ""
    high = bounds.split(",")[1].strip(" ])")
    return f"; at most {high}" if bounds.endswith("]") else f"; below {high}"


def bounded(kind: type, bounds: str, name: str):
    """An argparse `type` for a flag that is no config key (`predict --top-k`): converts with `kind` and checks
    the interval like `Config.set`, so a bad value ends in one sentence naming the flag (argparse: exit 2)."""
    def convert(text: str):
        try:
            value = kind(text)
            if kind is int and not str(text).strip().lstrip("+-").isdigit():
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} expects {kind.__name__}, got {text!r}") from None
        try:
            check_bounds(name, value, bounds)
        except CnnkitError as e:
            raise argparse.ArgumentTypeError(str(e).replace(f'Config key "{name}"', name)) from None
        return value
    convert.__name__ = kind.__name__  # argparse names the type in its own messages
    return convert


def _set_only_text(keys: list[str]) -> str | None:
    if not keys:
        return None
    table = config_fields()
    lines = ["other keys, through --set KEY=VALUE:"]
    for key in keys:
        f = table[key]
        default = field_default(f)
        if value_kind(f) == "dict":
            shown = f"{key}.NAME=VALUE"
        else:
            shown = f"{key}={str(default).lower() if isinstance(default, bool) else default}"
        choices = f.metadata.get("choices")
        note = f.metadata.get("help", "") + (f" ({'|'.join(choices)})" if choices else "")
        lines += textwrap.wrap(f"{shown:<24} {note}", 100, initial_indent="  ", subsequent_indent=" " * 27)
    return "\n".join(lines)
