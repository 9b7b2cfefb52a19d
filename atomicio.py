"""Atomic file writes: a temp file in the destination's folder, then os.replace.

A crash or a kill mid-write leaves the old file (or none), never half of a new one.
"""
import os
import tempfile


def atomic_write(path, write, mode='wb'):
    """Call write(f) on a temp file beside `path`, then rename it over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp_', suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_torch_save(obj, path):
    import torch
    return atomic_write(path, lambda f: torch.save(obj, f))
