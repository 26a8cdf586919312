"""TensorFlow's native start-up chatter is dropped from stderr; other native and Python output passes through."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import os, sys
from cellvae.core.native_logs import quiet_native_logs, verbose_from_environment
with quiet_native_logs(enabled=not verbose_from_environment()):
    {body}
    os.write(2, b"E0000 00:00:1.5 42 file.cc:7] a real native error\\n")
    print("a Python warning", file=sys.stderr)
print("after", file=sys.stderr)
"""
CHATTER = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    b"I0000 00:00:1796305248.320989   25378 port.cc:153] oneDNN custom operations are on.\n"
    b"E0000 00:00:1796303667.092363   10789 util.cc:131] oneDNN supports DT_UINT8 only on AVX-512.\n"
    b"To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow.\n"
)


def run(body: str, verbose: bool) -> str:
    environment = {**os.environ, "CELLVAE_VERBOSE": "1" if verbose else "0"}
    script = SCRIPT.format(body=body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment).stderr


def test_chatter_lines_are_dropped_and_the_rest_kept_in_order():
    stderr = run(f"os.write(2, {CHATTER!r})", verbose=False)
    assert stderr.splitlines() == ["E0000 00:00:1.5 42 file.cc:7] a real native error", "a Python warning", "after"]
    assert "oneDNN" in run(f"os.write(2, {CHATTER!r})", verbose=True)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_tensorflow_starts_quietly_unless_verbose():
    body = "import tensorflow as tf; tf.constant(1) + 1"
    assert "absl" in run(body, verbose=True)
    quiet = run(body, verbose=False)
    assert "absl" not in quiet and "I0000" not in quiet and "a Python warning" in quiet
