"""A failure on one rank ends the whole job, with that rank's error printed.

Collectives wait for every rank: a rank that raises and leaves fit would leave the others
waiting in an allreduce forever. So under a DataParallel of several processes (with
abort_on_error, the default), an exception escaping fit / evaluate / predict / *_on_batch, or
reaching the top of the script, is printed to stderr with the rank that raised it, and the job is
ended with MPI_Abort (mpiexec then stops every process and exits non-zero). This is what
``python -m mpi4py script.py`` does for a whole script; here it holds without it.
"""

from __future__ import annotations

import functools
import sys
import traceback

from . import context


def _aborting():
    """The DataParallel that ends the job on an error (several processes, abort_on_error), or
    None."""
    dp = context.active()
    return dp if dp is not None and dp.size > 1 and dp.abort_on_error else None


def report_and_abort(dp, error, where):
    """Print the error (with its traceback) for this rank, then end the job."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        sys.stderr.write(f"\nshenjing.distribution: rank {dp.rank} of {dp.size} failed in "
                         f"{where}; ending the job (MPI_Abort).\n{text}")
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        dp.communicator.abort(1)


def guarded(where):
    """Decorator for Model methods that run collectives (see the module docstring)."""
    def decorate(method):
        @functools.wraps(method)
        def run(self, *args, **kwargs):
            dp = _aborting()
            if dp is None:
                return method(self, *args, **kwargs)
            try:
                return method(self, *args, **kwargs)
            except BaseException as error:
                report_and_abort(dp, error, f"{type(self).__name__}.{where}")
                raise
        return run
    return decorate


def install_excepthook(dp):
    """Abort the job on an exception nobody caught (once per process)."""
    previous = sys.excepthook
    if getattr(previous, "_shenjing_abort", False):
        return

    def hook(kind, error, tb):
        dp = _aborting()
        if dp is None:
            return previous(kind, error, tb)
        return report_and_abort(dp, error.with_traceback(tb), "the script")

    hook._shenjing_abort = True
    sys.excepthook = hook
