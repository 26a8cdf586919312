"""TensorFlow's native start-up chatter (absl's pre-init warning, oneDNN and CPU-feature notices, C++ INFO and
WARNING lines) kept out of the terminal and the job logs; everything else written to stderr passes through.

The native code writes to file descriptor 2 directly, past Python's sys.stderr, so the filter sits on the file
descriptor: a pipe whose reader drops the chatter. `cellvae --verbose ...` and CELLVAE_VERBOSE=1 (workflow jobs)
turn it off.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

VERBOSE_VARIABLE = "CELLVAE_VERBOSE"
CHATTER = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]"  # absl INFO / WARNING lines of the C++ runtime
    rb"|E\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] oneDNN supports"  # a notice logged as an error
    rb"|To enable the following instructions:)"
)


def verbose_from_environment() -> bool:
    return os.environ.get(VERBOSE_VARIABLE, "") not in ("", "0")


@contextlib.contextmanager
def quiet_native_logs(enabled: bool = True):
    """While inside, lines written to file descriptor 2 that match CHATTER are dropped (enabled), the rest kept."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    kept = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def pump():
        with os.fdopen(read, "rb") as pipe:
            for line in pipe:
                if not CHATTER.match(line):
                    os.write(kept, line)

    reader = threading.Thread(target=pump, name="quiet-native-logs", daemon=True)
    reader.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(kept, 2)  # the pipe's last writer closes: the reader drains it and ends
        reader.join(timeout=5)
        os.close(kept)
