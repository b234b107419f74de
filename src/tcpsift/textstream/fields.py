"""`tcpsift fields`, streamed: decode a chunk, (analyse it,) print it, go on.

Every field `fields --list` knows, header or TCP analysis, and the common -Y filters
(textstream/select.py) need neither the packet table nor Polars: the decoder's, the
record's and the TCP analysis' arrays of each chunk are formatted by a
Cython kernel (_lines.pyx) into the exact text tshark prints, in reused memory. A
chunk with frames that carry a header more than once (tunnels, stacked tags, headers
quoted in ICMP errors) is printed through the table path (tcpsift.fields.write), which
knows how tshark joins repeated fields, so the text is the same either way. (A
reassembled frame's row is its datagram's, decoded again: the fast way prints it too.)
NumPy only until such a chunk comes.
"""
from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

import tcpsift.textstream._lines as _lines
from tcpsift.capture.chunks import CaptureChunks, Chunk
from tcpsift.capture.presence import bits_of, presence_bits
from tcpsift.tcp import FLAG_BITS, HAS_ANALYSIS, NOT_SHOWN
from tcpsift.tcp import _analysis as K
from tcpsift.tcp.chunks import chunk_inputs, empty_outputs

if TYPE_CHECKING:
    from tcpsift.capture.table import AddressWords

# Frames per chunk: the arrays are reused, so they stay warm in the cache.
CHUNK = 1 << 16

ALWAYS, V4, V6, TCP, UDP = "always", "ipv4", "ipv6", "tcp", "udp"
ICMP, ICMP6, NO_ROW = "icmp", "icmpv6", "never"
DEC, HEX4, ADDR, EPOCH, FLAGS_STR = "dec", "hex4", "addr", "epoch", "flags_str"
# a bool ("1" when the value has a bit of the entry's fourth item set), two addresses or
# two ports comma-joined (source, destination), the SACK-permitted option's bytes
BOOL, ADDR_PAIR, PAIR, SACK_PERM = "bool", "addr_pair", "pair", "sack_perm"
_TCP_FLAG_BITS = {"fin": 0, "syn": 1, "reset": 2, "push": 3, "ack": 4, "urg": 5, "ece": 6,
                  "cwr": 7, "ae": 8}

