"""Argument checks and parameter factories shared by the layers."""

from __future__ import annotations

from typing import Any

from kiln.core import dtypes as _dt
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError
from kiln.nn.parameter import Parameter


def check_int(layer: str, name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or an error naming the layer and argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentError(f"{layer}: {name} must be an int, got {type(value).__name__} "
                            f"{value!r}")
    if value < minimum:
        raise ValueArgumentError(f"{layer}: {name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(layer: str, name: str, value: Any, low: float | None = None,
                high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentError(f"{layer}: {name} must be a number, got {type(value).__name__} "
                            f"{value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueArgumentError(f"{layer}: {name} must be in [{low}, {high}], got {value}")
    return value


def check_choice(layer: str, name: str, value: Any, choices: tuple) -> Any:
    if value not in choices:
        raise ValueArgumentError(f"{layer}: {name} must be one of {choices}, got {value!r}")
    return value


def tuple_arg(layer: str, name: str, value: Any, n: int, minimum: int = 0) -> tuple[int, ...]:
    """An int or a length-``n`` sequence of ints, as an ``n``-tuple (``_pair`` in torch)."""
    items = (value,) * n if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, (tuple, list)) or len(items) != n or \
            any(isinstance(v, bool) or not isinstance(v, int) for v in items):
        raise ArgumentError(f"{layer}: {name} must be an int or a tuple of {n} ints, got "
                            f"{value!r}")
    if any(v < minimum for v in items):
        raise ValueArgumentError(f"{layer}: {name} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


def float_dtype(layer: str, dtype: Any, device: Any = None) -> _dt.DType:
    """The layer's parameter dtype (floating; the default float when None). ``device`` is
    checked here too, as every layer with a ``device=`` argument passes it: only the CPU."""
    from kiln.core.devices import check_device

    check_device(layer, device)
    d = _dt.get_dtype(dtype) if dtype is not None else _dt.DEFAULT_FLOAT
    if not d.is_floating:
        raise ArgumentError(f"{layer}: dtype must be floating, got {d}")
    return d


def new_param(shape: tuple, dtype: _dt.DType, fill: float = 0.0) -> Parameter:
    """A Parameter of ``shape`` filled with ``fill`` (initializers overwrite it)."""
    from kiln.core.creation import full

    return Parameter(full(tuple(shape), fill, dtype=dtype))


def weight_and_bias(module: Any, weight_shape: tuple, bias: bool, dtype: _dt.DType) -> None:
    """Register ``weight`` of ``weight_shape`` and a ``bias`` of its first dim (or
    ``bias=None``), as Linear, Bilinear and ConvNd do; ``reset_parameters`` fills them."""
    module.weight = new_param(weight_shape, dtype)
    if bias:
        module.bias = new_param(weight_shape[:1], dtype)
    else:
        module.register_parameter("bias", None)


def fan_in_init(weight: Tensor, bias: Tensor | None) -> None:
    """PyTorch's default init of Linear and ConvNd: kaiming_uniform_(a=sqrt(5)) for the weight,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias."""
    import math

    from kiln.nn import init

    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        if fan_in > 0:
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(bias, -bound, bound)


def static(size: Any) -> bool:
    """True when a dim is a plain int (not symbolic), so it can be checked at call time."""
    return isinstance(size, int)


def check_last_dim(layer: str, x: Tensor, want: int, what: str) -> None:
    if x.ndim == 0:
        raise ShapeError(f"{layer}: expected an input with a last dim of size {want} ({what}), "
                         "got a 0-d tensor")
    got = x.shape[-1]
    if static(got) and got != want:
        raise ShapeError(f"{layer}: expected an input whose last dim is {want} ({what}), got "
                         f"shape {tuple(x.shape)}")


def check_tensor(layer: str, x: Any, name: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        raise ArgumentError(f"{layer}: {name} must be a kiln.Tensor, got {type(x).__name__}")
    return x


def conv_extra_repr(m: Any) -> str:
    """torch's ``extra_repr`` of a (transposed) convolution: channels, kernel and stride, then
    only the fields that differ from their defaults, in torch's order."""
    n = m._n
    s = (f"{m.in_channels}, {m.out_channels}, kernel_size={m.kernel_size}, "
         f"stride={m.stride}")
    for field, default in (("padding", (0,) * n), ("dilation", (1,) * n),
                           ("output_padding", (0,) * n), ("groups", 1)):
        value = getattr(m, field)
        if value != default:
            s += f", {field}={value}"
    if m.bias is None:
        s += ", bias=False"
    if m.padding_mode != "zeros":
        s += f", padding_mode={m.padding_mode}"
    return s
