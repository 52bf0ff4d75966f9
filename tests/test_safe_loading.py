"""Issue 9's six findings, each reproduced: every one now ends in a clean KilnError (or, for
the umask case, in the right modes). See docs/security.md."""

from __future__ import annotations

import ctypes
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import kiln
from kiln.backends import deserialize, get_backend
from kiln.backends.envelope import read_envelope, write_envelope
from kiln.base import cachedir, canonical, trust
from kiln.errors import (
    BackendError,
    CompileError,
    KilnError,
    SerializationError,
    ToolchainError,
    UntrustedArtifactError,
)
from kiln.graph.module import GraphModule
from kiln.io import weights

toolchain = pytest.importorskip("kiln.backends.c.toolchain")


def _c_artifact() -> tuple[bytes, object]:
    gm = kiln.trace(lambda x, w: (x @ w).relu(), kiln.ones(3, 4), kiln.ones(4, 2))
    fn = get_backend("c")(gm, None)
    return fn.serialize(), fn


def _open(data: bytes) -> tuple[dict, dict]:
    backend, payload = read_envelope(data)
    assert backend == "c"
    return weights.load_bytes(payload)


def _close(arrays: dict, meta: dict) -> bytes:
    return write_envelope("c", weights.save_bytes(arrays, metadata=meta))


def _evil_library(marker) -> bytes:
    src = ('#include <stdio.h>\n__attribute__((constructor)) static void boom(void) {\n'
           f'  FILE *f = fopen("{marker}", "w"); if (f) {{ fputs("ran", f); fclose(f); }}\n'
           '}\nint kiln_evil;\n')
    return toolchain.compile_shared({"evil.c": src}).data


# 1. A C artifact's library runs on load -------------------------------------------------

def test_replaced_library_is_refused_before_it_is_loaded(tmp_path):
    data, _ = _c_artifact()
    arrays, meta = _open(data)
    marker = tmp_path / "constructor-ran"
    arrays["__library__"] = np.frombuffer(_evil_library(marker), np.uint8)
    forged = _close(arrays, meta)  # the envelope's sha256 recomputed, as an attacker would
    with pytest.raises(UntrustedArtifactError, match="signature does not verify"):
        deserialize(forged)
    del meta["kiln.signature"]
    with pytest.raises(UntrustedArtifactError, match="no signature"):
        deserialize(_close(arrays, meta))
    assert not marker.exists()


def test_a_signed_library_of_another_plan_is_refused_before_any_call():
    data, _ = _c_artifact()
    other = get_backend("c")(kiln.trace(lambda x: x.exp(), kiln.ones(2)), None)
    arrays, meta = _open(data)
    arrays["__library__"] = np.frombuffer(other.library, np.uint8)
    meta["kiln.signature"] = trust.sign(other.library).hex()  # validly signed, wrong plan
    with pytest.raises(SerializationError, match="not built from this plan"):
        deserialize(_close(arrays, meta))


def test_trust_any_is_an_opt_out_that_warns():
    data, _ = _c_artifact()
    arrays, meta = _open(data)
    del meta["kiln.signature"]
    with pytest.warns(RuntimeWarning, match="without checking its signature"):
        fn = deserialize(_close(arrays, meta), trust="any")
    assert fn(kiln.ones(3, 4), kiln.ones(4, 2))[0].tolist() == [[4.0, 4.0]] * 3
    with pytest.raises(KilnError, match="trust must be one of"):
        deserialize(data, trust="yes")


# 2. The C plan is trusted without validation --------------------------------------------

def _edited_plan(data: bytes, edit: str) -> bytes:
    arrays, meta = _open(data)
    plan = json.loads(meta["kiln.c"])
    out = next(b for b in plan["buffers"] if b["kind"] == "output")
    if edit == "buffer_kind":
        out["kind"] = "temp"
    elif edit == "output_shape":
        out["shape"] = [1]
    else:
        plan["inputs"][0]["shape"] = [3, 1]
    meta["kiln.c"] = canonical.dumps(plan)
    return _close(arrays, meta)


