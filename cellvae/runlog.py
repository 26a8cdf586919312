"""Send a Snakemake job's output and its error to the rule's log file."""

from __future__ import annotations

import contextlib
import traceback


@contextlib.contextmanager
def logged(path: str):
    """Redirect stdout/stderr to path; log an exception's traceback and its one-line message last, then re-raise."""
    with open(path, "a", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            yield log
        except BaseException as error:
            traceback.print_exc(file=log)
            log.write(f"ERROR: {error}\n")
            raise
