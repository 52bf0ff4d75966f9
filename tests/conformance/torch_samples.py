"""Kiln on torch's own OpInfo sample inputs (``torch.testing._internal``: needs torch and the
``expecttest`` package): every sample of every torch op that Kiln has under the same name,
run eagerly in Kiln and compared with torch. A measurement, not a test (it imports torch's
test suite, ~10 s, and runs thousands of samples):

    python tests/conformance/torch_samples.py [--dtype float32] [--show 40] [--ops add,roll]

It prints the pass rate over the samples of the ops Kiln has, the same rate over torch's
whole surface (each sample of an op Kiln lacks counted as a failure), the failures grouped
by op, and the torch op names Kiln lacks with their sample counts (the biggest gaps first).
"""

from __future__ import annotations

import argparse
import collections
import warnings
from typing import Any

import numpy as np

import kiln
import kiln.nn.functional as KF
from kiln.core.dtypes import get_dtype

# Not comparable with torch by value: random draws and uninitialized memory; and names that
# mean something else in Kiln (kiln.trace traces a function, kiln.float is a dtype).
_SKIP = {"rand_like", "randn_like", "randint", "randint_like", "randn", "rand", "bernoulli",
         "nn.functional.dropout", "empty", "empty_like", "empty_strided", "new_empty", "trace",
         "empty_permuted", "new_empty_strided",
         "T", "mT", "H", "mH", "float", "double", "bool", "long", "int", "half", "byte", "char",
         "short", "bfloat16", "cfloat", "cdouble", "chalf"}
# OpInfos whose ``op`` takes its arguments in another order than the public function.
_SWAPPED = {
    "einsum": lambda tensors, equation, **kw: kiln.einsum(equation, tensors, **kw),
    "nn.functional.embedding": lambda w, idx, **kw: KF.embedding(idx, w, **kw),
    "nn.functional.embedding_bag": lambda w, idx, **kw: KF.embedding_bag(idx, w, **kw),
    "where": lambda x, cond, other, **kw: kiln.where(cond, x, other),
    "max_pool2d_with_indices_backward": lambda x, **kw: _max_pool2d_backward(x, **kw),
    "polygamma": lambda x, n, **kw: kiln.polygamma(n, x, **kw),
    "special.polygamma": lambda x, n, **kw: kiln.special.polygamma(n, x, **kw),
}


def _max_pool2d_backward(x: Any, kernel_size: Any = (), stride: Any = (), padding: Any = (0,),
                         dilation: Any = (1,), ceil_mode: bool = False, **_: Any) -> Any:
    """torch's OpInfo op of that name: pool with indices, then the aten backward of ones."""
    out, idx = KF.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode,
                             return_indices=True)
    stride = kernel_size if stride is None else stride
    return kiln.max_pool2d_with_indices_backward(kiln.ones_like(out), x, kernel_size, stride,
                                                 padding, dilation, ceil_mode, idx)


# torch namespaces looked up under the same name in Kiln ("linalg.solve" -> kiln.linalg.solve).
_NAMESPACES = ("linalg", "masked", "special", "fft", "signal.windows")


class _NotACase(Exception):
    """A sample the harness cannot translate (a torch module passed as an argument)."""


def _kiln_target(name: str) -> Any:
    """The Kiln callable for torch OpInfo ``name`` ("add", "nn.functional.relu",
    "linalg.vector_norm"), or None."""
    if name in _SWAPPED:
        return _SWAPPED[name]
    if name.startswith("nn.functional."):
        return getattr(KF, name[len("nn.functional."):], None)
    space, _, attr = name.rpartition(".")
    if space == "fft" and attr not in kiln.fft.__all__:
        return None  # the transforms: complex results, which Kiln does not have
    if space in _NAMESPACES:  # "masked.sum" -> kiln.masked.sum, "signal.windows.hann" ...
        module = kiln
        for part in space.split("."):
            module = getattr(module, part, None)
            if module is None:
                return None
        return getattr(module, attr, None)
    if "." in name:
        return None
    fn = getattr(kiln, name, None)
    if fn is not None:
        return fn
    if hasattr(kiln.Tensor, name):
        return lambda self, *a, **k: getattr(self, name)(*a, **k)
    return None


