"""Fused CPU loops of the ReLU GRU: the C++ source ``csrc/relu_gru.cpp``, compiled on
first use with :func:`torch.utils.cpp_extension.load` and loaded as the operators
``torch.ops.instructnet_relu_gru.{forward,backward}``.

* Compiled once per source × compiler flags × torch × Python × CPU (``-march=native``,
  so a build is never loaded on a CPU with other instruction sets): the build lives in
  torch's extensions directory (``TORCH_EXTENSIONS_DIR``, default
  ``~/.cache/torch_extensions``) under ``instructnet_relu_gru_<hash>`` and later
  processes only load it (~0.1 s).
* Concurrent processes (parallel Snakemake jobs) serialise on an ``fcntl`` lock next to
  the build directory: one compiles (~10 s), the others wait and load its result. The
  lock dies with its process, so a job killed mid-compilation cannot block later ones
  (torch's own lock file, which would, is removed under this lock).
* Built with OpenMP (``-fopenmp``), so that the loops' row chunks run on torch's
  intra-op threads. A compiler without OpenMP support (e.g. Apple's clang) gets a
  second build without it: the fused loops then run on one thread, with one warning.
* Any other failure (no compiler, no write access, a compile error, a non-POSIX system)
  gives one warning and :func:`available` returns False: callers use the pure-torch
  path.
* ``INSTRUCTNET_FUSED_GRU=0`` (or false/no/off) disables the fused loops without
  compiling anything; it is read at every call.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import warnings
from pathlib import Path

import torch

__all__ = ["ENV_VAR", "available", "enabled", "ops"]

ENV_VAR = "INSTRUCTNET_FUSED_GRU"
SOURCE = Path(__file__).with_name("csrc") / "relu_gru.cpp"
CFLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math"]
if platform.machine().lower() in ("x86_64", "amd64"):  # an x86-only option
    CFLAGS.append("-mprefer-vector-width=512")  # AVX-512 CPUs: vectorise 16 floats wide
# at::parallel_for is a header template that only spreads work over threads when the
# including file is compiled with OpenMP (at run time torch's own OpenMP runtime is used)
OPENMP_FLAGS = ["-fopenmp"]
_OPS_NAMESPACE = "instructnet_relu_gru"

_lock = threading.Lock()
_state: bool | None = None  # None: not tried yet; True: loaded; False: failed
_error: str | None = None


def enabled() -> bool:
    """False when the environment variable ``INSTRUCTNET_FUSED_GRU`` switches it off."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def available() -> bool:
    """Whether the fused operators can be used (compiles/loads them on first call)."""
    global _state, _error
    if not enabled():
        return False
    if _state is None:
        with _lock:
            if _state is None:
                try:
                    _load()
                    _state = True
                except Exception as exc:  # any failure: fall back, once, with one warning
                    _error = f"{type(exc).__name__}: {exc}"
                    _state = False
                    warnings.warn(
                        "instructnet: the fused C++ ReLU-GRU loops could not be built or "
                        f"loaded ({_first_error_line(exc)}); using the pure-torch "
                        f"recurrence (same results, slower on CPU). Set {ENV_VAR}=0 to "
                        "silence this.", RuntimeWarning, stacklevel=3)
    return _state


def ops():
    """The operator namespace (call :func:`available` first)."""
    return getattr(torch.ops, _OPS_NAMESPACE)


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU's model and instruction-set flags."""
    parts = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key = line.split(":", 1)[0].strip()
                if key in ("flags", "model name", "Features", "CPU part"):
                    parts.append(line.strip())
                if key in ("flags", "Features"):
                    break  # the first core's lines are enough
    except OSError:
        pass
    return "\n".join(parts)


def _build_name(openmp: bool = True) -> str:
    flags = CFLAGS + (OPENMP_FLAGS if openmp else [])
    h = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(flags).encode(), torch.__version__.encode(),
                 sys.version.encode(), _cpu_signature().encode()):
        h.update(part)
        h.update(b"\0")
    return f"{_OPS_NAMESPACE}_{h.hexdigest()[:16]}"


def _first_error_line(exc: BaseException) -> str:
    lines = f"{type(exc).__name__}: {exc}".splitlines() or [type(exc).__name__]
    return next((ln for ln in lines if "error:" in ln), lines[0]).strip()[:300]


def _load() -> None:
    """Build (or load the cached build) with OpenMP; without it if that fails."""
    try:
        _build(openmp=True)
    except Exception as exc:
        _build(openmp=False)  # raises in turn if the compiler cannot build it at all
        warnings.warn(
            "instructnet: the fused C++ ReLU-GRU loops could not be built with OpenMP "
            f"({_first_error_line(exc)}); built without it, so their row chunks run on "
            "one thread.", RuntimeWarning, stacklevel=4)


def _build(openmp: bool) -> None:
    import fcntl  # POSIX only: elsewhere the ImportError means "fall back"

    from torch.utils import cpp_extension

    name = _build_name(openmp)
    flags = OPENMP_FLAGS if openmp else []
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    build_dir = Path(root) / name
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes or we die
        try:
            stale = build_dir / "lock"  # torch's FileBaton, left behind by a killed build
            if stale.exists():
                stale.unlink()
            cpp_extension.load(  # fresh lists: torch appends to extra_ldflags in place
                name=name, sources=[str(SOURCE)], extra_cflags=CFLAGS + flags,
                extra_ldflags=list(flags), build_directory=str(build_dir),
                is_python_module=False, verbose=False,
            )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    ops().forward  # noqa: B018 - raises if the library registered nothing
    ops().backward  # noqa: B018
