"""Links: how a buffer crosses a boundary (another thread, process or machine).

Layout:
    _frame.py   the STRM frame format (pure): layout, limits, `encode_head`, `FrameError`
    _frame_decoder.py  `FrameDecoder`: the incremental STRM stream parser (pure)
    the shared-memory process link (docs/links.md), one concept a module:
    _shm.py        the link's plan, and `Subscriber`
    _publisher.py  `Publisher`
    _leaky.py      leaky publishing: the rule for a subscriber that holds too much
    _loan.py       `Loan`: a publisher's slot on loan, to fill and send (was `Sample`)
    _received.py   a received buffer's memory owner, and its release
    _peer.py       `Peer`: the publisher's side of one subscriber
    _peer_table.py `PeerTable`: the subscribers as the I/O thread sees them (a base of Publisher)
    _serve.py      `IoThread`: the publisher's I/O thread
    _service.py    service names: the address, SO_PEERCRED trust, who holds a name
    _hello.py      HELLO and BYE, the socket's two messages (pure)
    _ring.py       the shared-memory rings of one subscriber, and their memory ordering
    _wake.py       spinning, sleeping, and waking a sleeping peer
    _ray.py     the Ray link: `RayLink` (a pipeline stage in a Ray actor), `LinkState`
    _ray_actor.py  `StageActor`: the actor side of a RayLink (what Ray runs on a node)
    _ray_src.py    `raysrc`: the stage's internal source, fed by the actor (docs/ray.md)

The TCP elements that drive the codec (`tcpserversink`, `tcpclientsrc`, `tcpclientsink`,
`tcpserversrc`) live in `parallax.elements`; docs/wire.md has the byte layout.
"""

from ._frame import CLOSED as CLOSED
from ._frame import DEFAULT_MAX_CAPS as DEFAULT_MAX_CAPS
from ._frame import DEFAULT_MAX_LENGTH as DEFAULT_MAX_LENGTH
from ._frame import FAST_CRC as FAST_CRC
from ._frame import FLAG_EOS as FLAG_EOS
from ._frame import HEADER as HEADER
from ._frame import MAGIC as MAGIC
from ._frame import MAX_CAPS as MAX_CAPS
from ._frame import META as META
from ._frame import NEED_DATA as NEED_DATA
from ._frame import PREFIX as PREFIX
from ._frame import VERSION as VERSION
from ._frame import DeferredCrc as DeferredCrc
from ._frame import FrameEnd as FrameEnd
from ._frame import FrameError as FrameError
from ._frame import FrameHeader as FrameHeader
from ._frame import FrameStart as FrameStart
from ._frame import PayloadData as PayloadData
from ._frame import crc32 as crc32
from ._frame import encode_eos as encode_eos
from ._frame import encode_frame as encode_frame
from ._frame import encode_head as encode_head
from ._frame import parse_header as parse_header
from ._frame_decoder import FrameDecoder as FrameDecoder
from ._loan import Loan as Loan
from ._publisher import Publisher as Publisher
from ._ray import LinkState as LinkState
from ._ray import RayLink as RayLink
from ._service import parse_uids as parse_uids
from ._shm import Subscriber as Subscriber

Sample = Loan
"""The name `Loan` had before issue 9 (GStreamer's *sample* is a buffer with its caps)."""

__all__ = [
    "CLOSED",
    "DEFAULT_MAX_CAPS",
    "DEFAULT_MAX_LENGTH",
    "FAST_CRC",
    "FLAG_EOS",
    "HEADER",
    "MAGIC",
    "MAX_CAPS",
    "META",
    "NEED_DATA",
    "PREFIX",
    "VERSION",
    "DeferredCrc",
    "FrameDecoder",
    "FrameEnd",
    "FrameError",
    "FrameHeader",
    "FrameStart",
    "LinkState",
    "Loan",
    "PayloadData",
    "Publisher",
    "RayLink",
    "Sample",
    "Subscriber",
    "crc32",
    "encode_eos",
    "encode_frame",
    "encode_head",
    "parse_header",
    "parse_uids",
]

for _name in (
    "DeferredCrc",
    "FrameDecoder",
    "FrameEnd",
    "FrameError",
    "FrameHeader",
    "FrameStart",
    "LinkState",
    "Loan",
    "PayloadData",
    "Publisher",
    "RayLink",
    "Subscriber",
    "encode_eos",
    "encode_frame",
    "encode_head",
    "parse_header",
    "parse_uids",
):
    globals()[_name].__module__ = __name__