# field -> (source: a packet column or a frame time, condition, format[, argument]),
# named as _lines.SOURCES, CONDITIONS and FORMATS name them: the same rules as the field's
# packet expression in tcpsift.fields.FIELDS (a test holds the two paths equal on every
# capture of the corpus, and the conformance suite holds that path equal to tshark).
# Layer-aware fields (eth.*, vlan.id, ip.*, tcp ports ...) have their packet-row value
# here: frames with repeated headers are printed the table way.
# (an entry: source, condition, format, or those and an argument)
Streamed = tuple[str, str, str] | tuple[str, str, str, int]
STREAMED: dict[str, Streamed] = {
    "frame.number": ("frame", ALWAYS, DEC),
    "frame.time_epoch": ("ts_ns", ALWAYS, EPOCH),
    "frame.time_relative": ("frame_time_relative", ALWAYS, EPOCH),
    "frame.time_delta": ("frame_time_delta", ALWAYS, EPOCH),
    "frame.time_delta_displayed": ("frame_time_delta_displayed", ALWAYS, EPOCH),
    "frame.len": ("len", ALWAYS, DEC),
    "frame.cap_len": ("cap_len", ALWAYS, DEC),
    # only pcapng files have interface ids (write_rows' `iface_known`)
    "frame.interface_id": ("iface", ALWAYS, DEC),
    "eth.src": ("eth_src", ALWAYS, ADDR),
    "eth.dst": ("eth_dst", ALWAYS, ADDR),
    "eth.type": ("eth_type", ALWAYS, HEX4),
    "vlan.id": ("vlan_id", ALWAYS, DEC),
    # an 802.1ad S-tag always gives the frame layer rows (the table way)
    "ieee8021ad.id": ("vlan_id", NO_ROW, DEC),
    "ip.version": ("ip_version", ALWAYS, DEC),
    "ip.src": ("src", V4, ADDR),
    "ip.dst": ("dst", V4, ADDR),
    "ip.addr": ("src", V4, ADDR_PAIR),
    "ip.hdr_len": ("ip_hdr_len", V4, DEC),
    "ip.len": ("ip_len", V4, DEC),
    "ip.id": ("ip_id", V4, HEX4),
    "ip.ttl": ("ttl", V4, DEC),
    "ip.proto": ("ip_proto", V4, DEC),
    "ip.flags.df": ("dont_fragment", V4, BOOL, 0xFF),
    "ip.flags.mf": ("more_fragments", V4, BOOL, 0xFF),
    "ip.frag_offset": ("frag_offset", V4, DEC),
    "ipv6.src": ("src", V6, ADDR),
    "ipv6.dst": ("dst", V6, ADDR),
    "ipv6.addr": ("src", V6, ADDR_PAIR),
    "ipv6.hlim": ("ttl", V6, DEC),
    # ip_len - 40
    "ipv6.plen": ("ipv6_plen", V6, DEC),
    "ipv6.nxt": ("ipv6_nxt", V6, DEC),
    "tcp.srcport": ("sport", TCP, DEC),
    "tcp.dstport": ("dport", TCP, DEC),
    "tcp.port": ("sport", TCP, PAIR),
    "tcp.seq_raw": ("seq", TCP, DEC),
    "tcp.ack_raw": ("ack", TCP, DEC),
    "tcp.flags": ("tcp_flags", TCP, HEX4),
    "tcp.flags.str": ("tcp_flags", TCP, FLAGS_STR),
    **{f"tcp.flags.{n}": ("tcp_flags", TCP, BOOL, 1 << b) for n, b in _TCP_FLAG_BITS.items()},
    "tcp.len": ("tcp_len", TCP, DEC),
    "tcp.hdr_len": ("tcp_hdr_len", TCP, DEC),
    "tcp.window_size_value": ("window", TCP, DEC),
    "tcp.options.mss_val": ("mss", TCP, DEC),
    "tcp.options.wscale.shift": ("wscale", TCP, DEC),
    "tcp.options.sack_perm": ("sack_perm", TCP, SACK_PERM),
    "tcp.options.timestamp.tsval": ("tsval", TCP, DEC),
    "tcp.options.timestamp.tsecr": ("tsecr", TCP, DEC),
    "udp.srcport": ("sport", UDP, DEC),
    "udp.dstport": ("dport", UDP, DEC),
    "udp.port": ("sport", UDP, PAIR),
    "udp.length": ("udp_len", UDP, DEC),
    "icmp.type": ("icmp_type", ICMP, DEC),
    "icmp.code": ("icmp_code", ICMP, DEC),
    "icmpv6.type": ("icmp_type", ICMP6, DEC),
    "icmpv6.code": ("icmp_code", ICMP6, DEC),
}


# TCP analysis fields -> (source, as _lines.TCP_SOURCES names it; analysis bits for the
# verdict flags); the rules are those of tcpsift.fields' TCP field list
TCP_STREAMED = {
    **{f"tcp.{n}": (n, 0) for n in ("stream", "seq", "ack", "nxtseq", "window_size",
                                    "time_relative", "time_delta")},
    "tcp.window_size_scalefactor": ("scalefactor", 0),
    # the fast and spurious verdicts also carry the generic retransmission item
    "tcp.analysis.retransmission": ("flag", FLAG_BITS["retransmission"]
                                    | FLAG_BITS["fast_retransmission"]
                                    | FLAG_BITS["spurious_retransmission"]),
    **{f"tcp.analysis.{n}": ("flag", FLAG_BITS[n]) for n in (
        "fast_retransmission", "spurious_retransmission", "out_of_order", "lost_segment",
        "ack_lost_segment", "zero_window", "zero_window_probe", "zero_window_probe_ack",
        "window_full", "window_update", "keep_alive", "keep_alive_ack", "reused_ports")},
    **{f"tcp.analysis.{n}": (n, 0) for n in (
        "duplicate_ack", "duplicate_ack_num", "duplicate_ack_frame", "acks_frame", "ack_rtt",
        "initial_rtt", "bytes_in_flight", "push_bytes_sent")},
    # the frame's SACK edges, relative when the analysis knows the other side's base
    "tcp.options.sack_le": ("sack_le", 0),
    "tcp.options.sack_re": ("sack_re", 0),
}
# the fields that read the chunk's SACK edges
SACK_FIELDS = frozenset(("tcp.options.sack_le", "tcp.options.sack_re"))

