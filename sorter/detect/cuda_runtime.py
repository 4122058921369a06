"""The few CUDA runtime calls the TensorRT backend needs, through ctypes (no cuda-python, no torch).

Device and pinned host buffers, a stream, async copies, and CUDA graph
capture/launch. ``libcudart`` is searched where CUDA toolkits, JetPack and
the ``nvidia-cuda-runtime`` wheels put it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sorter.errors import DeviceNotConnectedError

_MEMCPY_H2D = 1
_MEMCPY_D2H = 2
_CAPTURE_THREAD_LOCAL = 1
_ATTR_CC_MAJOR = 75
_ATTR_CC_MINOR = 76
_PROPS_BYTES = 4096  # cudaDeviceProp is ~1 KB; its first field is char name[256] in every CUDA version


def _candidates() -> list[str]:
    names = [ctypes.util.find_library("cudart") or ""]
    for v in ("13", "12", "11.0", ""):
        names.append(f"libcudart.so.{v}" if v else "libcudart.so")
    roots = [os.environ.get("CUDA_HOME", ""), "/usr/local/cuda", "/usr/local/cuda/targets/aarch64-linux"]
    for r in roots:
        if r:
            names += sorted(glob.glob(str(Path(r) / "lib64" / "libcudart.so*"))) + sorted(
                glob.glob(str(Path(r) / "lib" / "libcudart.so*"))
            )
    for sp in sys.path:
        names += sorted(glob.glob(str(Path(sp) / "nvidia" / "cuda_runtime" / "lib" / "libcudart.so*")))
        names += sorted(glob.glob(str(Path(sp) / "nvidia" / "cu*" / "lib" / "libcudart.so*")))
    return [n for n in dict.fromkeys(names) if n]


class CudaRuntime:
    """A loaded ``libcudart`` bound to one device.

    Raises:
        DeviceNotConnectedError: when no CUDA runtime library or no GPU is found.
    """

    def __init__(self, device: int = 0) -> None:
        lib = None
        for name in _candidates():
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if lib is None:
            raise DeviceNotConnectedError(
                "the CUDA runtime (libcudart) was not found; "
                "install the CUDA toolkit or JetPack, or use detector.type=onnxruntime"
            )
        self._lib = lib
        lib.cudaGetErrorString.restype = ctypes.c_char_p
        self.device = device
        self._check(lib.cudaSetDevice(ctypes.c_int(device)), f"cudaSetDevice({device})")

    def _check(self, status: int, what: str) -> None:
        if status != 0:
            msg = self._lib.cudaGetErrorString(ctypes.c_int(status)).decode(errors="replace")
            raise DeviceNotConnectedError(f"CUDA call {what} failed: {msg} (error {status})")

    # ------------------------------------------------------------------ device
    def device_name(self) -> str:
        """GPU product name."""
        buf = ctypes.create_string_buffer(_PROPS_BYTES)
        # CUDA 12+ exports the current layout as *_v2 (the plain name is a header macro there)
        fn = getattr(self._lib, "cudaGetDeviceProperties_v2", None) or self._lib.cudaGetDeviceProperties
        self._check(fn(buf, ctypes.c_int(self.device)), "cudaGetDeviceProperties")
        return buf.raw[:256].split(b"\0", 1)[0].decode(errors="replace")

    def compute_capability(self) -> str:
        """``"major.minor"``."""
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self._lib.cudaDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, self.device), "cudaDeviceGetAttribute")
        self._check(self._lib.cudaDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, self.device), "cudaDeviceGetAttribute")
        return f"{major.value}.{minor.value}"

    # ------------------------------------------------------------------ memory
    def malloc(self, nbytes: int) -> int:
        """Device allocation; returns the address."""
        ptr = ctypes.c_void_p()
        self._check(self._lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(nbytes)), f"cudaMalloc({nbytes})")
        return int(ptr.value or 0)

    def free(self, ptr: int) -> None:
        """Free a device allocation."""
        self._lib.cudaFree(ctypes.c_void_p(ptr))

    def pinned(self, shape: tuple[int, ...], dtype: npt.DTypeLike) -> tuple[npt.NDArray[np.generic], int]:
        """Page-locked host array (required for async copies captured in a graph); returns it and its address."""
        dt = np.dtype(dtype)
        nbytes = max(1, int(np.prod(shape)) * dt.itemsize)
        ptr = ctypes.c_void_p()
        self._check(self._lib.cudaMallocHost(ctypes.byref(ptr), ctypes.c_size_t(nbytes)), f"cudaMallocHost({nbytes})")
        addr = int(ptr.value or 0)
        buf = memoryview((ctypes.c_byte * nbytes).from_address(addr)).cast("B")
        return np.frombuffer(buf, dtype=dt, count=int(np.prod(shape))).reshape(shape), addr

    def free_pinned(self, ptr: int) -> None:
        """Free a pinned host allocation."""
        self._lib.cudaFreeHost(ctypes.c_void_p(ptr))

    def memcpy_h2d_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """Host -> device copy on ``stream``."""
        self._check(
            self._lib.cudaMemcpyAsync(
                ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes), _MEMCPY_H2D, ctypes.c_void_p(stream)
            ),
            "cudaMemcpyAsync(H2D)",
        )

    def memcpy_d2h_async(self, dst: int, src: int, nbytes: int, stream: int) -> None:
        """Device -> host copy on ``stream``."""
        self._check(
            self._lib.cudaMemcpyAsync(
                ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes), _MEMCPY_D2H, ctypes.c_void_p(stream)
            ),
            "cudaMemcpyAsync(D2H)",
        )

    # ------------------------------------------------------------------ streams and graphs
    def stream_create(self) -> int:
        """A new non-default stream."""
        s = ctypes.c_void_p()
        self._check(self._lib.cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
        return int(s.value or 0)

    def stream_synchronize(self, stream: int) -> None:
        """Wait for ``stream``."""
        self._check(self._lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")

    def stream_destroy(self, stream: int) -> None:
        """Destroy a stream."""
        self._lib.cudaStreamDestroy(ctypes.c_void_p(stream))

    def begin_capture(self, stream: int) -> None:
        """Start recording ``stream`` into a graph (thread-local capture mode)."""
        self._check(self._lib.cudaStreamBeginCapture(ctypes.c_void_p(stream), _CAPTURE_THREAD_LOCAL), "cudaStreamBeginCapture")

    def end_capture(self, stream: int) -> int:
        """Stop recording; returns an instantiated executable graph."""
        graph = ctypes.c_void_p()
        self._check(self._lib.cudaStreamEndCapture(ctypes.c_void_p(stream), ctypes.byref(graph)), "cudaStreamEndCapture")
        exe = ctypes.c_void_p()
        self._check(
            self._lib.cudaGraphInstantiateWithFlags(ctypes.byref(exe), graph, ctypes.c_ulonglong(0)),
            "cudaGraphInstantiateWithFlags",
        )
        self._lib.cudaGraphDestroy(graph)
        return int(exe.value or 0)

    def graph_launch(self, graph_exec: int, stream: int) -> None:
        """Replay an executable graph on ``stream``."""
        self._check(self._lib.cudaGraphLaunch(ctypes.c_void_p(graph_exec), ctypes.c_void_p(stream)), "cudaGraphLaunch")

    def graph_destroy(self, graph_exec: int) -> None:
        """Free an executable graph."""
        self._lib.cudaGraphExecDestroy(ctypes.c_void_p(graph_exec))
