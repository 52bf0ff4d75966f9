"""Recurrent layers: RNN, LSTM, GRU and their cells, with PyTorch's parameter names and
layouts (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``;
gates stacked in torch's order: LSTM i, f, g, o; GRU r, z, n), so a torch ``state_dict``
loads as is.

The time loop is plain Python over Kiln ops, so eager autograd, ``kiln.trace``, AOT
autograd and the C backend all handle it; a trace unrolls it, so the sequence length must
be static there (each length gets its own graph). Per layer and direction the input
projection of every step is one matmul (``x @ W_ih^T + b_ih`` over all steps at once); only
the hidden projection runs per step.

>>> import kiln
>>> lstm = kiln.nn.LSTM(4, 8, num_layers=2, batch_first=True)
>>> out, (h, c) = lstm(kiln.randn(3, 5, 4))
>>> out.shape, h.shape, c.shape
((3, 5, 8), (2, 3, 8), (2, 3, 8))
"""

from __future__ import annotations

import math
from typing import Any

from kiln import ops
from kiln.core.functional import stack
from kiln.core.tensor import Tensor
from kiln.errors import ArgumentError, ShapeError, ValueArgumentError
from kiln.nn import functional as F
from kiln.nn.layers._utils import check_float, check_int, check_tensor, float_dtype, new_param
from kiln.nn.module import Module

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _chunks(x: Tensor, n: int) -> list[Tensor]:
    """The last dim cut into ``n`` equal parts (gate blocks)."""
    size = x.shape[-1] // n
    return [ops.slice(x, dim=x.ndim - 1, start=i * size, stop=(i + 1) * size, step=1)
            for i in range(n)]


