"""The TensorRT runtime calls of our backend exist in a real TensorRT runtime (``tensorrt-lean``), no GPU needed.

Two checks: every call declared in ``RUNTIME_API`` exists on the lean runtime's
classes, and the backend's source calls nothing on TensorRT objects beyond
that declaration (so the declaration cannot drift from the code).
"""

from __future__ import annotations

import ast
import inspect

import pytest

from sorter.detect import tensorrt_backend
from sorter.detect.tensorrt_backend import RUNTIME_API

#: attribute of TrtEngine -> the TensorRT class it holds
_HOLDERS = {"_engine": "ICudaEngine", "_context": "IExecutionContext", "_runtime": "Runtime"}


def _used_api() -> dict[str, set[str]]:
    tree = ast.parse(inspect.getsource(tensorrt_backend.TrtEngine))
    used: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        v = node.value
        if isinstance(v, ast.Attribute) and isinstance(v.value, ast.Name) and v.value.id == "self" and v.attr in _HOLDERS:
            used.setdefault(_HOLDERS[v.attr], set()).add(node.attr)
        elif isinstance(v, ast.Name) and v.id == "trt":
            used.setdefault("module", set()).add(node.attr)
        elif isinstance(v, ast.Attribute) and isinstance(v.value, ast.Name) and v.value.id == "trt":
            used.setdefault(v.attr, set()).add(node.attr)
    return used


def test_backend_calls_only_what_it_declares() -> None:
    used = _used_api()
    assert used, "the AST walk found no TensorRT calls; has TrtEngine changed shape?"
    for obj, names in used.items():
        assert obj in RUNTIME_API, f"TrtEngine uses {obj}.{sorted(names)} but RUNTIME_API does not declare {obj}"
        undeclared = names - set(RUNTIME_API[obj])
        assert not undeclared, f"TrtEngine calls {obj}.{sorted(undeclared)} that RUNTIME_API does not declare"
    assert {"execute_async_v3", "set_tensor_address"} <= used["IExecutionContext"]


def test_declared_runtime_api_exists_in_tensorrt_lean() -> None:
    lean = pytest.importorskip("tensorrt_lean", reason="pip install 'sorter[trt-check]' (tensorrt-lean-cu13)")
    missing = []
    for obj, names in RUNTIME_API.items():
        target = lean if obj == "module" else getattr(lean, obj, None)
        if target is None:
            missing.append(obj)
            continue
        missing += [f"{obj}.{n}" for n in names if not hasattr(target, n)]
    assert not missing, f"tensorrt_lean {lean.__version__} lacks {missing}"