# the fields that read FrameTimes
FRAME_TIME_FIELDS = frozenset(("frame.time_relative", "frame.time_delta",
                               "frame.time_delta_displayed"))


@dataclass
class FrameTimes:
    """What frame.time_relative, frame.time_delta and frame.time_delta_displayed of the
    next frame are measured from: the time Wireshark gives the capture's first frame, the
    previous frame and the previous frame printed (None: no such frame yet). A run keeps
    one and both printing paths advance it (_lines.LineWriter.write_rows,
    tcpsift.fields.table: `frame_times`), so that chunks print what the whole capture
    prints."""
    first_ns: int | None = None
    prev_ns: int | None = None
    prev_shown_ns: int | None = None


def can_format(names: list[str]) -> bool:
    """Whether _lines.pyx prints every one of these fields (no Polars needed)."""
    return len(names) <= _lines.FIELDS_AT_MOST and all(
        n in STREAMED or n in TCP_STREAMED for n in names)


def fast_path(names: list[str], flt=None):
    """The one decision between the two printing paths: (whether chunks are printed by
    _lines.pyx, the filter evaluated on their arrays or None). True when the formatter
    prints every field and the filter (`flt`: its text, a compiled table filter or an
    ArrayFilter; None: none) names only fields the arrays give (textstream.select);
    then neither tables nor Polars are needed, except for chunks with repeated headers."""
    from tcpsift.textstream.select import ArrayFilter, array_filter

    if not can_format(names):
        return False, None
    if flt is None or isinstance(flt, ArrayFilter):
        return True, flt
    text = flt if isinstance(flt, str) else getattr(flt, "text", None)
    select = array_filter(text) if text is not None else None
    return select is not None, select


def _tcp_consts() -> np.ndarray:
    """The bits _lines.pyx reads the analysis with (its K_* entries, in order)."""
    v = K.V_BITS
    return np.array([v["row"], v["seq"], v["ack"], v["wscale"], v["analysis"], HAS_ANALYSIS,
                     NOT_SHOWN, FLAG_BITS["duplicate_ack"]], np.int64)


# presence of a source that is not COLUMN_PRESENCE's rule for a packet column: (the bits
# of which one must be set, the bits of which none may be set); frame.interface_id's is
# the record's (write_rows)
_SOURCE_PRESENCE = {
    "iface": ((), ()),
    "ip_len": (("ip", "ip_hdr"), ("no_ip_len",)),
    "ipv6_plen": (("ip", "ip_hdr"), ("no_ip_len",)),
    "ipv6_nxt": (("ip",), ()),
    "sack_perm": (("sack_perm",), ()),
}


def _program(names: list[str]) -> np.ndarray:
    """One row per field for _lines.LineWriter.write_rows (entries named by
    _lines.PROGRAM)."""
    # what a condition reads must be present: ip_version for V4/V6; ip_proto and a
    # transport header (sport, icmp_type) for TCP/UDP/ICMP, as IS_TCP/IS_ICMP/... say
    cond_bits = {ALWAYS: (0, 0), NO_ROW: (0, 0), V4: (presence_bits("ip_version"), 0),
                 V6: (presence_bits("ip_version"), 0),
                 TCP: (presence_bits("ip_proto"), presence_bits("sport")),
                 UDP: (presence_bits("ip_proto"), presence_bits("sport")),
                 ICMP: (presence_bits("ip_proto"), presence_bits("icmp_type")),
                 ICMP6: (presence_bits("ip_proto"), presence_bits("icmp_type"))}
    cond_of, fmt_of, at = _lines.CONDITIONS, _lines.FORMATS, _lines.PROGRAM
    rows = np.zeros((len(names), _lines.PROGRAM_ENTRIES), np.int64)
    for row, n in zip(rows, names):
        if n in TCP_STREAMED:
            source, flag_bits = TCP_STREAMED[n]
            row[at["source"]] = _lines.TCP_SOURCES[source]
            row[at["cond"]], row[at["format"]] = cond_of[ALWAYS], fmt_of[DEC]
            row[at["need1"]] = flag_bits
            continue
        column, cond, fmt, *arg = STREAMED[n]
        if column in _SOURCE_PRESENCE:
            need, veto = (bits_of(*group) for group in _SOURCE_PRESENCE[column])
        else:
            need, veto = presence_bits(column), 0
        row[at["source"]], row[at["need"]], row[at["veto"]] = _lines.SOURCES[column], need, veto
        row[at["cond"]], row[at["format"]] = cond_of[cond], fmt_of[fmt]
        row[at["need1"]], row[at["need2"]] = cond_bits[cond]
        row[at["arg"]] = arg[0] if arg else 0
    return rows.astype(np.int32)