def _hidden_proj(h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    return F.linear(h, w_hh, b_hh)


def _rnn_step(mode: str, xp: Tensor, state: Any, w_hh: Tensor, b_hh: Tensor | None,
              w_hr: Tensor | None = None) -> Any:
    """One time step: ``xp`` is the input projection (x @ W_ih^T + b_ih) of this step;
    ``w_hr`` is an LSTM's projection of the hidden state (``proj_size``), if any."""
    if mode == "LSTM":
        h, c = state
        gates = xp + _hidden_proj(h, w_hh, b_hh)
        i, f, g, o = _chunks(gates, 4)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return (h if w_hr is None else F.linear(h, w_hr)), c
    if mode == "GRU":
        gh = _hidden_proj(state, w_hh, b_hh)
        xr, xz, xn = _chunks(xp, 3)
        hr, hz, hn = _chunks(gh, 3)
        r = ops.sigmoid(xr + hr)
        z = ops.sigmoid(xz + hz)
        n = ops.tanh(xn + r * hn)
        return n + z * (state - n)  # (1 - z) * n + z * h
    pre = xp + _hidden_proj(state, w_hh, b_hh)
    return ops.tanh(pre) if mode == "RNN_TANH" else ops.relu(pre)


def _check_nonlinearity(layer: str, nonlinearity: str) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueArgumentError(f"{layer}: nonlinearity must be 'tanh' or 'relu', got "
                                 f"{nonlinearity!r}")
    return "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"


class RNNBase(Module):
    """The shared body of RNN, LSTM and GRU (``mode``: RNN_TANH, RNN_RELU, LSTM, GRU).

    >>> import kiln
    >>> kiln.nn.RNNBase("GRU", 2, 3).weight_ih_l0.shape
    (9, 2)
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.mode = mode
        self.input_size = check_int(name, "input_size", input_size, 1)
        self.hidden_size = check_int(name, "hidden_size", hidden_size, 1)
        self.num_layers = check_int(name, "num_layers", num_layers, 1)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(check_float(name, "dropout", dropout, 0.0, 1.0))
        self.bidirectional = bool(bidirectional)
        self.proj_size = check_int(name, "proj_size", proj_size, 0)
        if proj_size and mode != "LSTM":
            raise ArgumentError(f"{name}: proj_size is only supported by LSTM, got "
                                f"proj_size={proj_size}")
        if proj_size >= hidden_size:
            raise ValueArgumentError(f"{name}: proj_size must be smaller than hidden_size "
                                     f"({hidden_size}), got {proj_size}")
        # With proj_size, the hidden state (and each layer's output) has proj_size features.
        real_hidden = proj_size or hidden_size
        num_directions = 2 if bidirectional else 1
        gate_size = _GATES[mode] * hidden_size
        d = float_dtype(name, dtype, device)
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else real_hidden * num_directions
            for direction in range(num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (gate_size, layer_in)),
                          ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size:
                    shapes.append(("weight_hr", (proj_size, hidden_size)))
                for kind, shape in shapes:
                    setattr(self, kind + suffix, new_param(shape, d))
                    self._flat_weights_names.append(kind + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) for every weight, as PyTorch."""
        from kiln.nn import init

        bound = 1.0 / math.sqrt(self.hidden_size)
        for name in self._flat_weights_names:
            init.uniform_(getattr(self, name), -bound, bound)

    def flatten_parameters(self) -> None:
        """A no-op kept for ported code (torch packs the weights for cuDNN here)."""

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """Per layer and direction: [weight_ih, weight_hh, (bias_ih, bias_hh), (weight_hr)]."""
        per = (4 if self.bias else 2) + (1 if self.proj_size else 0)
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[i:i + per]] for i in range(0, len(names), per)]

    def _params(self, layer: int, direction: int) -> tuple:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        get = self._parameters.get
        return (get("weight_ih" + suffix), get("weight_hh" + suffix),
                get("bias_ih" + suffix), get("bias_hh" + suffix), get("weight_hr" + suffix))

    def _initial(self, hx: Any, batch: Any, unbatched: bool, x: Tensor) -> list:
        """The initial state(s) as (num_layers * num_directions, N, H) tensors."""
        name = type(self).__name__
        layers = self.num_layers * (2 if self.bidirectional else 1)
        lead = (layers,) if unbatched else (layers, batch)
        # h_0 has proj_size features when the LSTM projects, c_0 always hidden_size
        wants = [lead + (self.proj_size or self.hidden_size,), lead + (self.hidden_size,)]
        count = 2 if self.mode == "LSTM" else 1
        if hx is None:
            from kiln.core.creation import zeros

            return [zeros(*want, dtype=x.dtype) for want in wants[:count]]
        parts = list(hx) if self.mode == "LSTM" else [hx]
        if self.mode == "LSTM" and (not isinstance(hx, (tuple, list)) or len(parts) != 2):
            raise ArgumentError(f"{name}: hx must be a tuple (h_0, c_0), got "
                                f"{type(hx).__name__}")
        out = []
        for label, t, want in zip(("h_0", "c_0"), parts, wants):
            check_tensor(name, t, label)
            if tuple(t.shape) != want:
                raise ShapeError(f"{name}: expected {label} of shape {want}, got "
                                 f"{tuple(t.shape)}")
            out.append(t if not unbatched else t.unsqueeze(1))
        return out

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Any]:
        name = type(self).__name__
        check_tensor(name, input)
        if input.ndim not in (2, 3):
            raise ShapeError(f"{name}: expected 2-D (L, H_in) or 3-D input, got shape "
                             f"{tuple(input.shape)}")
        if isinstance(input.shape[-1], int) and input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input with {self.input_size} features (last "
                             f"dim), got shape {tuple(input.shape)}")
        unbatched = input.ndim == 2
        x = input.unsqueeze(1) if unbatched else (
            input.transpose(0, 1) if self.batch_first else input)  # (L, N, H_in)
        steps, batch = x.shape[0], x.shape[1]
        if not isinstance(steps, int):
            raise ShapeError(f"{name}: the sequence length must be static (the loop over time "
                             "is unrolled when tracing); mark only the batch dim dynamic")
        init = self._initial(hx, batch, unbatched, x)
        num_dir = 2 if self.bidirectional else 1
        finals: list[list[Tensor]] = [[] for _ in init]
        for layer in range(self.num_layers):
            outs = []
            for direction in range(num_dir):
                k = layer * num_dir + direction
                state = [s[k] for s in init]
                seq, last = self._run_direction(x, layer, direction, state, steps)
                outs.append(seq)
                for f, s in zip(finals, last):
                    f.append(s)
            x = outs[0] if num_dir == 1 else F.cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        output = x
        states = [stack(f, 0) for f in finals]
        if unbatched:
            output = output.squeeze(1)
            states = [s.squeeze(1) for s in states]
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (tuple(states) if self.mode == "LSTM" else states[0])

    def _run_direction(self, x: Tensor, layer: int, direction: int, state: list,
                       steps: int) -> tuple[Tensor, list]:
        w_ih, w_hh, b_ih, b_hh, w_hr = self._params(layer, direction)
        xp = F.linear(x, w_ih, b_ih)  # every step's input projection in one matmul
        order = range(steps - 1, -1, -1) if direction else range(steps)
        cur: Any = tuple(state) if self.mode == "LSTM" else state[0]
        hs: list[Tensor | None] = [None] * steps
        for t in order:
            cur = _rnn_step(self.mode, xp[t], cur, w_hh, b_hh, w_hr)
            hs[t] = cur[0] if self.mode == "LSTM" else cur
        if steps == 0:
            raise ShapeError(f"{type(self).__name__}: the input sequence is empty")
        last = list(cur) if self.mode == "LSTM" else [cur]
        return stack(hs, 0), last

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or relu), over
    (L, N, H_in) input ((N, L, H_in) with ``batch_first``, (L, H_in) unbatched); returns
    ``(output, h_n)`` as torch.

    >>> import kiln
    >>> rnn = kiln.nn.RNN(3, 5, bidirectional=True)
    >>> out, h = rnn(kiln.randn(7, 2, 3))
    >>> out.shape, h.shape
    ((7, 2, 10), (2, 2, 5))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device: Any = None,
                 dtype: Any = None, *, proj_size: int = 0) -> None:
        # (proj_size is torch's RNNBase keyword: accepted here to be refused by name)
        super().__init__(_check_nonlinearity("RNN", nonlinearity), input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional, proj_size,
                         device, dtype)
        self.nonlinearity = nonlinearity  # (torch's repr of RNN does not show it)


