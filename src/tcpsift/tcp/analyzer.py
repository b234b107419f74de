"""A sans-I/O TCP analyzer: packet-table batches in, TCP-analysis rows out.

    analyzer = tcpsift.tcp.Analyzer()
    for batch in tcpsift.scan(path).collect_batches():
        rows = analyzer.feed(batch)          # the `capture.tcp` rows of these frames
        done = analyzer.ended()              # streams whose state was freed since
    analyzer.finish()                        # the capture ended: every stream ends
    state = analyzer.save()                  # bytes; Analyzer.restore(state) continues

It does no I/O: the caller reads the packets (`tcpsift.scan`, slices of
`tcpsift.read().packets`, a queue, another task) and feeds consecutive rows of one
capture's packet table in frame order, in batches of any size. Each call returns the
TCP table's rows (`tcpsift.schema.TCP_COLUMNS`, keyed by `frame` and `file_id`) of the
frames it was given, computed by the same kernel as `capture.tcp`, whose single pass
in frame order keeps all it needs in its state: the rows are those of one call over the
whole capture, whatever the batches (tests/test_analyzer.py holds them equal on the
corpus, in batches of 1, 97 and 65,536 frames, and saved and restored between batches).

ICMP errors that quote a TCP header are analysed as tshark does only when `layers` (the
layer table rows of the batch's frames: `cap.layers`, or any table holding them) comes
with the packets. Without it (`scan()` has no layer table) their rows are null and a
quoted header that would open a stream does not, so later stream numbers shift; a
capture without ICMP errors about TCP is unaffected.

Eviction (bounded memory). Wireshark keeps every conversation for the whole capture;
this analyzer frees a conversation `grace` seconds (capture time, default 5) after it
ended with no packet since: ended is an RST from either side, or both sides' FINs
acknowledged. What stays is a tombstone (its address/port pair, stream number, first
time, client and the two initial sequence numbers, 64 bytes) until `remember` seconds
(default 60) after its last packet. A packet that finds the tombstone:

- a pure SYN with another initial sequence number starts a new stream flagged
  `reused_ports`, exactly as tshark does (the tombstone is all that takes);
- any other packet ("late") gets the conversation's stream number, relative sequence
  numbers and times back, but the rest of the state is new (verdicts, RTTs, bytes in
  flight, window scaling may differ from tshark's for it and the stream's later
  packets); `late_packets` counts them, and the stream is reported as ended again when
  it is evicted again.

After `remember` a packet on the pair starts a new stream (tshark: the old stream, or,
for a new SYN, a new stream with `reused_ports`), and every later stream number is one
higher than tshark's. A conversation that never ends (no FIN/RST) is kept, unless
`idle` is given: then any conversation quiet for `idle` seconds is freed the same way.
A conversation replaced by port reuse can no longer be reached and is freed at once in
either mode (no difference). `grace=None` never evicts: the state grows with the
capture, and the results are always `capture.tcp`'s. The defaults hold the results
equal to `capture.tcp`, and so to tshark, on every capture of the test corpus
(tests/test_analyzer.py).

Addresses are numbered by the analyzer (text -> id), ids no conversation or tombstone
uses any more are dropped, so they too follow the conversations held.

Saved state (`save()` -> bytes, `Analyzer.restore(bytes)`; no pickle), version 1, every
integer little-endian:

    magic     16 bytes   b"TCPSIFT-ANALYZER"
    version   u32        1
    sections  u32        the number of sections, then each section:
        name     u16 length + ASCII
        layout   u16 length + ASCII: "field:type,..." (NumPy type strings, e.g. "<u4",
                 "(6,)<u4") of its packed records
        rows     u64, then rows x the records' size bytes
    crc32     u32        zlib.crc32 of every byte before it

Sections of version 1: `scalars` (one row: stream count, rows so far, grace, remember
and idle in ns, whether freed streams are noted, the clock, the next sweep, late
packets, last frame fed),
`conversations` (every field of a conversation and its two flows, and per flow its
number of unacknowledged segments and the position of its last out-of-order insertion),
`segments` (the unacknowledged segments, flow by flow in list order), `tombstones`,
`ended` (streams not yet taken by `ended()`), `address_ids` and `address_lengths` /
`address_text` (the numbered addresses as UTF-8). The field lists are
`tcpsift.tcp._analysis.LAYOUT`; a state written with other fields is refused. Restore
checks the magic, the version, the checksum, the sections and their layouts, and then
that the structures are sound (stream numbers below the count, each address/port pair
once, segment counts and positions in range, addresses known): anything else raises a
ValueError saying which.
"""
from __future__ import annotations

import struct
import zlib
from typing import cast

import numpy as np
import polars as pl