def _to_kiln(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return kiln.from_numpy(np.array(value.detach().cpu().numpy(), copy=True))
    if isinstance(value, torch.dtype):
        return get_dtype(str(value).replace("torch.", ""))
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, torch.nn.Module):
        raise _NotACase("a torch module as an argument")
    if callable(value) and hasattr(KF, getattr(value, "__name__", "")) and \
            "torch" in str(getattr(value, "__module__", "") or type(value)):
        return getattr(KF, value.__name__)  # torch.nn.functional.gelu -> Kiln's
    if isinstance(value, list):
        return [_to_kiln(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_kiln(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_kiln(v) for k, v in value.items()}
    return value


def _arrays(out: Any) -> list[np.ndarray]:
    import torch

    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _arrays(o)]
    if isinstance(out, torch.Tensor):
        return [out.detach().numpy()]
    if isinstance(out, kiln.Tensor):
        return [np.asarray(out.detach().numpy())]
    return [np.asarray(out)]


def _close(a: list[np.ndarray], b: list[np.ndarray]) -> str:
    if len(a) != len(b):
        return f"{len(a)} outputs, torch {len(b)}"
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            return f"shape {x.shape}, torch {y.shape}"
        if x.dtype != y.dtype and not (x.dtype.kind == y.dtype.kind == "f"):
            return f"dtype {x.dtype}, torch {y.dtype}"
        if x.size and not np.allclose(x.astype(np.float64), y.astype(np.float64), rtol=1e-4,
                                      atol=1e-5, equal_nan=True):
            return "values differ"
    return ""


def run_modules(dtype: Any, counts: collections.Counter, failures: dict,
                missing: dict[str, int]) -> None:
    """torch's ModuleInfo inputs: each module built in torch (seeded), its state_dict loaded
    into the Kiln module of the same name, both run in eval mode on the same inputs."""
    import torch
    from torch.testing._internal.common_modules import module_db

    for info in module_db:
        name = info.module_cls.__name__
        kcls = getattr(kiln.nn, name, None)
        try:
            inputs = info.module_inputs_func(info, device="cpu", dtype=dtype,
                                             requires_grad=False, training=False)
        except Exception:  # noqa: BLE001  (torch's own generator failing: not a case)
            inputs = []
        if kcls is None:
            missing[f"nn.{name}"] = len(inputs)
            continue
        for mi in inputs:
            c, fwd = mi.constructor_input, mi.forward_input
            if fwd is None:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    torch.manual_seed(0)
                    tm = info.module_cls(*c.args, **c.kwargs).eval()
                    ref = _arrays(tm(*fwd.args, **fwd.kwargs))
                except Exception:  # noqa: BLE001  (torch refuses it too)
                    continue
                try:
                    cargs, ckw = _to_kiln(c.args), _to_kiln(c.kwargs)
                except _NotACase:
                    continue
                counts["samples"] += 1
                try:
                    km = kcls(*cargs, **ckw)
                    km.load_state_dict({k: v.detach().numpy() for k, v in
                                        tm.state_dict().items()})
                    km = km.to(dtype=get_dtype(str(dtype).replace("torch.", ""))).eval()
                    why = _close(_arrays(km(*_to_kiln(fwd.args), **_to_kiln(fwd.kwargs))), ref)
                except Exception as exc:  # noqa: BLE001
                    why = f"{type(exc).__name__}: {str(exc)[:160]}"
            if why:
                failures[f"nn.{name}"].append(f"{why} | {mi.desc} {c.args!r:.80} "
                                              f"{c.kwargs!r:.80}")
            else:
                counts["passed"] += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--show", type=int, default=40)
    parser.add_argument("--ops", default="")
    parser.add_argument("--modules", action="store_true", help="torch's module inputs too")
    opts = parser.parse_args()
    try:
        import torch
        from torch.testing._internal.common_methods_invocations import op_db
    except ImportError as exc:
        raise SystemExit(f"torch_samples needs torch and expecttest ({exc}); install them "
                         "with pip install 'kiln[conformance]'") from None

    dtype = getattr(torch, opts.dtype)
    wanted = set(opts.ops.split(",")) if opts.ops else None
    missing: dict[str, int] = {}  # torch op name -> its sample count
    counts = collections.Counter()
    failures: dict[str, list[str]] = collections.defaultdict(list)
    for op in op_db:
        if (wanted and op.name not in wanted) or op.name in _SKIP:
            continue
        target = _kiln_target(op.name)
        if dtype not in op.supported_dtypes("cpu"):
            if target is None:
                missing[op.name] = 0
            continue
        try:
            samples = list(op.sample_inputs("cpu", dtype, requires_grad=False))
        except Exception:  # noqa: BLE001  (torch's own generator failing: not Kiln's case)
            samples = []
        if target is None:
            missing[op.name] = len(samples)
            continue
        for s in samples:
            if s.kwargs.get("dropout_p", 0) or s.kwargs.get("p", 0) and "dropout" in op.name:
                continue  # random: not comparable by value
            if op.name == "nn.functional.multi_head_attention_forward" and \
                    s.kwargs.get("training", True) and s.args[9]:
                continue  # dropout_p (positional) in training: random as well
            if "fractional_max_pool" in op.name and s.kwargs.get("_random_samples") is None:
                continue  # window starts drawn at random inside torch
            args = (s.input, *s.args)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    ref = _arrays(op.op(*args, **s.kwargs))
                except Exception:  # noqa: BLE001  (torch refuses it too: not a case)
                    continue
                counts["samples"] += 1
                try:
                    got = _arrays(target(*_to_kiln(args), **_to_kiln(s.kwargs)))
                    why = _close(got, ref)
                except kiln.KilnError as exc:
                    why = f"{type(exc).__name__}: {str(exc)[:160]}"
                    if "no SVD" in str(exc):  # refused on purpose (docs/ops.md)
                        counts["refused"] += 1
                        continue
                except Exception as exc:  # noqa: BLE001
                    why = f"{type(exc).__name__}: {str(exc)[:160]}"
            if why:
                failures[op.name].append(f"{why} | {s!r:.200}")
            else:
                counts["passed"] += 1
    if opts.modules:
        run_modules(dtype, counts, failures, missing)
    n, ok = counts["samples"], counts["passed"]
    n -= counts["refused"]
    what = "OpInfo and ModuleInfo" if opts.modules else "OpInfo"
    rate = 100.0 * ok / max(n, 1)
    print(f"torch {what} samples ({opts.dtype}) of the ops and modules Kiln has by name: "
          f"{ok}/{n} passed ({rate:.1f}%); {counts['refused']} more refused on purpose "
          "(norms that need an SVD)")
    by_count = sorted(failures.items(), key=lambda kv: -len(kv[1]))
    for name, fails in by_count[:opts.show]:
        print(f"  {name}: {len(fails)} failing, e.g. {fails[0][:300]}")
    lacking = sum(missing.values())
    print(f"over torch's whole surface (a missing op's samples count as failures): "
          f"{ok}/{n + lacking} ({100.0 * ok / max(n + lacking, 1):.1f}%)")
    ranked = sorted(missing.items(), key=lambda kv: (-kv[1], kv[0]))
    print(f"torch ops Kiln lacks by name ({len(missing)}, with their sample counts): "
          + ", ".join(f"{name} {k}" for name, k in ranked))


if __name__ == "__main__":
    main()