class _AddressTexts:
    """The address dictionary's texts as one byte string and end offsets, grown as the
    decoder meets new addresses (in amortised constant time per address: a capture with
    millions of addresses must not copy them all again for every chunk)."""

    def __init__(self):
        self.texts: list[str] = []
        self.blob = bytearray()
        self._ends = np.zeros(1024, np.int64)
        self.longest = 0

    @property
    def ends(self) -> np.ndarray:
        return self._ends[:len(self.texts)]

    def add(self, new: list[str]):
        if not new:
            return
        old = len(self.texts)
        encoded = [t.encode() for t in new]
        if old + len(new) > len(self._ends):
            grown = np.zeros(max(2 * len(self._ends), old + len(new)), np.int64)
            grown[:old] = self._ends[:old]
            self._ends = grown
        lengths = np.array([len(e) for e in encoded], np.int64)
        self._ends[old:old + len(new)] = len(self.blob) + np.cumsum(lengths)
        self.blob += b"".join(encoded)
        self.texts += new
        self.longest = max(self.longest, int(lengths.max()))


def _write_through_table(names, chunk: Chunk, texts, fh, tcp=None, flt=None, info=None,
                         times=None):
    """Print one chunk the table way (frames with repeated headers, or every chunk when
    a filter or a field needs it): the chunk's packet and layer tables, its slice of the
    streamed TCP analysis (`tcp`: output arrays, when a field or the filter needs them)
    and `info`, are a Capture to tcpsift.fields. Every field and filter is per frame
    (frame.interface_id reads the file's format from `info`), so chunk by chunk prints
    what the whole capture prints. `texts`: address texts by id (AddressWords.series).
    `times`: the run's FrameTimes, advanced past the chunk."""
    from tcpsift.capture.table import layer_table
    from tcpsift.fields import write

    chunk.addresses = texts
    packets = chunk.table()
    layer_rows = chunk.layer_rows.copy()
    layer_rows["row"] -= chunk.first_row
    layers = layer_table(layer_rows, chunk.frame, texts, chunk.file_id)
    cap = SimpleNamespace(packets=packets, layers=layers, info=info, frame_times=times)
    if tcp is not None:
        from tcpsift.tcp import output_table
        cap.tcp = output_table(tcp, packets)
    write(cap, names, fh, flt(cap) if flt is not None else None)


def fields_from_tables(cap, names: list[str], fh, flt=None) -> None:
    """Print `names` for every frame of a Capture whose tables are at hand (read from
    the cache: tcpsift.cache) as stream_fields prints them, the table way, CHUNK rows
    at a time (the text is per frame, so slices print what the whole prints)."""
    import polars as pl

    from tcpsift.fields import resolve, write

    with_tcp = any(resolve(n).needs_tcp for n in names) or bool(
        flt is not None and flt.needs_tcp)
    times = FrameTimes() if (FRAME_TIME_FIELDS.intersection(names) or (
        flt is not None and flt.needs_times)) else None
    info = SimpleNamespace(files=[{"format": f["format"]} for f in cap.info.files])
    packets, layers = cap.packets, cap.layers
    tcp = cap.tcp if with_tcp else None
    for start in range(0, len(packets), CHUNK):
        rows = SimpleNamespace(packets=packets.slice(start, CHUNK), info=info,
                               frame_times=times,
                               layers=layers.filter(pl.col("frame").is_between(
                                   start + 1, start + CHUNK)))
        if tcp is not None:
            rows.tcp = tcp.slice(start, CHUNK)
        write(rows, names, fh, flt(rows) if flt is not None else None)