from tcpsift.tcp import _analysis as K
from tcpsift.tcp.analysis import _inputs, _quoted_tcp, check_columns, output_table
from tcpsift.tcp.chunks import empty_outputs

__all__ = ["Analyzer"]

MAGIC = b"TCPSIFT-ANALYZER"
VERSION = 1
_NS = 1_000_000_000
_FIRST_COMPACTION = 4096            # addresses held before ids in no use are dropped


def _struct_dtypes(name: str, extra=()) -> tuple[np.dtype, np.dtype]:
    """A kernel struct's saved fields as they lie in memory, and packed little-endian
    (with `extra` fields after them)."""
    size, fields = K.LAYOUT[name]
    native = np.dtype({"names": [f[0] for f in fields], "formats": [f[3] for f in fields],
                       "offsets": [f[1] for f in fields], "itemsize": size})
    for fname, _off, fsize, _kind in fields:
        if native[fname].itemsize != fsize:       # the pyx table is wrong
            raise RuntimeError(f"kernel layout: {name}.{fname} is {fsize} bytes")
    return native, _packed([*((f[0], f[3]) for f in fields), *extra])


def _packed(fields) -> np.dtype:
    """Little-endian, no padding; a kind may have a shape first, "(6,)u4"."""
    def little(kind: str) -> str:
        shape, _, base = kind.rpartition(")")
        return f"{shape})<{base}" if shape else "<" + kind
    return np.dtype([(n, little(k)) for n, k in fields])


_FLOW_LISTS = [("segments1", "i4"), ("segments2", "i4"), ("finger1", "i4"), ("finger2", "i4")]
_CONV, _CONVERSATIONS = _struct_dtypes("conv", _FLOW_LISTS)
_SEG, _SEG_PACKED = _struct_dtypes("seg")
_TOMB, _TOMB_PACKED = _struct_dtypes("tomb")
_SECTIONS = {
    "scalars": _packed([(n, "i8") for n in (*K.SCALARS, "last_frame")]),
    "conversations": _CONVERSATIONS,
    "segments": _SEG_PACKED,
    "tombstones": _TOMB_PACKED,
    "ended": np.dtype("<u4"),
    "address_ids": np.dtype("<u4"),
    "address_lengths": np.dtype("<u2"),
    "address_text": np.dtype("u1"),
}


def _names(dtype: np.dtype) -> tuple[str, ...]:
    """The field names of a structured dtype (numpy's `names` is None for the others)."""
    return cast("tuple[str, ...]", dtype.names)


def _layout(dtype: np.dtype) -> str:
    if dtype.names is None:
        return dtype.str
    return ",".join(f"{n}:{_type_str(dtype[n])}" for n in dtype.names)


def _type_str(t: np.dtype) -> str:
    return f"{t.shape}{t.base.str}" if t.shape else t.str


def _seconds_to_ns(value: float | None, name: str) -> int:
    if value is None:
        return -1
    if not value >= 0:
        raise ValueError(f"{name} must be None or >= 0 seconds, not {value!r}")
    return int(round(value * _NS))