@pytest.mark.parametrize("edit", ["buffer_kind", "output_shape", "input_shape"])
def test_an_edited_plan_is_refused_by_its_signed_library(edit):
    data, _ = _c_artifact()
    # the library exports the hash of the plan it was built from: an edit no longer matches
    with pytest.raises(SerializationError, match="not built from this plan"):
        deserialize(_edited_plan(data, edit))


@pytest.mark.parametrize("edit", ["buffer_kind", "output_shape", "input_shape"])
def test_an_edited_plan_is_rebuilt_from_the_graph_when_nothing_vouches_for_it(edit):
    data, fn = _c_artifact()
    with pytest.warns(RuntimeWarning, match="without checking its signature"):
        loaded = deserialize(_edited_plan(data, edit), trust="any")  # the stored plan: unused
    x, w = kiln.randn(3, 4), kiln.randn(4, 2)
    np.testing.assert_array_equal(loaded(x, w)[0].numpy(), fn(x, w)[0].numpy())
    with pytest.raises(KilnError):
        loaded(kiln.ones(3, 1), w)


def test_a_signed_plan_must_describe_the_graph_it_travels_with():
    from kiln.backends.c.plan_check import check_against_graph
    from kiln.graph.module import GraphModule

    _, fn = _c_artifact()
    gm = GraphModule(fn.graph, fn.constants)
    check_against_graph(fn.plan, gm)
    edits = {"inputs": lambda p: p["inputs"][0].update(dtype="int64"),
             "buffers": lambda p: p["buffers"][-1].update(name="nope"),
             "outputs": lambda p: p["outputs"].append(["input", 0]),
             "temps": lambda p: p["temps"].append({"buffer": 0, "first": 0, "last": 0}),
             "calls": lambda p: p["calls"].append(10**6),
             "malformed": lambda p: p["buffers"].append(7)}
    for what, edit in edits.items():
        plan = json.loads(json.dumps(fn.plan))
        edit(plan)
        with pytest.raises(SerializationError, match="plan"):
            check_against_graph(plan, gm)
            pytest.fail(f"an edit of {what} passed the check")


def test_edited_graph_meta_in_a_c_artifact_is_refused():
    data, _ = _c_artifact()
    arrays, meta = _open(data)
    obj = json.loads(meta["kiln.graph_module"])
    obj["graph"]["nodes"][-2]["meta"]["shape"] = [1]
    obj["sha256"] = canonical.digest({k: v for k, v in obj.items() if k != "sha256"})
    meta["kiln.graph_module"] = canonical.dumps(obj)
    with pytest.raises(SerializationError, match="recorded meta"):
        deserialize(_close(arrays, meta))


def test_an_edited_graph_that_still_validates_is_refused_in_a_c_artifact():
    fn = get_backend("c")(kiln.trace(lambda x: x * 2.0, kiln.ones(3)), None)
    arrays, meta = _open(fn.serialize())
    obj = json.loads(meta["kiln.graph_module"])
    text = json.dumps(obj["graph"])
    assert "2.0" in text
    obj["graph"] = json.loads(text.replace("2.0", "3.0"))  # x * 3.0: a valid graph
    obj["sha256"] = canonical.digest({k: v for k, v in obj.items() if k != "sha256"})
    meta["kiln.graph_module"] = canonical.dumps(obj)
    with pytest.raises(SerializationError, match="differs from the one compiled"):
        deserialize(_close(arrays, meta))


def test_an_authenticated_payload_checks_its_graph_when_first_used():
    # A signed container's signature covers the graph: loading defers decoding it (the
    # function runs from its vouched-for plan), and the checks run at the first use.
    fn = get_backend("c")(kiln.trace(lambda x: x * 2.0, kiln.ones(3)), None)
    arrays, meta = _open(fn.serialize())
    obj = json.loads(meta["kiln.graph_module"])
    obj["graph"] = json.loads(json.dumps(obj["graph"]).replace("2.0", "3.0"))
    obj["sha256"] = canonical.digest({k: v for k, v in obj.items() if k != "sha256"})
    meta["kiln.graph_module"] = canonical.dumps(obj)
    loaded = deserialize(_close(arrays, meta), authenticated=True)
    assert loaded(kiln.ones(3))[0].tolist() == [2.0, 2.0, 2.0]  # the compiled plan runs
    for _ in range(2):  # refused at every use, not once
        with pytest.raises(SerializationError, match="differs from the one compiled"):
            _ = loaded.graph
    good = deserialize(fn.serialize(), authenticated=True)
    assert good._graph is None  # not decoded yet
    assert good.graph.nodes[-1].name == fn.graph.nodes[-1].name
    assert (good.num_inputs, good.num_outputs) == (1, 1)