def stream_fields(paths: list[str], names: list[str], fh, flt=None,
                  mode: str = "merge") -> tuple[list[str], bool]:
    """Print `names` for every frame of the capture files `paths` to the binary file
    `fh`, as `tshark -T fields` does; with `flt` (tcpsift.fields.filter.compile_filter),
    only the frames it keeps. Several files are one capture (frame numbers and TCP
    analysis go on across them), read as `mode` says (tcpsift.capture.chunks: "merge",
    their frames merged by time chunk by chunk, or one file after the other when that is
    their merge order; "concat", one after the other). Returns (warnings, complete) like
    tcpsift.read. Raises CaptureError when the file (or every file) is not a capture.

    Every field is formatted by _lines.pyx, under a filter of the common terms too (its
    mask evaluated on the chunk's arrays: `fast_path` decides; `flt` may then be a
    textstream.select.ArrayFilter); any other filter (or more fields than
    _lines.FIELDS_AT_MOST) takes every chunk through its tables (Polars): slower, but
    memory still stays bounded by the chunk, not the capture.

    The chunks come from CaptureChunks, the driver read(), scan() and info use: its
    thread reads and decodes the next chunk (and builds the TCP kernel's inputs for it)
    while this one is analysed (TCP) and printed; this thread reads blocks ahead and
    decodes part of them for it while it waits (a reading thread of its own measured
    slower: three busy threads on two cores). A live capture (a pipe) is flushed after
    each chunk."""
    run = _Run(names, fh, flt)
    # three array sets: one printed, one waiting, one being decoded (in_background's
    # one item ahead); the address texts without tables (no Polars)
    chunks = CaptureChunks(list(paths), mode, CHUNK, tables=False, texts=True, reuse=3,
                           prepare=run.inputs if run.with_tcp else None)
    run.addrs = chunks.addrs
    info = SimpleNamespace(files=chunks.opened)
    for chunk in chunks:
        run.print(chunk, info)
        if chunk.live:          # (a live capture: print as it comes)
            run.lines.flush()
            fh.flush()
    run.lines.flush()
    return chunks.warnings, chunks.complete


def _iface_known(info, file_id, n: int) -> np.ndarray:
    """Per row of a chunk of file `file_id` (merged: an array, the file of each row):
    whether its file has interface ids (pcapng; tcpsift.fields: _interface_id_known)."""
    pcapng = [i for i, f in enumerate(info.files) if "pcapng" in str(f.get("format")).lower()]
    if isinstance(file_id, np.ndarray):
        return np.isin(file_id[:n], pcapng)
    return np.full(n, file_id in pcapng)


