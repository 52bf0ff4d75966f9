"""The ``kiln`` command line (click; rich for tables and progress), and the demo
(``python -m kiln.cli.demo``). Layer: the top; may import every other package.

Each group of subcommands lives in its own module, which defines click commands and lists
them in a module-level ``COMMANDS``; :data:`SUBCOMMAND_MODULES` names those modules, so a
new group (``kiln cache ...``, ``kiln inspect``) is one new module and one line here.

>>> from click.testing import CliRunner
>>> result = CliRunner().invoke(main, ["--help"])
>>> "compile" in result.output and "env" in result.output
True
"""

from __future__ import annotations

import importlib

import click

SUBCOMMAND_MODULES = ("kiln.cli.compile", "kiln.cli.bench", "kiln.cli.env", "kiln.cli.cache",
                      "kiln.cli.inspect")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kiln", prog_name="kiln")
def main() -> None:
    """Kiln: an ahead-of-time compiler for neural-network programs."""


for _name in SUBCOMMAND_MODULES:
    for _command in importlib.import_module(_name).COMMANDS:
        main.add_command(_command)