class LSTM(RNNBase):
    """Long short-term memory over (L, N, H_in) input; returns ``(output, (h_n, c_n))``.

    >>> import kiln
    >>> kiln.nn.LSTM(10, 20, 2)
    LSTM(10, 20, num_layers=2)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit over (L, N, H_in) input; returns ``(output, h_n)``.

    >>> import kiln
    >>> out, h = kiln.nn.GRU(4, 6, batch_first=True)(kiln.randn(2, 3, 4))
    >>> out.shape, h.shape
    ((2, 3, 6), (1, 2, 6))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device: Any = None, dtype: Any = None, *,
                 proj_size: int = 0) -> None:
        # (proj_size is torch's RNNBase keyword: accepted here to be refused by name)
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device, dtype)


# --------------------------------------------------------------------------------------
# cells


class RNNCellBase(Module):
    """One time step of an RNN, LSTM or GRU (parameters weight_ih, weight_hh, bias_ih,
    bias_hh, as torch).

    >>> import kiln
    >>> [n for n, _ in kiln.nn.LSTMCell(2, 3).named_parameters()]
    ['weight_ih', 'weight_hh', 'bias_ih', 'bias_hh']
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.mode = mode
        self.input_size = check_int(name, "input_size", input_size, 1)
        self.hidden_size = check_int(name, "hidden_size", hidden_size, 1)
        self.bias = bool(bias)
        gate_size = _GATES[mode] * hidden_size
        d = float_dtype(name, dtype, device)
        self.weight_ih = new_param((gate_size, input_size), d)
        self.weight_hh = new_param((gate_size, hidden_size), d)
        if bias:
            self.bias_ih = new_param((gate_size,), d)
            self.bias_hh = new_param((gate_size,), d)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        from kiln.nn import init

        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _prepare(self, input: Tensor, hx: Any) -> tuple[Tensor, list, bool]:
        name = type(self).__name__
        check_tensor(name, input)
        if input.ndim not in (1, 2):
            raise ShapeError(f"{name}: expected 1-D (H_in) or 2-D (N, H_in) input, got shape "
                             f"{tuple(input.shape)}")
        if isinstance(input.shape[-1], int) and input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: expected input with {self.input_size} features, got "
                             f"shape {tuple(input.shape)}")
        unbatched = input.ndim == 1
        x = input.unsqueeze(0) if unbatched else input
        want = (x.shape[0], self.hidden_size)
        count = 2 if self.mode == "LSTM" else 1
        if hx is None:
            from kiln.core.creation import zeros

            return x, [zeros(*want, dtype=x.dtype) for _ in range(count)], unbatched
        parts = list(hx) if self.mode == "LSTM" else [hx]
        if len(parts) != count:
            raise ArgumentError(f"{name}: hx must be a tuple (h, c), got {type(hx).__name__}")
        states = []
        for t in parts:
            check_tensor(name, t, "hx")
            t = t.unsqueeze(0) if unbatched else t
            if tuple(t.shape) != tuple(want):
                raise ShapeError(f"{name}: expected a hidden state of shape {tuple(want)}, got "
                                 f"{tuple(t.shape)}")
            states.append(t)
        return x, states, unbatched

    def _step(self, input: Tensor, hx: Any) -> Any:
        x, states, unbatched = self._prepare(input, hx)
        xp = F.linear(x, self.weight_ih, self.bias_ih)
        cur = tuple(states) if self.mode == "LSTM" else states[0]
        out = _rnn_step(self.mode, xp, cur, self.weight_hh, self.bias_hh)
        if unbatched:
            out = tuple(o.squeeze(0) for o in out) if self.mode == "LSTM" else out.squeeze(0)
        return out

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        return s


class RNNCell(RNNCellBase):
    """``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu).

    >>> import kiln
    >>> kiln.nn.RNNCell(3, 4)(kiln.randn(2, 3)).shape
    (2, 4)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device: Any = None, dtype: Any = None) -> None:
        super().__init__(_check_nonlinearity("RNNCell", nonlinearity), input_size,
                         hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step(input, hx)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (", nonlinearity=relu" if self.nonlinearity == "relu" else "")


class LSTMCell(RNNCellBase):
    """One LSTM step: returns ``(h', c')``.

    >>> import kiln
    >>> h, c = kiln.nn.LSTMCell(3, 4)(kiln.randn(2, 3))
    >>> h.shape, c.shape
    ((2, 4), (2, 4))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Tensor]:
        return self._step(input, hx)


class GRUCell(RNNCellBase):
    """One GRU step: returns ``h'``.

    >>> import kiln
    >>> kiln.nn.GRUCell(3, 4)(kiln.randn(3)).shape
    (4,)
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        return self._step(input, hx)