class Analyzer:
    """Wireshark 4.0's TCP analysis of one capture, fed its packet table in batches
    (see the module's documentation: what eviction changes, the saved state).

    grace: seconds (capture time) an ended conversation is kept after its last packet
        before its state is freed; None: never free (exactly `capture.tcp`, memory
        grows with the capture).
    remember: seconds after a freed conversation's last packet during which its
        tombstone gives a late packet its stream number; None: forever.
    idle: seconds after which a conversation with no packet is freed even if it never
        ended (half-open attempts of a SYN scan, a capture cut mid-connection); None:
        never (default).
    """

    def __init__(self, *, grace: float | None = 5.0, remember: float | None = 60.0,
                 idle: float | None = None):
        grace_ns = _seconds_to_ns(grace, "grace")
        remember_ns = _seconds_to_ns(remember, "remember")
        idle_ns = _seconds_to_ns(idle, "idle")
        if grace_ns < 0 and idle_ns >= 0:
            raise ValueError("idle needs eviction on (grace not None)")
        if grace_ns >= 0 and 0 <= remember_ns < max(grace_ns, idle_ns):
            raise ValueError("remember must be at least grace and idle")
        self._kernel = K.Analyzer(grace_ns, remember_ns, idle_ns)
        self._ids: dict[str, int] = {}
        self._next_id = 0
        self._compact_at = _FIRST_COMPACTION
        self._last_frame = 0
        # the last layer table seen and its quoted TCP headers
        self._quoted_cache: tuple[pl.DataFrame, pl.DataFrame] | None = None

    # --- analysis -----------------------------------------------------------------------

    def feed(self, packets: pl.DataFrame, layers: pl.DataFrame | None = None) -> pl.DataFrame:
        """The TCP-table rows of `packets`, the next rows of the packet table (at least
        the columns `tcpsift.tcp.INPUT_COLUMNS`, `file_id` too when there are several
        files); `layers`: layer-table rows holding those of these frames (for TCP
        headers quoted in ICMP errors; rows of other frames are ignored)."""
        check_columns(packets)
        n = packets.height
        if n == 0:
            return output_table(empty_outputs(0), packets)
        frames = packets["frame"]
        first, last = frames[0], frames[-1]
        if first <= self._last_frame:
            raise ValueError(f"frame {first} fed after frame {self._last_frame}: batches "
                             "must follow each other in frame order")
        quoted = self._quoted(layers)
        if quoted.height:
            quoted = quoted.filter(pl.col("frame").is_between(first, last))
        a = _inputs(packets, None, self._number, quoted)
        out = empty_outputs(n)
        self._kernel.feed(n, a, out)
        self._last_frame = last
        if len(self._ids) > self._compact_at:
            self._drop_unused_addresses()
        return output_table(out, packets)

    def _quoted(self, layers: pl.DataFrame | None) -> pl.DataFrame:
        """The TCP headers quoted in ICMP errors of a layer table: found once per table
        (the same table is usually given with every batch)."""
        if layers is None or layers.height == 0:
            return _quoted_tcp(None)
        if self._quoted_cache is None or self._quoted_cache[0] is not layers:
            self._quoted_cache = (layers, _quoted_tcp(layers))
        return self._quoted_cache[1]

    def ended(self) -> list[int]:
        """The streams whose state was freed since the last call, in the order they were
        freed: ended and quiet for `grace`, replaced by port reuse, or ended by finish().
        A late packet can bring a stream back (see the module's documentation)."""
        return self._kernel.take_ended().tolist()

    def finish(self) -> None:
        """The capture has ended: free every conversation (ended() then reports them,
        with or without eviction). Rows fed afterwards are analysed as late packets."""
        self._kernel.finish()

    @property
    def streams(self) -> int:
        """The number of streams so far (`tcp.stream` of the next new one)."""
        return self._kernel.streams

    @property
    def late_packets(self) -> int:
        """Packets that came after their conversation was freed (their analysis may
        differ from tshark's; 0 means the rows are exactly `capture.tcp`'s)."""
        return self._kernel.late_packets

    def sizes(self) -> dict:
        """What the state holds now: conversations, unacknowledged segments, tombstones,
        addresses, and `bytes`, the memory the state has allocated."""
        s = self._kernel.sizes()
        s["addresses"] = len(self._ids)
        s["bytes"] += sum(len(t) + 100 for t in self._ids)     # dict entry + str object
        return s

    def _number(self, texts) -> dict:
        """Ids for addresses, kept while a conversation or tombstone uses them. Ids are
        only compared, never indexes: a new address takes the next one."""
        ids = self._ids
        for t in texts:
            if t not in ids:
                if self._next_id > 0xFFFFFFFF:
                    raise OverflowError("TCP analyzer: more than 2^32 addresses numbered")
                ids[t] = self._next_id
                self._next_id += 1
        return ids

    def _drop_unused_addresses(self) -> None:
        """Forget the addresses no conversation or tombstone refers to."""
        in_use = set(self._kernel.address_ids().tolist())
        self._ids = {t: i for t, i in self._ids.items() if i in in_use}
        self._count_ids()

    def _count_ids(self) -> None:
        self._next_id = max(self._next_id, max(self._ids.values(), default=-1) + 1)
        self._compact_at = max(_FIRST_COMPACTION, 2 * len(self._ids))

    # --- saving -------------------------------------------------------------------------

    def save(self) -> bytes:
        """The state as bytes (the layout is in the module's documentation)."""
        scalars, convs, info, segs, tombs, ended = K.export_state(self._kernel)
        conv = np.frombuffer(convs, _CONV)
        conversations = np.zeros(len(conv), _CONVERSATIONS)
        for name in _names(_CONV):
            conversations[name] = conv[name]
        for j, (name, _) in enumerate(_FLOW_LISTS):
            conversations[name] = info[:, j]
        texts = [t.encode() for t in self._ids]
        parts = {
            "scalars": np.array([tuple(scalars[n] for n in K.SCALARS) + (self._last_frame,)],
                                _SECTIONS["scalars"]),
            "conversations": conversations,
            "segments": np.frombuffer(segs, _SEG).astype(_SEG_PACKED),
            "tombstones": np.frombuffer(tombs, _TOMB).astype(_TOMB_PACKED),
            "ended": ended.astype("<u4"),
            "address_ids": np.array(list(self._ids.values()), "<u4"),
            "address_lengths": np.array([len(t) for t in texts], "<u2"),
            "address_text": np.frombuffer(b"".join(texts), "u1"),
        }
        out = [MAGIC, struct.pack("<II", VERSION, len(parts))]
        for name, arr in parts.items():
            layout = _layout(_SECTIONS[name]).encode()
            out += [struct.pack("<H", len(name)), name.encode(),
                    struct.pack("<H", len(layout)), layout,
                    struct.pack("<Q", len(arr)), np.ascontiguousarray(arr).tobytes()]
        body = b"".join(out)
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def restore(cls, state: bytes) -> Analyzer:
        """An analyzer that continues where the one that saved `state` stopped."""
        parts = _read_sections(bytes(state))
        scalars = dict(zip(_names(_SECTIONS["scalars"]), parts["scalars"][0].tolist())) \
            if len(parts["scalars"]) == 1 else None
        if scalars is None:
            raise ValueError("TCP analyzer state: the scalars section must have one row")
        conv = parts["conversations"]
        native = np.zeros(len(conv), _CONV)
        for name in _names(_CONV):
            native[name] = conv[name]
        info = np.ascontiguousarray(np.stack([conv[n] for n, _ in _FLOW_LISTS], axis=1)
                                    if len(conv) else np.zeros((0, 4)), dtype=np.int32)
        try:
            kernel = K.import_state(
                scalars, np.frombuffer(native.tobytes(), np.uint8), info,
                np.frombuffer(parts["segments"].astype(_SEG).tobytes(), np.uint8),
                np.frombuffer(parts["tombstones"].astype(_TOMB).tobytes(), np.uint8),
                np.ascontiguousarray(parts["ended"], dtype=np.uint32))
        except (ValueError, OverflowError) as e:
            raise ValueError(f"TCP analyzer state: {e}") from None
        self = cls.__new__(cls)
        self._kernel = kernel
        ids, lengths = parts["address_ids"], parts["address_lengths"]
        text = parts["address_text"].tobytes()
        if len(ids) != len(lengths) or int(lengths.sum(dtype=np.int64)) != len(text):
            raise ValueError("TCP analyzer state: address sections disagree")
        ends = np.cumsum(lengths, dtype=np.int64)
        try:
            self._ids = {text[e - k:e].decode(): int(i)
                         for i, k, e in zip(ids.tolist(), lengths.tolist(), ends.tolist())}
        except UnicodeDecodeError:
            raise ValueError("TCP analyzer state: an address is not text") from None
        if len(self._ids) != len(ids) or len(set(self._ids.values())) != len(ids):
            raise ValueError("TCP analyzer state: an address or id appears twice")
        if not set(kernel.address_ids().tolist()) <= set(self._ids.values()):
            raise ValueError("TCP analyzer state: a conversation refers to an unknown address")
        self._last_frame = scalars["last_frame"]
        self._quoted_cache = None
        self._next_id = 0
        self._count_ids()
        return self


