"""The connection table: one row per TCP connection (`tcp.stream`), from per-connection
aggregates the compiled kernel keeps as the rows go by (`_analysis.ConnAggregates`:
counts, sums, extremes, first rows of a kind, history letters, RTTs, per direction);
the columns are then computed over the connections, not the packets.

    tcpsift.tcp.connections.connections(capture) -> polars.DataFrame   # also capture.conns
    table, warnings, complete = read_connections(paths)   # the same, no table held

`connections()` feeds the aggregates from the packet and TCP tables;
`read_connections()` (`tcpsift conns` without the cache) decodes and analyses the
files chunk by chunk and takes each connection's record as its conversation ends.

Roles: the client is the sender of the first SYN (without ACK); without one, the
receiver of the first SYN-ACK; without a handshake in the capture, the side using the
higher port (the server listens on the lower, usually well-known, port); on equal
ports, the first sender.

`conn_state` and `history` follow Zeek's conventions (base/protocols/conn): endpoint
states INACTIVE/SYN_SENT/SYN_ACK_SENT/PARTIAL/ESTABLISHED/CLOSED/RESET driven by each
side's SYN, FIN, RST and data, and history letters S H A D F R I Q T W (upper case for the
client, lower case for the server) in order of first appearance; T (retransmission) and W
(zero window) repeat at their 1st, 10th, 100th ... occurrence. Simplifications are listed
in docs/tcp-analysis.md.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from tcpsift.schema import CONN_COLUMNS, VERDICTS, polars_schema
from tcpsift.tcp import keys

C = pl.col
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# Endpoint states (Zeek's TCP_ENDPOINT_*), in a small integer code.
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)


# The packet-table columns connections() reads besides the TCP analysis' inputs (for
# tcpsift.read(columns=...): a command that wants only the connection table builds no
# other column).
PACKET_COLUMNS = ("frame", "ts_ns", "len", "src", "dst", "sport", "dport", "tcp_flags",
                  "tcp_len", "window", "mss", "wscale", "sack_perm", "tsval", "eth_src",
                  "eth_dst")


NO_TIME_MAX = np.iinfo(np.int64).max  # the empty value of a minimum of times
NO_ROW = np.iinfo(np.int64).max       # the empty value of a minimum of frames
NO_WINDOW = np.iinfo(np.uint32).max   # above any scaled window (65535 << 14)


def _table_rows(capture, with_macs: bool) -> tuple[int, dict, dict, dict]:
    """The rows ConnAggregates.feed takes, from the packet and TCP tables: (rows, the
    row values, the kernel outputs, {"ip"/"eth": (codes, texts)} to name addresses)."""
    from tcpsift.tcp import _analysis as K

    pk, tcp = capture.packets, capture.tcp
    n = pk.height
    h = K.CONN_HAS

    def bit(cond: pl.Expr, name: str) -> pl.Expr:
        return pl.when(cond).then(h[name]).otherwise(0)

    eth = with_macs and "eth_src" in pk.columns
    has = (bit(C("ts_ns").is_not_null(), "ts") | bit(C("tcp_flags").is_not_null(), "flags")
           | bit(C("window").is_not_null(), "window") | bit(C("sport").is_not_null(), "ports")
           | bit(C("src").is_not_null(), "ip") | bit(C("mss").is_not_null(), "mss")
           | bit(C("wscale").is_not_null(), "wscale")
           | bit(C("sack_perm").is_not_null(), "tcp") | bit(C("sack_perm").fill_null(False),
                                                            "sack_perm")
           | bit(C("tsval").is_not_null(), "timestamps"))
    if eth:
        has = has | bit(C("eth_src").is_not_null(), "eth")
    zero = pl.lit(0, pl.UInt32)
    t = pk.select(
        frame=C("frame").cast(pl.UInt32), ts_ns=C("ts_ns").fill_null(0).cast(pl.Int64),
        has=has.cast(pl.UInt16), len=C("len").fill_null(0).cast(pl.UInt32),
        tcp_flags=C("tcp_flags").fill_null(0).cast(pl.UInt16),
        tcp_len=C("tcp_len").fill_null(0).cast(pl.UInt32),
        window=C("window").fill_null(-1).cast(pl.Int32),
        src=C("src").to_physical().fill_null(0).cast(pl.UInt32),
        dst=C("dst").to_physical().fill_null(0).cast(pl.UInt32),
        sport=C("sport").fill_null(0).cast(pl.UInt16),
        dport=C("dport").fill_null(0).cast(pl.UInt16),
        eth_src=C("eth_src").to_physical().fill_null(0).cast(pl.UInt32) if eth else zero,
        eth_dst=C("eth_dst").to_physical().fill_null(0).cast(pl.UInt32) if eth else zero,
        mss=C("mss").fill_null(0).cast(pl.UInt16),
        wscale=C("wscale").fill_null(0).cast(pl.UInt8))
    v = K.V_BITS
    o = tcp.select(
        stream=C("stream").fill_null(0).cast(pl.UInt32),
        direction=C("direction").fill_null(0).cast(pl.UInt8),
        window_scaled=C("window_scaled").fill_null(NO_WINDOW).cast(pl.UInt32),
        analysis=C("analysis").fill_null(0).cast(pl.UInt32),
        acks_frame=C("ack_rtt_ns").is_not_null().cast(pl.UInt32),
        ack_rtt_ns=C("ack_rtt_ns").fill_null(0).cast(pl.Int64),
        _valid=(pl.when(C("stream").is_not_null()).then(v["row"]).otherwise(0)
                | pl.when(C("analysis").is_not_null()).then(v["analysis"]).otherwise(0)
                ).cast(pl.UInt8))
    rows = {name: np.ascontiguousarray(t[name].to_numpy()) for name in t.columns}
    if not eth:
        rows["eth_src"] = rows["eth_dst"] = np.zeros(n, np.uint32)
    out = {name: np.ascontiguousarray(o[name].to_numpy()) for name in o.columns}
    names = {"ip": _codes_and_texts(pk["src"], pk["dst"])}
    if eth:
        names["eth"] = _codes_and_texts(pk["eth_src"], pk["eth_dst"])
    return n, rows, out, names


def _codes_and_texts(*columns: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """The dictionary codes of Categorical columns and their texts (distinct values only)."""
    uniq = pl.concat([c.cast(pl.Categorical) for c in columns]).drop_nulls().unique()
    return uniq.to_physical().to_numpy(), uniq.cast(pl.String)


class AddressNames:
    """Address texts by code: the decoder's address ids (`texts`, the capture's address
    dictionary, indexed by id) or dictionary codes with their texts."""

    def __init__(self, texts: pl.Series, codes: np.ndarray | None = None):
        self.texts = texts.cast(pl.String)
        self.position = None
        if codes is not None:
            self.position = np.zeros(int(codes.max()) + 1 if len(codes) else 1, np.int64)
            self.position[codes] = np.arange(len(codes))

    def _positions(self, codes: np.ndarray, known: np.ndarray) -> np.ndarray:
        at = codes.astype(np.int64) if self.position is None else \
            self.position[np.minimum(codes, len(self.position) - 1)]
        return np.where(known, at, -1)

    def packed(self, codes: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n x 16 bytes, is IPv6) of the addresses of `codes` (tcpsift.addresses.pack;
        zeros where not `known`), each distinct address packed once."""
        from tcpsift.addresses import pack

        distinct, row = np.unique(self._positions(codes, known), return_inverse=True)
        table = np.zeros((len(distinct), 16), np.uint8)
        v6 = np.zeros(len(distinct), bool)
        texts = self.texts.gather(np.maximum(distinct, 0)).to_list() if len(self.texts) else []
        for j, (at, text) in enumerate(zip(distinct.tolist(), texts)):
            if at >= 0 and text is not None:
                table[j] = np.frombuffer(pack(text), np.uint8)
                v6[j] = ":" in text
        return table[row], v6[row]

    def __call__(self, codes: np.ndarray, known: np.ndarray) -> pl.Series:
        """The texts of `codes`, null where not `known`."""
        at = np.maximum(self._positions(codes, known), 0)
        if not len(self.texts):
            return pl.Series([None] * len(codes), dtype=pl.String)
        return self.texts.gather(at).set(pl.Series(~known), None)


