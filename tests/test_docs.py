"""Every command, flag and make target the README and docs/ name exists.

Commands are read from fenced code blocks and inline code: ``lakehouse SUBCOMMAND --flag …``
is checked against the argparse parser (the subcommand and each of its flags), a lone
``--flag`` against every subcommand's options, ``make TARGET`` against the Makefile.
"""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from lakehouse.cli import build_parser, subcommands

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)
INLINE = re.compile(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)?)`(?!`)")
# A command starts a line or follows a separator (; && | $( or `), after VAR=value words maybe.
COMMAND = re.compile(
    r"(?:^|[;&|(]\s*)(?:[A-Z_]+=\S*\s+)*(?:\S*/)?(lakehouse|make)(?=\s|$)((?:\s+[^\s|;&#>)]+)*)"
)

# Named on purpose although they do not exist: what the docs say is not built yet.
NOT_BUILT: dict[str, str] = {}  # a command the docs name as planned: "lakehouse X": where
# Flags of other tools that the docs quote alone.
FOREIGN_FLAGS = {
    "-c": "pip's constraints file",
    "--dagster-pipes-context": "Dagster Pipes",
    "--container-context": "dagster api grpc (the Helm chart's code-location args)",
}


def code_of(doc: Path) -> list[tuple[int, str]]:
    """``(line, code)`` of every code block line and inline code span of a Markdown file."""
    text = doc.read_text()
    out = []
    for block in FENCE.finditer(text):
        first = text.count("\n", 0, block.start(2)) + 1
        joined = block.group(2).replace("\\\n", " ")  # a command continued on the next line
        out += [(first + i, line) for i, line in enumerate(joined.splitlines())]
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in INLINE.finditer(prose):
        out.append((prose.count("\n", 0, span.start()) + 1, " ".join(span.group(1).split())))
    return out


def named() -> list[tuple[str, str, list[str]]]:
    """``(where, tool, words)`` for every ``lakehouse …`` and ``make …`` the docs name."""
    found = []
    for doc in DOCS:
        for line, code in code_of(doc):
            code = re.sub(r"^\s*\$\s+", "", code)
            for match in COMMAND.finditer(code):
                words = match.group(2).split()
                if words and words[0].endswith(":"):  # a message quoted: "lakehouse sync: error"
                    continue
                found.append((f"{doc.relative_to(ROOT)}:{line}", match.group(1), words))
    return found


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", text, re.M))


def options_of(parser: argparse.ArgumentParser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings}


def flags_in(words: list[str]) -> list[str]:
    """The ``--flag`` words of a command, brackets, ellipses and ``=value`` removed."""
    return re.findall(r"(?:^|[\s\[(|])(--?[a-z][a-z-]*)", " ".join(words))


def test_the_docs_name_commands_at_all():
    tools = [tool for _, tool, _ in named()]
    assert tools.count("lakehouse") > 50 and tools.count("make") > 30


@pytest.mark.parametrize(("where", "tool", "words"), [pytest.param(*n, id=n[0]) for n in named()])
def test_every_command_the_docs_name_exists(where, tool, words):
    if tool == "make":
        targets = [w for w in words if re.fullmatch(r"[a-z][a-z-]*", w)]
        unknown = [t for t in targets if t not in make_targets()]
        assert not unknown, f"{where}: make {' '.join(words)}: no target {unknown[0]}"
        return
    parser = build_parser(["--env", "local"])
    top = options_of(parser)
    commands = subcommands(parser)
    rest = list(words)
    while rest and rest[0].startswith("-"):  # options before the subcommand (--env local)
        flag = rest.pop(0).split("=")[0]
        assert flag in top, f"{where}: lakehouse {flag}: not an option of lakehouse"
        if flag == "--env" and rest:
            rest.pop(0)
    if not rest or not re.fullmatch(r"[a-z][a-z-]*", rest[0]):
        return  # `lakehouse`, `lakehouse …`, `lakehouse COMMAND --help`: nothing to check
    name = rest[0]
    if f"lakehouse {name}" in NOT_BUILT:
        return
    assert name in commands, f"{where}: lakehouse {name}: no such subcommand ({sorted(commands)})"
    known = options_of(commands[name]) | top
    unknown = [f for f in flags_in(rest[1:]) if f not in known]
    assert not unknown, f"{where}: lakehouse {' '.join(words)}: {unknown} not options of {name}"


def test_every_flag_the_docs_name_alone_is_an_option_of_a_subcommand():
    parser = build_parser(["--env", "local"])
    every = options_of(parser).union(*(options_of(p) for p in subcommands(parser).values()))
    missing = []
    for doc in DOCS:
        for line, code in code_of(doc):
            if not re.match(r"--?[a-z]", code):
                continue
            for flag in flags_in(shlex.split(code.replace("…", ""))):
                if flag not in every and flag not in FOREIGN_FLAGS:
                    missing.append(f"{doc.relative_to(ROOT)}:{line}: {flag}")
    assert not missing, missing


def test_what_the_docs_say_is_not_built_is_indeed_not_built():
    commands = subcommands(build_parser())
    for command in NOT_BUILT:
        assert command.split()[1] not in commands, f"{command} exists: drop it from NOT_BUILT"