class _Run:
    """What the files of one `stream_fields` share: the output, the address texts,
    the TCP analysis state."""

    def __init__(self, names: list[str], fh, flt):
        self.names, self.fh, self.flt = names, fh, flt
        # `select`: the filter on arrays (fast chunks); `flt` is compiled for tables when
        # a chunk goes the table way (_table_filter)
        self.fast, self.select = fast_path(names, flt)
        self.address_ids = self.select.address_ids() if self.select is not None else None
        # the address texts as the formatter reads them (`texts`, fast path) and as the
        # tables encode them (`words`: Polars, so on the fast path made from `texts` when
        # a chunk first goes the table way)
        self.texts = _AddressTexts()
        self.words: AddressWords | None = None
        if self.fast:
            self.with_tcp = any(n in TCP_STREAMED for n in names) or bool(
                self.select is not None and self.select.needs_tcp)
            self.program = _program(names)
            self.with_iface = "frame.interface_id" in names or bool(
                self.select is not None and self.select.needs_iface)
            self.with_sack = bool(SACK_FIELDS.intersection(names))
        else:
            from tcpsift.fields import resolve
            self.with_tcp = any(resolve(n).needs_tcp for n in names) or bool(
                flt is not None and flt.needs_tcp)
            self._table_words()
        self.addrs: Sized | None = None     # the driver's address table (`inputs`)
        self.analyzer = K.Analyzer() if self.with_tcp else None
        self.consts = _tcp_consts() if self.with_tcp else None
        self.lines = _lines.LineWriter(fh.write)
        self._tcp_out: dict | None = None   # the analysis outputs used again (print)
        self.times = FrameTimes() if (FRAME_TIME_FIELDS.intersection(names) or (
            getattr(flt, "needs_times", False))) else None
        # the filter reads the frame times and no field does: this run advances them
        self.filter_times = bool(self.select is not None and self.select.needs_times
                                 and not FRAME_TIME_FIELDS.intersection(names))

    def _table_words(self) -> AddressWords:
        """The address texts for tables (`words`), made from `texts` when first needed."""
        if self.words is None:
            from tcpsift.capture.table import AddressWords
            self.words = AddressWords()
            self.words.add(self.texts.texts)
        return self.words

    def _table_filter(self):
        """The filter as the table path evaluates it (compiled on first use)."""
        from tcpsift.textstream.select import ArrayFilter

        if isinstance(self.flt, ArrayFilter):
            from tcpsift.fields.filter import compile_filter
            self.flt = compile_filter(self.flt.text)
        return self.flt

    def inputs(self, chunk: Chunk) -> dict:
        """The TCP kernel's inputs for a chunk (CaptureChunks' `prepare`: in the decoding
        thread, as the printing thread has more to do; many.pcap, 18 TCP fields:
        0.49 -> 0.43 s; bulk.pcap: the same)."""
        assert self.addrs is not None
        return chunk_inputs(chunk.rec, chunk.pkt, chunk.sack_edges, chunk.layer_rows,
                            chunk.first_row, len(self.addrs))

    def print(self, chunk: Chunk, info) -> None:
        """One chunk: analysed (TCP) and printed, the fast way or, for a chunk that needs
        it (repeated headers: layer rows) or fields/a filter that do, the table way.
        `info.files`: each file's format (frame.interface_id)."""
        rec, pkt, sacks, new_texts = chunk.rec, chunk.pkt, chunk.sack_edges, chunk.new_texts
        n = len(rec["offset"])
        if self.fast:
            if self.address_ids is not None:
                self.address_ids.learn(len(self.texts.texts), new_texts)
            self.texts.add(new_texts)
        if self.words is not None:
            self.words.add(new_texts)
        table_way = len(chunk.layer_rows) > 0 or not self.fast
        tcp = None
        if self.with_tcp:
            # the outputs are used again from chunk to chunk, except by a chunk printed
            # the table way: its table keeps them
            tcp = self._tcp_out
            if table_way or tcp is None or len(tcp["_valid"]) < n:
                tcp = empty_outputs(n)
            self._tcp_out = None if table_way else tcp
            assert self.analyzer is not None
            self.analyzer.feed(n, chunk.prepared, tcp)
        if table_way:
            words = self._table_words()
            self.lines.flush()
            _write_through_table(self.names, chunk, words.series, self.fh, tcp,
                                 self._table_filter(), info, self.times)
        else:
            iface = _iface_known(info, chunk.file_id, n) if self.with_iface else None
            keep = self.select.mask(chunk.first_row + 1, rec, pkt, self.address_ids, tcp, iface,
                                    self.times) if self.select is not None else None
            self.lines.write_rows(self.program, chunk.first_row + 1, rec, pkt, self.texts.blob,
                                  self.texts.ends, self.texts.longest, tcp, self.consts,
                                  self.times, keep, sacks if self.with_sack else None, iface)
            if self.filter_times and n:
                assert self.times is not None and self.select is not None
                first, last, last_kept = self.select.last_times
                self.times.first_ns, self.times.prev_ns = first, last
                if last_kept is not None:
                    self.times.prev_shown_ns = last_kept
