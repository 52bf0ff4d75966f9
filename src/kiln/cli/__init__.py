"""Command-line entry points: the demo (``python -m kiln.cli.demo``).

Layer: the top. May import every other package.
"""
