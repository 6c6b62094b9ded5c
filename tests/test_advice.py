"""Every flag an error or warning message advises is accepted, as printed, by the commands that can print it.

The messages are read from the source (each `raise`, warning, print and health-report line under
src/cnnkit), so new advice is checked without a new test. Each advised `--flag [VALUE]` is parsed
with the real `cnnkit` parser for every command that can reach the module that prints it, and each
advised `--set KEY=VALUE` must also be a valid config assignment.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import cnnkit
from cnnkit.cli import build_parser
from cnnkit.config import Config, config_fields

SRC = Path(cnnkit.__file__).parent
HOLE = "\x00"  # stands for a value formatted into the message at run time

# the commands that can print a message of each package (first matching prefix wins)
REACH = [
    ("explain/", ["explain"]),
    ("export/", ["export"]),
    ("serve/", ["serve"]),
    ("engine/exported.py", ["predict"]),  # reading an .onnx file: --size/--channels/--classes
    ("data/", ["train", "data inspect", "data convert", "data make"]),
    ("", ["train"]),  # config, engine, tasks, models, report: reached by training
]
# the command line each check starts from (positionals and required options filled in)
BASE = {
    "train": ["train"],
    "explain": ["explain", "RUN", "img.png"],
    "data inspect": ["data", "inspect", "SRC"],
    "data convert": ["data", "convert", "SRC", "OUT", "--to", "coco"],
    "data make": ["data", "make", "digits", "OUT", "--format", "coco"],
    "export": ["export", "RUN"],
    "predict": ["predict", "RUN", "img.png"],
    "serve": ["serve", "RUN"],
}
# a message that spells out a command (`cnnkit export RUN --format safetensors`) is checked against that one
NAMED_COMMAND_RE = re.compile(r"cnnkit (" + "|".join(c for c in BASE if " " not in c) + r")\b")
# words that follow a flag in a sentence without being its value ("--worst expects a positive number")
PROSE = {"or", "and", "to", "when", "with", "for", "instead", "is", "in", "if", "expects", "has", "reviews", "needs"}
MESSAGE_CALLS = {"warn", "warning", "print", "add", "CnnkitError"}
SET_RE = re.compile(r"--set\s+([\w.\x00]+)=([^\s`'\",;)]+)")
FLAG_RE = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?:[ =]([^\s`'\",;:)(]+))?")


def _text(node: ast.AST) -> str:
    """The literal text of a message expression, with HOLE for each formatted value."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else ""
    if isinstance(node, ast.FormattedValue):
        return HOLE
    return "".join(_text(child) for child in ast.iter_child_nodes(node))


def _call_name(func: ast.AST) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def advice() -> list[tuple[str, str, str, str | None]]:
    """(module, command, flag, printed value or None) for each flag named in a message under src/cnnkit."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        if module.startswith("cli"):  # the parser itself
            continue
        commands = next(cmds for prefix, cmds in REACH if module.startswith(prefix))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = _text(node.exc)
            elif isinstance(node, ast.Call) and _call_name(node.func) in MESSAGE_CALLS:
                text = " ".join(_text(a) for a in node.args)
            else:
                continue
            text = re.sub(r"pip install [^.;`]*", "", text)  # pip's own flags (--force-reinstall) are not ours
            named = list(NAMED_COMMAND_RE.finditer(text))
            for match in FLAG_RE.finditer(text):
                flag, value = match.group(1), (match.group(2) or "").rstrip(".") or None
                before = [m.group(1) for m in named if m.end() <= match.start()]  # the command it follows, if any
                found += [(module, command, flag, value) for command in (before[-1:] or commands)]
    return sorted(set(found), key=lambda x: tuple(str(p) for p in x))


def _subparser(command: str):
    parser = build_parser()
    for word in command.split():
        parser = next(a for a in parser._actions if a.dest in ("command", "data_command")).choices[word]
    return parser


ADVICE = advice()


def test_the_scan_finds_the_known_advice():
    assert ("data/splits.py", "data convert", "--set", None) in [(m, c, f, None) for m, c, f, _ in ADVICE]
    assert any(f == "--root" and c == "data make" for _, c, f, _ in ADVICE)
    assert any(f == "--layer" and c == "explain" for _, c, f, _ in ADVICE)


@pytest.mark.parametrize("module, command, flag, value", ADVICE, ids=lambda x: str(x))
def test_advised_flag_is_accepted_by_the_command(module, command, flag, value):
    sub = _subparser(command)
    where = f"{module} advises `{flag}` but `cnnkit {command}` does not take it"
    assert flag in sub._option_string_actions, where
    if flag == "--help":
        return
    action = sub._option_string_actions[flag]
    literal = value if value and HOLE not in value and value not in PROSE and not value.isupper() else None
    if literal and action.type is not None:
        try:
            action.type(literal)
        except ValueError:  # `--worst has nothing to review`: the word after an int flag is prose
            literal = None
    argv = list(BASE[command]) + [flag]
    if action.nargs != 0:
        argv.append(literal or "1")
    try:
        sub.parse_args(argv[len(command.split()):])
    except SystemExit:
        pytest.fail(f"{where}: `cnnkit {' '.join(argv)}` is refused")
    if literal and action.dest in config_fields() and flag != "--set":
        Config().set(action.dest, literal)  # the printed value is valid for the key


SET_ADVICE = sorted({(path.relative_to(SRC).as_posix(), key, value)
                     for path in SRC.rglob("*.py") for key, value in SET_RE.findall(path.read_text())
                     if not path.name.startswith("cli") and "{" not in key})


def test_the_set_scan_finds_the_known_advice():
    assert {k for _, k, _ in SET_ADVICE} >= {"data.max_bad", "data.class_weights"}


@pytest.mark.parametrize("module, key, value", SET_ADVICE, ids=lambda x: str(x))
def test_advised_set_item_is_a_valid_config_assignment(module, key, value):
    value = value.rstrip(".")
    if "{" in value:  # formatted at run time: a number in every current message
        value = "1"
    Config().apply_overrides([f"{key}={value}"])
