"""Tracing without torch's per-op Python stack: the largest cost of a count, switched off while we trace.

For every op it records, torch's tracer calls `tracer::recordSourceLocation(node)`, which the Python
bindings point at a function that walks the whole Python call stack and formats every frame into a string
(file, line, function), to print in a graph's comments. A count never reads it, and on a small network it
costs more than the forward pass itself: 0.36 ms per op per 100 frames; 60% of the trace of
mobilenetv4_conv_small (1 thread). torch exposes the setter, `tracer::setRecordSourceLocation`, but no
getter and no Python binding, so:

- the setter is called through ctypes (an exported C++ symbol of libtorch_cpu);
- the recorder in use is read from its variable, `tracer::record_source_location`, and torch's own
  do-nothing recorder, `tracer::defaultRecordSourceLocation` (what torch uses when no Python is present),
  is found: both are local symbols, located in libtorch_cpu's ELF symbol table, relocated by the
  difference between the exported setter's address and its table entry;
- the recorder read is put back on exit, whatever happens inside.

Where any of that is missing (not Linux, a stripped or static build, a renamed symbol), nothing is switched
and the trace records source locations as before: the same graph and count, only slower. The switch is
process-wide for the time of a count: another thread tracing at that moment gets no source locations.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

_SETTER = "_ZN5torch3jit6tracer23setRecordSourceLocationEPFvPNS0_4NodeEE"
_VARIABLE = "_ZN5torch3jit6tracerL22record_source_locationE"
_DEFAULT = "_ZN5torch3jit6tracerL27defaultRecordSourceLocationEPNS0_4NodeE"
_SHT_SYMTAB = 2
_SYMBOL = np.dtype(
    [("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"), ("value", "<u8"), ("size", "<u8")]
)


@dataclass(frozen=True)
class _Recorder:
    setter: ctypes._CFuncPtr  # type: ignore[name-defined]
    variable: int  # address of the std::atomic holding the recorder in use
    default: int  # address of torch's do-nothing recorder


def _symbol_values(path: str, names: list[str]) -> dict[str, int]:
    """st_value of each of `names` in the ELF file's .symtab (local symbols included), by exact name."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as image:
        if image[:6] != b"\x7fELF\x02\x01":  # 64-bit little-endian only
            return {}
        (shoff,) = struct.unpack_from("<Q", image, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", image, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", image, shoff + i * shentsize) for i in range(shnum)]
        symtab = next((s for s in sections if s[1] == _SHT_SYMTAB), None)
        if symtab is None:
            return {}
        strtab = sections[symtab[6]]
        start, end = strtab[4], strtab[4] + strtab[5]
        symbols = np.frombuffer(image, dtype=_SYMBOL, count=symtab[5] // _SYMBOL.itemsize, offset=symtab[4])
        values = {}
        for name in names:
            at = image.find(b"\0" + name.encode() + b"\0", start, end)
            if at < 0:
                continue
            hits = np.flatnonzero(symbols["name"] == at + 1 - start)
            if len(hits) == 1:
                values[name] = int(symbols["value"][hits[0]])
        del symbols  # the array views the map, which cannot close while it lives
        return values


@functools.cache
def _recorder() -> _Recorder | None:
    """torch's source-location recorder, found once per process; None where it cannot be found."""
    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        library = ctypes.CDLL(path)  # already loaded by torch: the same handle, nothing new loaded
        setter = getattr(library, _SETTER)
        values = _symbol_values(path, [_SETTER, _VARIABLE, _DEFAULT])
    except (OSError, AttributeError, ValueError, struct.error):
        return None
    if len(values) != 3:
        return None
    setter.argtypes, setter.restype = [ctypes.c_void_p], None
    address = ctypes.cast(setter, ctypes.c_void_p).value
    if address is None:
        return None
    base = address - values[_SETTER]  # where the library was loaded
    return _Recorder(setter, base + values[_VARIABLE], base + values[_DEFAULT])


@contextlib.contextmanager
def no_source_locations() -> Iterator[None]:
    """Inside: torch's tracer records no Python source location per op (see the module's docstring)."""
    recorder = _recorder()
    if recorder is None:
        yield
        return
    in_use = ctypes.c_void_p.from_address(recorder.variable).value
    recorder.setter(recorder.default)
    try:
        yield
    finally:
        recorder.setter(in_use)
