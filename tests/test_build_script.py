"""The commands that build the shipped model, in tools/build_model.sh and the README, are ones the CLI accepts."""

import re
import shlex
from pathlib import Path

import pytest

from faceattrs.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def faceattrs_commands(text: str) -> list[list[str]]:
    """Every ``faceattrs ...`` command line of a shell text, continuations joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    commands = []
    for line in joined.splitlines():
        words = shlex.split(line.replace('"$runs"', "runs/build").replace('"$out"', "runs/build/model"), comments=True)
        if words[:1] == ["faceattrs"] and "..." not in words:
            commands.append(words[1:])
    return commands


def test_the_build_script_runs_every_step_with_arguments_the_cli_accepts():
    commands = faceattrs_commands((ROOT / "tools" / "build_model.sh").read_text())
    assert [c[0] for c in commands] == [
        "train",
        "export",
        "self-distill",
        "quantize",
        "finetune-descriptors",
        "add-descriptor-heads",
    ]
    for command in commands:
        build_parser().parse_args(command)  # exits (fails the test) on an unknown option


def test_the_build_script_builds_the_shipped_models_version():
    import json

    shipped = json.loads((ROOT / "src" / "faceattrs" / "assets" / "metadata.json").read_text())
    heads = faceattrs_commands((ROOT / "tools" / "build_model.sh").read_text())[-1]
    assert heads[heads.index("--version") + 1] == shipped["version"]


def test_the_readmes_training_commands_parse():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Training and evaluation", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = faceattrs_commands(block)
    assert len(commands) > 10
    for command in commands:
        try:
            build_parser().parse_args(command)
        except SystemExit:
            pytest.fail(f"the README's `faceattrs {' '.join(command)}` does not parse")
