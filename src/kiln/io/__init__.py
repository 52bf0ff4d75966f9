"""Reading and writing tensors: safetensors bytes and files (:mod:`.weights`, public as
``kiln.weights``), and PyTorch checkpoints read without torch or pickle
(:mod:`.torch_checkpoint`).

Layer: right above the tensor core. May import the tensor core (kiln.core, kiln.ops,
kiln.autograd), kiln.symbolic, kiln.base and kiln.errors.
"""
