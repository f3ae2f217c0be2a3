"""The built-in elements. Each is registered through the `parallax.elements` entry points
(see pyproject.toml), like any third-party element.

Layout: `_file.py` (filesrc, filesink; `FdReader`, `write_all`: the fd reading and
writing they share with `_fd.py`), `_fd.py` (fdsrc, fdsink: a file descriptor),
`_fake.py` (fakesrc, fakesink), `_signals.py` (`connect`/`emit`: handoff, new-sample, eos),
`_basic.py`
(identity, capsfilter, consolesink), `_tee.py`, `_queue.py`, `_app.py` (appsrc, appsink),
`_ipc.py` (ipcsink, ipcsrc: the shared-memory process link), `_procqueue.py`
(procqueue: the downstream part of a pipeline in a child process), `_tcp.py` + `_tcp_sink.py` +
`_tcp_src.py` (tcpserversink, tcpclientsrc, tcpclientsink, tcpserversrc: the STRM TCP link),
`_tls.py` (the TCP link's TLS: the tls-* properties, SSL contexts and handshakes),
`_cuda.py` (cudaupload, cudadownload: buffers in CUDA device memory), `_cuda_caps.py`
(`memory=cuda` caps, `cuda_memory(buf)`: a buffer's GPU owner), `_cuda_staging.py`
(pinned staging ring, threaded host copies), `_ipc_cuda.py` (GPU buffers over the
shared-memory link). `CudaMemory` and `CudaMemoryError` live in `parallax.gpu`, and are
re-exported here as before.
"""

from parallax.gpu import CudaMemory as CudaMemory
from parallax.gpu import CudaMemoryError as CudaMemoryError

from ._app import AppSink as AppSink
from ._app import AppSrc as AppSrc
from ._basic import CapsFilter as CapsFilter
from ._basic import ConsoleSink as ConsoleSink
from ._basic import Identity as Identity
from ._cuda import CudaDownload as CudaDownload
from ._cuda import CudaUpload as CudaUpload
from ._cuda_caps import cuda_memory as cuda_memory
from ._fake import FakeSink as FakeSink
from ._fake import FakeSrc as FakeSrc
from ._fake import FillType as FillType
from ._fake import SizeType as SizeType
from ._fd import FdSink as FdSink
from ._fd import FdSrc as FdSrc
from ._file import FileSink as FileSink
from ._file import FileSrc as FileSrc
from ._ipc import IpcSink as IpcSink
from ._ipc import IpcSrc as IpcSrc
from ._procqueue import ProcQueue as ProcQueue
from ._queue import Leaky as Leaky
from ._queue import Queue as Queue
from ._tcp_sink import TcpClientSink as TcpClientSink
from ._tcp_sink import TcpServerSink as TcpServerSink
from ._tcp_src import TcpClientSrc as TcpClientSrc
from ._tcp_src import TcpServerSrc as TcpServerSrc
from ._tee import Tee as Tee

__all__ = [
    "AppSink",
    "AppSrc",
    "CapsFilter",
    "ConsoleSink",
    "CudaDownload",
    "CudaMemory",
    "CudaMemoryError",
    "CudaUpload",
    "FakeSink",
    "FakeSrc",
    "FdSink",
    "FdSrc",
    "FileSink",
    "FileSrc",
    "FillType",
    "Identity",
    "IpcSink",
    "IpcSrc",
    "Leaky",
    "ProcQueue",
    "Queue",
    "SizeType",
    "TcpClientSink",
    "TcpClientSrc",
    "TcpServerSink",
    "TcpServerSrc",
    "Tee",
    "cuda_memory",
]

for _name in __all__:
    if globals()[_name].__module__.startswith("parallax.elements."):  # not the re-exports
        globals()[_name].__module__ = __name__