def _nullable(values: np.ndarray, present: np.ndarray, name: str = "") -> pl.Series:
    return pl.Series(name, values).set(pl.Series(~present), None)


def _history(rec: np.ndarray) -> pl.Series:
    """The history texts of ConnAggregates.take()'s records (null: no letter)."""
    width = rec["history"].shape[1]
    text = pl.Series("history", np.ascontiguousarray(rec["history"]).view(f"S{width}").ravel()
                     ).cast(pl.String)
    return text.set(pl.Series(rec["nhistory"] == 0), None)


def _endpoint_state(syn: np.ndarray, fin: np.ndarray, rst: np.ndarray, client: bool) -> np.ndarray:
    """Final Zeek endpoint state of one side of each stream (-1: none): RESET or CLOSED
    once seen; else the state of its last SYN (syn: 1 SYN, 2 SYN-ACK); else none
    (PARTIAL/INACTIVE later)."""
    syn_state = np.where(syn == 2, SYN_ACK_SENT if client else ESTABLISHED, SYN_SENT)
    return np.select([rst > 0, fin > 0, syn > 0], [RESET, CLOSED, syn_state], -1)


def _conn_state(client_state: np.ndarray, server_state: np.ndarray, o_plain, r_plain,
                o_size, r_size, history: pl.Series) -> pl.Series:
    """Zeek's conn_state from both endpoints' final states."""
    sides = pl.DataFrame({
        "os": client_state, "rs": server_state, "o_plain": o_plain, "r_plain": r_plain,
        "o_size": o_size, "r_size": r_size, "history": history,
    }).with_columns(C("os", "rs").replace(-1, None))
    os_, rs_ = C("os"), C("rs")
    # a client that only ever sent a SYN and then ACKs the SYN-ACK is established
    os_eff = (pl.when(os_.is_null() & C("o_plain")).then(PARTIAL)
              .when((os_ == SYN_SENT) & rs_.is_in([ESTABLISHED, CLOSED, RESET])
                    & C("o_plain")).then(ESTABLISHED)
              .when(os_ == SYN_ACK_SENT).then(ESTABLISHED)
              .otherwise(os_.fill_null(INACTIVE)))
    rs_eff = (pl.when(rs_.is_null() & C("r_plain")).then(PARTIAL)
              .otherwise(rs_.fill_null(INACTIVE)))
    s = sides.with_columns(os_eff.alias("os"), rs_eff.alias("rs"))
    o_inactive = C("os").is_in([INACTIVE, PARTIAL])
    r_inactive = C("rs").is_in([INACTIVE, PARTIAL])
    sizes_zero = (C("o_size") == 0) & (C("r_size") == 0)
    state = (
        pl.when(C("rs") == RESET).then(
            pl.when(C("os").is_in([SYN_SENT, SYN_ACK_SENT]) | ((C("os") == RESET) & sizes_zero))
            .then(pl.lit("REJ")).when(o_inactive).then(pl.lit("RSTRH")).otherwise(pl.lit("RSTR")))
        .when(C("os") == RESET).then(
            pl.when(r_inactive).then(
                pl.when(C("history").fill_null("").str.contains(r"^\^?S[^HAFGIQ]*R"))
                .then(pl.lit("RSTOS0")).otherwise(pl.lit("OTH")))
            .otherwise(pl.lit("RSTO")))
        .when((C("rs") == CLOSED) & (C("os") == CLOSED)).then(pl.lit("SF"))
        .when(C("os") == CLOSED).then(pl.when(r_inactive).then(pl.lit("SH")).otherwise(pl.lit("S2")))
        .when(C("rs") == CLOSED).then(pl.when(o_inactive).then(pl.lit("SHR")).otherwise(pl.lit("S3")))
        .when((C("os") == SYN_SENT) & (C("rs") == INACTIVE)).then(pl.lit("S0"))
        .when((C("os") == ESTABLISHED) & (C("rs") == ESTABLISHED)).then(pl.lit("S1"))
        .otherwise(pl.lit("OTH")))
    return s.select(state.alias("conn_state")).to_series()


