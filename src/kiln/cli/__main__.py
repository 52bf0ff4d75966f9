"""``python -m kiln.cli`` runs the ``kiln`` command."""

from kiln.cli import main

main(prog_name="kiln")