@pytest.mark.parametrize("authenticated", [False, True])
def test_a_constant_of_another_shape_than_its_plan_is_refused_at_load(authenticated):
    lin = kiln.nn.Linear(2, 3)
    fn = get_backend("c")(kiln.trace(lin, kiln.ones(1, 2)), None)
    arrays, meta = _open(fn.serialize())
    key = next(k for k in arrays if k.startswith("const:"))
    arrays[key] = np.zeros((7,), arrays[key].dtype)
    with pytest.raises(SerializationError, match="constant"):
        deserialize(_close(arrays, meta), authenticated=authenticated)


def test_the_entry_point_checks_the_sizes_it_is_given():
    _, fn = _c_artifact()
    ptrs = (ctypes.c_void_p * 1)()
    syms = (ctypes.c_int64 * 1)()
    assert fn._run(ptrs, syms, None, 1, 0) == -1  # too few buffers: refused, nothing read
    assert fn._run(ptrs, syms, None, fn.nbuf, 3) == -1
    gm = kiln.trace(lambda x: x * 2.0, kiln.ones(4, 2), dynamic={"x": {0: "B"}})
    dyn = get_backend("c")(gm, None)
    lo = dyn.plan["symbols"][0]["min"]
    syms[0] = lo - 1
    assert dyn._run((ctypes.c_void_p * dyn.nbuf)(), syms, None, dyn.nbuf, 1) == -1


# 3. Code injection through node names ---------------------------------------------------

def test_node_name_injection_is_refused(tmp_path):
    gm = kiln.trace(lambda x: x.relu(), kiln.ones(2))
    obj = json.loads(gm.to_json())
    marker = tmp_path / "pwned"
    evil = f"globals()[__import__('os').system('touch {marker}') or 'relu']"
    text = json.dumps(obj).replace('"relu"', json.dumps(evil)).replace(
        f'"target": {json.dumps(evil)}', '"target": "relu"')
    obj = json.loads(text)
    obj["sha256"] = canonical.digest({k: v for k, v in obj.items() if k != "sha256"})
    with pytest.raises(SerializationError, match="Python identifier"):
        GraphModule.from_json(canonical.dumps(obj))
    assert not marker.exists()


def test_code_printing_refuses_unchecked_names():
    gm = kiln.trace(lambda x: x.relu(), kiln.ones(2))
    gm.graph.nodes[1].name = "__import__('os')"
    with pytest.raises(KilnError, match="cannot print the graph as code"):
        _ = gm.code
    with pytest.raises(KilnError, match="not a plain identifier"):
        get_backend("c")(gm, None)


# 4. Graph edits load silently -----------------------------------------------------------

def test_graph_edits_fail_the_whole_json_digest():
    gm = kiln.trace(lambda x: x.relu(), kiln.ones(2))
    edited = gm.to_json().replace('"target":"relu"', '"target":"sigmoid"')
    assert edited != gm.to_json()
    with pytest.raises(SerializationError, match="sha256"):
        GraphModule.from_json(edited)


def test_constant_node_without_its_constant_is_refused_at_load():
    lin = kiln.nn.Linear(2, 2)
    gm = kiln.trace(lin, kiln.ones(1, 2))
    obj = json.loads(gm.to_json())
    key = next(iter(obj["constants"]))
    del obj["constants"][key]
    obj["sha256"] = canonical.digest({k: v for k, v in obj.items() if k != "sha256"})
    with pytest.raises(SerializationError, match="does not list"):
        GraphModule.from_json(canonical.dumps(obj), gm.constants)


