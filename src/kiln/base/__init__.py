"""Helpers every layer of Kiln may use: the lowest layer above kiln.errors."""