def _read_sections(blob: bytes) -> dict:
    if len(blob) < len(MAGIC) + 12 or not blob.startswith(MAGIC):
        raise ValueError("not a tcpsift TCP analyzer state (no TCPSIFT-ANALYZER magic)")
    (version, count) = struct.unpack_from("<II", blob, len(MAGIC))
    if version != VERSION:
        raise ValueError(f"TCP analyzer state of version {version}; this tcpsift reads "
                         f"version {VERSION}")
    body, (crc,) = blob[:-4], struct.unpack_from("<I", blob, len(blob) - 4)
    if zlib.crc32(body) != crc:
        raise ValueError("TCP analyzer state damaged (checksum mismatch)")
    parts, at = {}, len(MAGIC) + 8
    try:
        for _ in range(count):
            (k,) = struct.unpack_from("<H", body, at)
            name = body[at + 2:at + 2 + k].decode("ascii")
            at += 2 + k
            (k,) = struct.unpack_from("<H", body, at)
            layout = body[at + 2:at + 2 + k].decode("ascii")
            at += 2 + k
            (rows,) = struct.unpack_from("<Q", body, at)
            at += 8
            dtype = _SECTIONS.get(name)
            if dtype is None or name in parts:
                raise ValueError(f"TCP analyzer state: unexpected section {name!r}")
            if layout != _layout(dtype):
                raise ValueError(f"TCP analyzer state: section {name!r} has another layout "
                                 "(written by another tcpsift)")
            size = rows * dtype.itemsize
            if at + size > len(body):
                raise ValueError("TCP analyzer state: truncated")
            parts[name] = np.frombuffer(body, dtype, rows, at)
            at += size
    except (struct.error, UnicodeDecodeError):
        raise ValueError("TCP analyzer state: truncated or malformed section") from None
    if at != len(body) or set(parts) != set(_SECTIONS):
        raise ValueError("TCP analyzer state: sections missing or bytes left over")
    return parts