def _open_counts(groups: np.ndarray, established: np.ndarray, closed: np.ndarray,
                 end: np.ndarray) -> np.ndarray:
    """For each connection, how many other connections of its group (integer codes) were
    open at its end: established (handshake completed) before that frame and not closed
    (FIN or RST in either direction) by then. Frame numbers order events exactly.

    Vectorised over every group at once: each event is keyed (group, frame) in one int64,
    so one sorted array per event kind answers "how many in my group before frame t"."""
    span = np.int64(1) << 34          # above any frame number and the NEVER sentinel
    base = groups.astype(np.int64) * span
    # a connection closed before its handshake completed was never open
    closed = np.maximum(closed, established)
    est_keys, clo_keys = np.sort(base + established), np.sort(base + closed)
    t = base + end
    # (the queries in order: binary searches that follow each other are much faster;
    # sorted by t, they are sorted by base too)
    order = np.argsort(t)
    t, b = t[order], base[order]
    opened = np.searchsorted(est_keys, t, "left") - np.searchsorted(est_keys, b, "left")
    shut = np.searchsorted(clo_keys, t, "right") - np.searchsorted(clo_keys, b, "left")
    counts = np.empty_like(opened)
    counts[order] = opened - shut
    itself = (established < end) & (closed > end)
    return counts - itself


