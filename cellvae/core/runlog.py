"""Send a Snakemake job's output and its error to the rule's log file."""

from __future__ import annotations

import contextlib
import traceback

from cellvae.core.native_logs import quiet_native_logs, verbose_from_environment


@contextlib.contextmanager
def logged(path: str):
    """Redirect stdout/stderr to path; log an exception's traceback and its one-line message last, then re-raise.
    TensorFlow's native start-up chatter is dropped unless CELLVAE_VERBOSE=1 (cellvae.core.native_logs)."""
    with (
        quiet_native_logs(enabled=not verbose_from_environment()),
        open(path, "a", buffering=1) as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        try:
            yield log
        except BaseException as error:
            traceback.print_exc(file=log)
            log.write(f"ERROR: {error}\n")
            raise
