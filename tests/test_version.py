"""The version is declared once: the installed metadata and `skyrack --version` both read it."""

import importlib.metadata

import pytest

import skyrack
from skyrack.cli import main


def test_metadata_reads_the_one_declaration():
    assert importlib.metadata.version("skyrack") == skyrack.__version__


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"skyrack {skyrack.__version__}"