# 5. The on-disk cache is trusted blindly ------------------------------------------------

def test_replaced_optimizer_library_in_the_cache_never_runs(tmp_path):
    code = ("import kiln\nw = kiln.nn.Parameter(kiln.ones(3))\n"
            "opt = kiln.optim.Adam([w], lr=0.5, fused=True)\nw.grad = kiln.ones(3)\n"
            "opt.step()\nprint(w.tolist())\n")
    env = dict(os.environ, KILN_CACHE_DIR=str(tmp_path / "cache"), KILN_DEBUG="1")
    env.pop("KILN_CACHE_SECRET", None)
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    (entry,) = (tmp_path / "cache" / "optim").glob("*.so")
    marker = tmp_path / "constructor-ran"
    evil = _evil_library(marker)
    blob = entry.read_bytes()
    entry.write_bytes(blob[:40] + evil)  # the signature kept, the library replaced
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout and not marker.exists()
    assert "fails its signature check" in again.stderr


def test_cache_entries_are_refused_when_signed_under_another_key(monkeypatch, tmp_path):
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("KILN_CACHE_SECRET", "one fleet")
    path = cachedir.cache_path("s", "entry")
    cachedir.store(path, b"code")
    assert cachedir.load(path) == b"code"
    monkeypatch.setenv("KILN_CACHE_SECRET", "another fleet")
    assert cachedir.load(path) is None


def test_cache_directory_of_others_or_world_writable_is_not_used(monkeypatch, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv("KILN_CACHE_DIR", str(shared))
    with pytest.warns(RuntimeWarning, match="lets group or others write"):
        assert cachedir.cache_path("s", "entry") is None
    assert cachedir.cache_path("s", "entry") is None  # warned once, still refused
    assert cachedir.directory_problem(shared) is not None


def test_cache_modes_under_umask_000(monkeypatch, tmp_path):
    monkeypatch.setenv("KILN_CACHE_DIR", str(tmp_path / "new" / "cache"))
    old = os.umask(0)
    try:
        path = cachedir.cache_path("section", "entry")
        cachedir.store(path, b"data")
        key = trust.key_source()
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "new" / "cache") == 0o700
    assert mode(path.parent) == 0o700 and mode(path) == 0o600
    assert key.endswith("secret.key") and mode(key) == 0o600


# 6. A full temp directory ---------------------------------------------------------------

def _no_space(*args, **kwargs):
    raise OSError(28, "No space left on device", "/tmp/kiln-c-x/kiln_graph.c")


def test_full_temp_directory_is_a_compile_error_and_leaves_nothing(monkeypatch, tmp_path):
    import pathlib
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(pathlib.Path, "write_text", _no_space)
    from kiln.backends.c.backend import clear_cache

    clear_cache()
    with pytest.raises(CompileError, match="ran out of disk space"):
        kiln.compile(lambda x: x.exp() * 3.0 - 1.0, backend="c")(kiln.ones(5))
    assert not list(tmp_path.glob("kiln-c-*"))


def test_fused_optimizer_reports_the_real_cause(monkeypatch, tmp_path):
    from kiln.optim import fused

    monkeypatch.setenv("KILN_CACHE_DIR", "0")
    monkeypatch.setattr(fused, "_lib", None)
    monkeypatch.setattr(fused, "_failures", {})
    monkeypatch.setattr(toolchain, "_run", lambda *a, **k: subprocess.CompletedProcess(
        a[0], 1, "", "fatal error: error writing to /tmp/cc.s: No space left on device"))
    w = kiln.nn.Parameter(kiln.ones(3))
    opt = kiln.optim.Adam([w], lr=0.1, fused=True)
    w.grad = kiln.ones(3)
    with pytest.raises(ToolchainError) as info:
        opt.step()
    assert "ran out of disk space" in str(info.value)
    assert "Install a C compiler" not in str(info.value)


def test_unknown_compile_errors_keep_being_kiln_errors():
    assert issubclass(UntrustedArtifactError, SerializationError)
    assert issubclass(CompileError, BackendError)
