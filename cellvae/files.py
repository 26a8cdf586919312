"""Writing files so that a reader never sees half of one."""

import os
from pathlib import Path


def atomic_write(path, write) -> None:
    """Call write(temporary_path) next to path, then rename it over path (the temporary goes on failure)."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp{os.getpid()}{''.join(path.suffixes)}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
