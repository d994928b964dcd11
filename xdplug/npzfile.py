"""``.npz`` archives: written so that a failed write fails once, read back header first.

``np.savez`` leaves its ``ZipFile`` open when a write fails (a full disk): the
caller gets the ``OSError``, and later the garbage collector closes the archive,
fails again and prints an "Exception ignored in ZipFile.__del__" traceback after
the error message. :func:`write_npz` closes the archive whatever happens.

``np.load`` allocates the array an ``.npy`` header declares before it reads any
data, so an edited header allocates gigabytes before the short read fails.
:func:`declared_arrays` reads the headers alone and checks each declared size
against what the archive holds.
"""

from __future__ import annotations

import math
import zipfile

import numpy as np


def write_npz(file, arrays: dict, compress: bool = False) -> None:
    """``np.savez``/``np.savez_compressed`` of ``arrays`` into ``file`` (a path or a binary file),
    the archive closed even when a write fails (so no second error surfaces later)."""
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    archive = zipfile.ZipFile(file, mode="w", compression=compression, allowZip64=True)
    try:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asanyarray(value), allow_pickle=False)
    finally:
        archive.close()  # sets archive.fp to None even when it fails: nothing is left for __del__


def declared_arrays(file) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's shape and dtype as its header declares them, nothing loaded.

    Raises ValueError naming the array when a member is not an ``.npy`` array, holds
    Python objects, or declares more (or fewer) bytes than the archive holds for it;
    zip and format errors of a damaged archive propagate as they are.
    """
    out = {}
    with zipfile.ZipFile(file) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"member {info.filename!r} is not an .npy array")
            name = info.filename[:-4]
            with archive.open(info) as handle:
                major, _ = np.lib.format.read_magic(handle)
                read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(handle)
                header = handle.tell()
            if dtype.hasobject:
                raise ValueError(f"{name}: an array of Python objects")
            declared = math.prod(shape) * dtype.itemsize
            if header + declared != info.file_size:
                raise ValueError(f"{name}: its header declares shape {tuple(shape)} ({declared:,} bytes of {dtype}) "
                                 f"but the archive holds {info.file_size - header:,} bytes for it")
            out[name] = (tuple(shape), dtype)
    return out