NEVER = (1 << 33) - 1   # frame number of an event that never happens (frames are < 2^32)
CLIENT_BY = ("ip", "mac")


def _client_keys(conns: pl.DataFrame, client_by) -> pl.Series:
    """What identifies each connection's client when counting its open connections: its
    address ("ip"), its Ethernet address ("mac", the address where there is none), or
    a mapping of addresses to host names (an address not in it is its own host)."""
    if client_by == "ip":
        return conns["client"]
    if client_by == "mac":
        return conns.select(pl.coalesce("_client_mac", "client")).to_series()
    if isinstance(client_by, dict):
        return conns["client"].replace(client_by)
    raise ValueError(f"client_by: {client_by!r}; valid: 'ip', 'mac' or a dict of addresses "
                     "to host names")


def _open_at_end(conns: pl.DataFrame, client_by,
                 codes: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(all other connections of the client, those to the same server address) open at
    each connection's end: its first FIN or RST, else its last packet. `codes`: the
    client's and the server's address codes (one per address), when the client is its
    address: then they number the groups, not the texts."""
    first = conns["first_frame"].to_numpy().astype(np.int64)
    est = conns["established_frame"].fill_null(0).to_numpy().astype(np.int64)
    # no handshake seen (mid-stream): open from its first packet
    est = np.where(conns["syn_ts_ns"].is_null().to_numpy(), first, np.where(est > 0, est, NEVER))
    closed = conns["close_frame"].fill_null(NEVER).to_numpy().astype(np.int64)
    end = np.where(closed < NEVER, closed, conns["last_frame"].to_numpy().astype(np.int64))
    if codes is not None and client_by == "ip":
        c, s = (x.astype(np.int64) for x in codes)
        client = np.unique(c, return_inverse=True)[1]
        client_server = np.unique((c << 32) | s, return_inverse=True)[1]
    else:
        keys = pl.DataFrame({"client": _client_keys(conns, client_by).cast(pl.String),
                             "server": conns["server"].cast(pl.String)})
        client = keys.select(pl.col("client").rank("dense")).to_series().to_numpy()
        client_server = keys.select(pl.struct("client", "server").rank("dense")
                                    ).to_series().to_numpy()
    every = _open_counts(client, est, closed, end)
    return every, _open_counts(client_server, est, closed, end)


def _check_client_by(client_by) -> None:
    if client_by not in CLIENT_BY and not isinstance(client_by, dict):
        _client_keys(pl.DataFrame(), client_by)   # the error naming the valid values


def connections(capture, client_by="ip") -> pl.DataFrame:
    """One row per TCP connection; columns in docs/schema.md (connection table).

    `client_by` says what one client is when counting the connections it had open at
    each connection's end: "ip" its address; "mac" the Ethernet source address of its
    packets (a host with an IPv4 and an IPv6 address is then one client; a connection
    whose frames carry no Ethernet header keeps its address); or a dict mapping
    addresses to host names."""
    from tcpsift.tcp import _analysis as K

    if client_by == "mac" and "eth_src" not in capture.packets.columns:
        raise ValueError("client_by='mac' needs the packet table's eth_src column")
    _check_client_by(client_by)
    n, rows, out, names = _table_rows(capture, with_macs=client_by == "mac")
    acc = K.ConnAggregates()
    acc.feed(n, rows, out)
    del rows, out
    streams = acc.used()
    ip = AddressNames(names["ip"][1], names["ip"][0])
    eth = AddressNames(names["eth"][1], names["eth"][0]) if "eth" in names else None
    return conn_table(streams, acc.take(streams), ip, eth, client_by)


def read_connections(paths, mode: str = "merge", client_by="ip", chunk: int = 1 << 16,
                     grace: float | None = 5.0) -> tuple[pl.DataFrame, list[str], bool]:
    """connections(tcpsift.read(paths, mode=mode), client_by) without the capture's
    tables: (the connection table, the capture's warnings, whether it was read
    completely). Raises CaptureError as read() does.

    The frames are decoded chunk by chunk (tcpsift.capture.chunks); each chunk goes
    through the TCP kernel's Analyzer and the per-connection aggregates
    (ConnAggregates), and is dropped. The Analyzer frees a conversation `grace`
    seconds (capture time) after it ended, leaving a tombstone
    (tcpsift.tcp.analyzer), and the connection's record is taken from the aggregates
    then, as it ends. A packet that comes after its conversation was freed (a late
    packet: two capture points merged, a long pause) could be analysed differently
    from `Capture.tcp`; when there was one, the files are read again without eviction,
    so the table is always `connections()`'s. grace=None, or a path read only once
    (standard input, a pipe): no eviction, every record taken at the end."""
    from tcpsift.capture.source import is_stream

    if grace is not None and not grace >= 0:
        raise ValueError(f"grace must be None or >= 0 seconds, not {grace!r}")
    if grace is not None and any(map(is_stream, paths)):
        grace = None
    table, warnings, complete, late, _ = _read_connections(
        paths, mode, client_by, chunk, -1 if grace is None else int(round(grace * 1e9)))
    if late:
        table, warnings, complete, _, _ = _read_connections(paths, mode, client_by, chunk, -1)
    return table, warnings, complete


def _read_connections(paths, mode: str, client_by, chunk: int, grace_ns: int
                      ) -> tuple[pl.DataFrame, list[str], bool, int, int]:
    """read_connections(), evicting after `grace_ns` (< 0: never); also returns the
    number of late packets (0: the table is exactly connections()'s; else the read
    stopped at the first and the table is empty) and the most connection records held
    at once."""
    from tcpsift.capture.chunks import CaptureChunks
    from tcpsift.capture.presence import bits_of
    from tcpsift.tcp import _analysis as K
    from tcpsift.tcp.chunks import chunk_inputs, empty_outputs

    _check_client_by(client_by)
    masks = tuple(bits_of(*names) for names in (
        ("ip",), ("tcp", "udp"), ("tcp_flags",), ("tcp_len",), ("mss",), ("wscale",),
        ("tcp",), ("sack_perm",), ("ts",), ("eth",)))
    # (no tables: no address words; each chunk's arrays are done with before the
    # decoder writes them again, three chunks later)
    chunks = CaptureChunks(paths, mode, chunk, tables=False, reuse=3)
    # tombstones kept for ever: a packet on a freed conversation's addresses and ports
    # is then always known as late (or as a new connection reusing the ports, as tshark
    # says), never silently given a new stream
    analyzer = K.Analyzer(grace_ns, -1, -1)
    acc = K.ConnAggregates()
    taken: list[tuple[np.ndarray, np.ndarray]] = []
    peak = 0

    def take_ended() -> None:
        ended = analyzer.take_ended()
        if len(ended):
            taken.append((ended, acc.take(ended)))

    # the arrays of each chunk's analysis, used again for the next chunk (the chunk is
    # done with before the next)
    rows: dict = {}
    inputs: dict | None = None
    outputs: dict = {}
    for part in chunks:
        n = len(part)
        if not n:
            continue
        if len(outputs.get("stream", ())) < n:
            outputs = empty_outputs(n)
        out = {name: values[:n] for name, values in outputs.items()}
        inputs = chunk_inputs(part.rec, part.pkt, part.sack_edges, part.layer_rows,
                              part.first_row, len(chunks.addrs), inputs)
        analyzer.feed(n, inputs, out)
        if analyzer.late_packets:
            return pl.DataFrame(), [], False, analyzer.late_packets, peak   # (read again)
        if len(rows.get("frame", ())) < n:
            rows = {"frame": np.empty(n, np.uint32), "has": np.empty(n, np.uint16),
                    "tcp_len": np.empty(n, np.uint32), "window": np.empty(n, np.int32)}
        K.fill_conn_rows(n, part.first_row + 1, part.rec, part.pkt, rows, masks)
        pkt = part.pkt
        acc.feed(n, {**rows, "ts_ns": part.rec["ts_ns"], "len": part.rec["len"],
                     "tcp_flags": pkt["tcp_flags"], "src": pkt["src"], "dst": pkt["dst"],
                     "sport": pkt["sport"], "dport": pkt["dport"], "eth_src": pkt["eth_src"],
                     "eth_dst": pkt["eth_dst"], "mss": pkt["mss"], "wscale": pkt["wscale"]},
                 out)
        peak = max(peak, acc.held)
        take_ended()
    analyzer.finish()       # every conversation ends
    take_ended()
    rest = acc.used()       # (none: every stream's conversation ended)
    if len(rest):
        taken.append((rest, acc.take(rest)))
    # (the decoder's address table: id -> text, MAC and IP addresses alike)
    names = AddressNames(pl.Series(chunks.addrs.texts(0), dtype=pl.String))
    if analyzer.late_packets:
        return pl.DataFrame(), [], False, analyzer.late_packets, peak
    if not taken:
        table = conn_table(np.zeros(0, np.uint32), np.zeros(0, K.CONN_DTYPE), names, names,
                           client_by)
    else:
        streams = np.concatenate([t[0] for t in taken])
        order = np.argsort(streams, kind="stable")
        table = conn_table(streams[order], np.concatenate([t[1] for t in taken])[order],
                           names, names, client_by)
    return table, chunks.warnings, chunks.complete, 0, peak


def conn_table(streams: np.ndarray, rec: np.ndarray, ip: AddressNames,
               eth: AddressNames | None, client_by) -> pl.DataFrame:
    """The connection table from ConnAggregates.take()'s records of `streams` (client
    and server sides already told apart): every column, vectorised over the
    connections."""
    from tcpsift.tcp import _analysis as K

    if not len(streams):
        return pl.DataFrame(schema=polars_schema(CONN_COLUMNS))
    h = K.CONN_HAS
    fields: tuple[str, ...] = rec.dtype.names or ()
    c = {name[2:]: rec[name] for name in fields if name.startswith("c_")}
    s = {name[2:]: rec[name] for name in fields if name.startswith("s_")}
    cols: dict[str, np.ndarray | pl.Series] = {
        "stream": streams, "first_frame": rec["first_frame"], "last_frame": rec["last_frame"],
    }
    timed = rec["timed"] > 0
    cols["first_ts_ns"] = _nullable(rec["first_ts"], timed)
    cols["last_ts_ns"] = _nullable(rec["last_ts"], timed)
    # a side that never sent still has its addresses: from the other side's packets
    c_ip, s_ip = (c["seen"] > 0) & ((c["has"] & h["ip"]) != 0), \
        (s["seen"] > 0) & ((s["has"] & h["ip"]) != 0)
    c_ports, s_ports = (c["seen"] > 0) & ((c["has"] & h["ports"]) != 0), \
        (s["seen"] > 0) & ((s["has"] & h["ports"]) != 0)
    client_code = np.where(c_ip, c["src"], s["dst"])
    server_code = np.where(c_ip, c["dst"], s["src"])
    cols["client"] = ip(client_code, c_ip | s_ip)
    cols["server"] = ip(server_code, c_ip | s_ip)
    cols["client_port"] = _nullable(np.where(c_ports, c["sport"], s["dport"]), c_ports | s_ports)
    cols["server_port"] = _nullable(np.where(c_ports, c["dport"], s["sport"]), c_ports | s_ports)
    if eth is not None:
        c_eth = (c["seen"] > 0) & ((c["has"] & h["eth"]) != 0)
        s_eth = (s["seen"] > 0) & ((s["has"] & h["eth"]) != 0)
        cols["_client_mac"] = eth(np.where(c_eth, c["eth_src"], s["eth_dst"]), c_eth | s_eth)
    for name, d in (("c2s", c), ("s2c", s)):
        cols[f"{name}_packets"] = d["packets"]
        cols[f"{name}_bytes"] = d["bytes"]
        cols[f"{name}_payload"] = d["payload"]
        # each count is what tshark's filter of the same name counts
        cols.update({f"{name}_{v}": d["verdicts"][:, k] for k, v in enumerate(VERDICTS)})
    cols["syn_ts_ns"] = _nullable(c["syn_ts"], c["syn_seen"] > 0)
    cols["synack_ts_ns"] = _nullable(s["synack_ts"], s["synack_seen"] > 0)
    for who, d, kind in (("client", c, "syn"), ("server", s, "synack")):
        seen, has = d[f"{kind}_seen"] > 0, d[f"{kind}_has"]
        cols[f"{who}_mss"] = _nullable(d[f"{kind}_mss"], seen & ((has & h["mss"]) != 0))
        cols[f"{who}_wscale"] = _nullable(d[f"{kind}_ws"], seen & ((has & h["wscale"]) != 0))
        cols[f"{who}_sack_perm"] = _nullable((has & h["sack_perm"]) != 0,
                                             seen & ((has & h["tcp"]) != 0))
        cols[f"{who}_timestamps"] = _nullable((has & h["timestamps"]) != 0, seen)
    cols["client_min_window"] = _nullable(c["min_window"], c["min_window"] != NO_WINDOW)
    cols["server_min_window"] = _nullable(s["min_window"], s["min_window"] != NO_WINDOW)
    # the first pure ACK from the client at or after the SYN-ACK completes the handshake
    cols["ack_ts_ns"] = _nullable(c["ack_ts"], c["ack_ts"] != NO_TIME_MAX)
    cols["established_frame"] = _nullable(c["ack_frame"], c["ack_frame"] != NO_ROW)
    cols["close_frame"] = _nullable(rec["close_frame"], rec["closed"] > 0)
    some_rtt = rec["nrtt"] > 0
    cols["ack_rtt_min_ns"] = _nullable(rec["rtt_min"], some_rtt)
    cols["ack_rtt_median_ns"] = _nullable(rec["rtt_median"], some_rtt)
    cols["ack_rtt_max_ns"] = _nullable(rec["rtt_max"], some_rtt)
    conns = pl.DataFrame(cols)
    history = _history(rec)
    rst_dir, client_dir = rec["rst_dir"].astype(np.int64), rec["client_dir"].astype(np.int64)
    fin_client, fin_server = c["fin"] > 0, s["fin"] > 0
    ended = np.select([(rst_dir >= 0) & (rst_dir == client_dir), rst_dir >= 0,
                       fin_client & fin_server, fin_client, fin_server],
                      ["rst_client", "rst_server", "fin_both", "fin_client", "fin_server"], "open")
    state = _conn_state(_endpoint_state(c["last_syn"], c["fin"], c["rst"], True),
                        _endpoint_state(s["last_syn"], s["fin"], s["rst"], False),
                        c["plain"] > 0, s["plain"] > 0, c["payload"], s["payload"], history)
    conns = conns.with_columns(
        history, state,
        pl.Series("ended_by", ended),
        (C("last_ts_ns") - C("first_ts_ns")).alias("duration_ns"),
        (C("synack_ts_ns") - C("syn_ts_ns")).alias("syn_to_synack_ns"),
        (C("ack_ts_ns") - C("synack_ts_ns")).alias("synack_to_ack_ns"),
    )
    conns = conns.with_columns(*keys.connection_keys(
        conns["first_ts_ns"], ip.packed(client_code, c_ip | s_ip), conns["client_port"],
        ip.packed(server_code, c_ip | s_ip), conns["server_port"]))
    every, same_server = _open_at_end(conns, client_by, (np.where(c_ip | s_ip, client_code, -1),
                                                         np.where(c_ip | s_ip, server_code, -1)))
    conns = conns.with_columns(pl.Series("client_open_at_end", every),
                               pl.Series("client_open_to_other_servers_at_end", every - same_server),
                               pl.Series("client_open_to_same_server_at_end", same_server))
    types = polars_schema(CONN_COLUMNS)
    return conns.select([C(name).cast(dtype) for name, dtype in types.items()])
