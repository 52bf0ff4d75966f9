"""Internal helpers shared by every layer (the bottom of the stack, above kiln.errors)."""
