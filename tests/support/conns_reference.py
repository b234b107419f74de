"""The connection table as whole-table NumPy reductions: tcpsift's former implementation
(keyed by stream and side over the packet and TCP tables), kept as an independent
formulation that tests/test_conn_aggregates.py holds the kernel's aggregates
(tcpsift.tcp.connections, tables and streamed) equal to, column by column.

    conns_reference.connections(capture, client_by="ip") -> polars.DataFrame
"""
from __future__ import annotations

import numpy as np
import polars as pl

from tcpsift.schema import CONN_COLUMNS, polars_schema
from tcpsift.tcp import FILTER_BITS, FLAG_BITS, keys, shown_analysis
from tcpsift.tcp import connections as product

# endpoint states in the codes the product's _conn_state reads
from tcpsift.tcp.connections import (
    CLOSED,
    ESTABLISHED,
    NEVER,
    RESET,
    SYN_ACK_SENT,
    SYN_SENT,
    _client_keys,
    _open_counts,
)

C = pl.col
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# The packet-table columns connections() reads besides the TCP analysis' inputs (for
# tcpsift.read(columns=...): a command that wants only the connection table builds no
# other column).
PACKET_COLUMNS = ("frame", "ts_ns", "len", "src", "dst", "sport", "dport", "tcp_flags",
                  "tcp_len", "window", "mss", "wscale", "sack_perm", "tsval", "eth_src",
                  "eth_dst")


class _Rows:
    """The TCP rows of a capture as NumPy arrays (frame order), with each row's stream,
    side (`c2s`: sent by the client) and the keys the per-stream reductions use:
    `stream` (0 .. n-1) and `side` (2 * stream + c2s)."""

    def __init__(self, capture, with_macs: bool):
        pk, tcp = capture.packets, capture.tcp
        keep = tcp["stream"].is_not_null()
        macs = ("eth_src", "eth_dst") if with_macs else ()
        self.packets = pk.select("src", "dst", "sport", "dport", "mss", "wscale", "sack_perm",
                                 C("tsval").is_not_null().alias("timestamps"),
                                 *macs).filter(keep)
        num = pl.concat([pk.select("frame", "ts_ns", "len", "tcp_flags", "tcp_len", "window",
                                   "sport", "dport"),
                         tcp.select("stream", "direction", "window_scaled", "ack_rtt_ns",
                                    shown_analysis().alias("shown"))],
                        how="horizontal").filter(keep)
        self.n_rows = num.height
        # streams numbered 0 .. n-1 in the order of their numbers (a table of some
        # streams only, as the ladder passes, has gaps): `numbers` maps back
        numbers = num["stream"].to_numpy().astype(np.int64)
        present = np.bincount(numbers) > 0
        self.numbers = np.flatnonzero(present)
        self.stream = (np.cumsum(present) - 1).astype(np.int32)[numbers]
        self.n = len(self.numbers)
        # (narrow dtypes: a million-row capture's arrays are what this costs in memory)
        self.frame = num["frame"].to_numpy()
        self.ts = num["ts_ns"].fill_null(NO_TIME).to_numpy()
        self.len = num["len"].fill_null(0).to_numpy()
        # (a header cut before its flags has none: no test on them holds for its row)
        self.has_flags = num["tcp_flags"].is_not_null().to_numpy()
        self.flags = num["tcp_flags"].fill_null(0).to_numpy()
        self.tcp_len = num["tcp_len"].fill_null(0).to_numpy()
        self.window = num["window"].fill_null(-1).cast(pl.Int32).to_numpy()
        self.window_scaled = num["window_scaled"].fill_null(NO_WINDOW).to_numpy()
        self.shown = num["shown"].cast(pl.UInt32).to_numpy()
        self.has_rtt = num["ack_rtt_ns"].is_not_null().to_numpy()
        self.rtt = num["ack_rtt_ns"].fill_null(0).to_numpy()
        direction = num["direction"].fill_null(0).to_numpy().astype(np.int8)
        flags = self.flags
        self.syn = (flags & (SYN | ACK)) == SYN
        self.synack = (flags & (SYN | ACK)) == (SYN | ACK)
        # which `direction` is the client's: the first SYN's, else the one opposite the
        # first SYN-ACK, else the one sending from the higher port (equal: direction 0)
        syn_row = self.first(self.syn)
        synack_row = self.first(self.synack)
        dir0_row = self.first(direction == 0)
        sport, dport = num["sport"].fill_null(0).to_numpy(), num["dport"].fill_null(0).to_numpy()
        by_port = np.where((dir0_row >= 0) & (sport[dir0_row] < dport[dir0_row]), 1, 0)
        client_dir = np.where(syn_row >= 0, direction[syn_row],
                              np.where(synack_row >= 0, 1 - direction[synack_row], by_port))
        self.c2s = direction == client_dir[self.stream]
        self.side = 2 * self.stream + self.c2s

    # --- reductions per stream (keys = self.stream, n) or per side (self.side, 2n) ----
    # (ufunc.at takes its fast path only with intp keys and values of the output's
    # dtype: ten times faster than with the narrow arrays as they are)
    def first(self, mask, keys=None, n=None) -> np.ndarray:
        """The first row (frame order) of each key where `mask` holds; -1 where none."""
        keys, n = (self.stream, self.n) if keys is None else (keys, n)
        out = np.full(n, NO_ROW, np.int64)
        rows = np.flatnonzero(mask)
        np.minimum.at(out, keys[rows].astype(np.intp), rows)
        out[out == NO_ROW] = -1
        return out

    def count(self, mask=None, keys=None, n=None) -> np.ndarray:
        keys, n = (self.side, 2 * self.n) if keys is None else (keys, n)
        return np.bincount(keys if mask is None else keys[mask], minlength=n)

    def total(self, values, keys=None, n=None) -> np.ndarray:
        keys, n = (self.side, 2 * self.n) if keys is None else (keys, n)
        out = np.zeros(n, np.uint64)
        np.add.at(out, keys.astype(np.intp), values.astype(np.uint64))
        return out

    def extreme(self, values, ufunc, empty, mask=None, keys=None, n=None) -> np.ndarray:
        keys, n = (self.stream, self.n) if keys is None else (keys, n)
        out = np.full(n, empty, np.int64)
        if mask is not None:
            keys, values = keys[mask], values[mask]
        ufunc.at(out, keys.astype(np.intp), values.astype(np.int64))
        return out


NO_ROW = np.iinfo(np.int64).max
NO_TIME = np.iinfo(np.int64).min      # ts_ns of a frame without a time
NO_TIME_MAX = np.iinfo(np.int64).max  # the empty value of a minimum of times
NO_WINDOW = np.iinfo(np.uint32).max    # above any scaled window (65535 << 14)


def _at(values: np.ndarray, rows: np.ndarray, missing):
    """values[rows] with `missing` where rows is -1."""
    return np.where(rows >= 0, values[np.maximum(rows, 0)], missing)


def _either(first: pl.Series, second: pl.Series) -> pl.Series:
    """first, with second's values where first is null."""
    return first.zip_with(first.is_not_null(), second)


def _gather(series: pl.Series, rows: np.ndarray) -> pl.Series:
    """series[rows], null where rows is -1."""
    taken = series.gather(np.maximum(rows, 0))
    return pl.select(pl.when(pl.Series(rows >= 0)).then(taken)).to_series().alias(series.name)


def _rtt_statistics(r: _Rows) -> dict[str, pl.Series]:
    """Smallest, median (Polars' median: the mean of the two middle values, truncated)
    and largest ACK RTT of each stream; null where it has none."""
    stream, rtt = r.stream[r.has_rtt], r.rtt[r.has_rtt]
    order = np.lexsort((rtt, stream))
    stream, rtt = stream[order], rtt[order]
    counts = np.bincount(stream, minlength=r.n)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    some = counts > 0
    last = np.maximum(starts + counts - 1, 0)
    low = np.minimum(starts + (counts - 1) // 2, max(len(rtt) - 1, 0))
    high = np.minimum(starts + counts // 2, max(len(rtt) - 1, 0))
    values = rtt if len(rtt) else np.zeros(1, np.int64)
    median = ((values[low].astype(np.float64) + values[high]) / 2).astype(np.int64)
    none = pl.Series(~some)
    return {"ack_rtt_min_ns": pl.Series(values[np.minimum(starts, len(values) - 1)]).set(none, None),
            "ack_rtt_median_ns": pl.Series(median).set(none, None),
            "ack_rtt_max_ns": pl.Series(values[last]).set(none, None)}


HISTORY_LETTERS = "SHADFRIQ"
_S, _H, _A, _D, _F, _R, _I, _Q = range(8)
OCCURRENCES_SHOWN = np.array([0, 9, 99, 999, 9999])   # T and W at their 1st, 10th, 100th ...


def _history(r: _Rows) -> pl.Series:
    """Zeek-style history string per stream: each letter at its first appearance, T and
    W also at their 10th, 100th, ... (per side), in frame order, the server's in lower
    case; null for a stream with no letter."""
    flags = r.flags
    fin, rst, has_syn = (flags & FIN) > 0, (flags & RST) > 0, (flags & SYN) > 0
    several = has_syn.astype(np.int8) + fin + rst > 1
    main = np.select(
        [several & fin & rst, several, has_syn & ((flags & ACK) > 0), has_syn, fin, rst,
         r.tcp_len > 0, (flags & ACK) > 0],
        [_I, _Q, _H, _S, _F, _R, _D, _A], -1)
    server = (~r.c2s).astype(np.int64)
    rows = np.arange(r.n_rows, dtype=np.int64)
    # (stream, position, letter code) of every letter shown; position orders a frame's
    # main letter before its T before its W; codes: 2 * letter index + server
    events = []
    lettered = np.flatnonzero(main >= 0)
    code = 2 * main[lettered] + server[lettered]
    _, first = np.unique(r.stream[lettered] * 16 + code, return_index=True)
    events.append((r.stream[lettered[first]], 3 * lettered[first], code[first]))
    retrans = (r.shown & FILTER_BITS["retransmission"]) != 0
    zero_window = (r.window == 0) & ~rst & ~has_syn & r.has_flags
    for rank, letter, mask in ((1, len(HISTORY_LETTERS), retrans),
                               (2, len(HISTORY_LETTERS) + 1, zero_window)):
        hit = rows[mask]
        key = 2 * r.stream[hit] + server[hit]
        order = np.argsort(key, kind="stable")
        key, hit = key[order], hit[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        nth = np.arange(len(key)) - np.repeat(starts, np.diff(np.r_[starts, len(key)]))
        shown = np.isin(nth, OCCURRENCES_SHOWN)
        events.append((r.stream[hit[shown]], 3 * hit[shown] + rank,
                       2 * letter + server[hit[shown]]))
    stream, position, code = (np.concatenate(parts) for parts in zip(*events, strict=True))
    order = np.lexsort((position, stream))
    alphabet = np.frombuffer("".join(c + c.lower() for c in HISTORY_LETTERS + "TW").encode(),
                             np.uint8)
    text = alphabet[code[order]].tobytes()
    bounds = np.searchsorted(stream[order], np.arange(r.n + 1)).tolist()
    return pl.Series("history", [text[a:b].decode() if b > a else None
                                 for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
                     pl.String)


def _endpoint_state(r: _Rows, client: bool) -> np.ndarray:
    """Final Zeek endpoint state of one side of each stream (-1: none): RESET or CLOSED
    once seen; else the state of its last SYN; else none (PARTIAL/INACTIVE later)."""
    flags = r.flags
    mine = r.c2s == client
    rst, fin = mine & ((flags & RST) > 0), mine & ((flags & FIN) > 0)
    last_syn = r.extreme(np.arange(r.n_rows, dtype=np.int64), np.maximum, -1,
                         mask=mine & ((flags & SYN) > 0))
    syn_state = np.where((_at(flags, last_syn, 0) & ACK) > 0,
                         SYN_ACK_SENT if client else ESTABLISHED, SYN_SENT)
    return np.select([r.count(rst, r.stream, r.n) > 0, r.count(fin, r.stream, r.n) > 0,
                      last_syn >= 0], [RESET, CLOSED, syn_state], -1)


def _conn_state(r: _Rows, history: pl.Series) -> pl.Series:
    """Zeek's conn_state from both endpoints' final states (the rule is the product's,
    tcpsift.tcp.connections._conn_state: what this module checks is the states and the
    counts it is given, formulated its own way)."""
    plain = ((r.flags & (SYN | FIN | RST)) == 0) & r.has_flags
    size = r.total(r.tcp_len)
    counted = r.count(plain)
    return product._conn_state(_endpoint_state(r, True), _endpoint_state(r, False),
                               counted[1::2] > 0, counted[0::2] > 0, size[1::2], size[0::2],
                               history)


def _open_at_end(conns: pl.DataFrame, client_by) -> tuple[np.ndarray, np.ndarray]:
    """(all other connections of the client, those to the same server address) open at
    each connection's end: its first FIN or RST, else its last packet."""
    first = conns["first_frame"].to_numpy().astype(np.int64)
    est = conns["established_frame"].fill_null(0).to_numpy().astype(np.int64)
    # no handshake seen (mid-stream): open from its first packet
    est = np.where(conns["syn_ts_ns"].is_null().to_numpy(), first, np.where(est > 0, est, NEVER))
    closed = conns["close_frame"].fill_null(NEVER).to_numpy().astype(np.int64)
    end = np.where(closed < NEVER, closed, conns["last_frame"].to_numpy().astype(np.int64))
    keys = pl.DataFrame({"client": _client_keys(conns, client_by).cast(pl.String),
                         "server": conns["server"].cast(pl.String)})
    client = keys.select(pl.col("client").rank("dense")).to_series().to_numpy()
    client_server = keys.select(pl.struct("client", "server").rank("dense")).to_series().to_numpy()
    every = _open_counts(client, est, closed, end)
    return every, _open_counts(client_server, est, closed, end)


def connections(capture, client_by="ip") -> pl.DataFrame:
    """One row per TCP connection; columns in docs/schema.md (connection table).

    `client_by` says what one client is when counting the connections it had open at
    each connection's end: "ip" its address; "mac" the Ethernet source address of its
    packets (a host with an IPv4 and an IPv6 address is then one client; a connection
    whose frames carry no Ethernet header keeps its address); or a dict mapping
    addresses to host names."""
    if client_by == "mac" and "eth_src" not in capture.packets.columns:
        raise ValueError("client_by='mac' needs the packet table's eth_src column")
    product._check_client_by(client_by)
    r = _Rows(capture, with_macs=client_by == "mac")
    if not r.n_rows:
        return pl.DataFrame(schema=polars_schema(CONN_COLUMNS))
    pk, flags, n = r.packets, r.flags, r.n
    first_c2s, first_s2c = r.first(r.c2s), r.first(~r.c2s)
    syn_row = r.first(r.syn & r.c2s)
    synack_row = r.first(r.synack & ~r.c2s)
    cols: dict[str, np.ndarray | pl.Series] = {
        "stream": r.numbers,
        "first_frame": r.extreme(r.frame, np.minimum, NO_ROW),
        "last_frame": r.extreme(r.frame, np.maximum, -1),
    }
    timed = r.ts != NO_TIME
    for name, ufunc, empty in (("first_ts_ns", np.minimum, NO_TIME_MAX),
                               ("last_ts_ns", np.maximum, NO_TIME)):
        cols[name] = pl.Series(r.extreme(r.ts, ufunc, empty, mask=timed)).replace(empty, None)
    # a side that never sent still has its addresses: from the other side's packets
    cols["client"] = _either(_gather(pk["src"], first_c2s), _gather(pk["dst"], first_s2c))
    cols["server"] = _either(_gather(pk["dst"], first_c2s), _gather(pk["src"], first_s2c))
    cols["client_port"] = _either(_gather(pk["sport"], first_c2s),
                                      _gather(pk["dport"], first_s2c))
    cols["server_port"] = _either(_gather(pk["dport"], first_c2s),
                                      _gather(pk["sport"], first_s2c))
    if "eth_src" in pk.columns:
        cols["_client_mac"] = _either(_gather(pk["eth_src"], first_c2s).cast(pl.String),
                                          _gather(pk["eth_dst"], first_s2c).cast(pl.String))
    packets, frame_bytes, payload = r.count(), r.total(r.len), r.total(r.tcp_len)
    verdicts = {v: r.count((r.shown & FILTER_BITS[v]) != 0) for v in FLAG_BITS}
    for name, side in (("c2s", 1), ("s2c", 0)):
        cols[f"{name}_packets"] = packets[side::2]
        cols[f"{name}_bytes"] = frame_bytes[side::2]
        cols[f"{name}_payload"] = payload[side::2]
        # each count is what tshark's filter of the same name counts
        cols.update({f"{name}_{v}": counts[side::2] for v, counts in verdicts.items()})
    cols["syn_ts_ns"] = pl.Series(_at(r.ts, syn_row, 0)).set(pl.Series(syn_row < 0), None)
    cols["synack_ts_ns"] = pl.Series(_at(r.ts, synack_row, 0)).set(pl.Series(synack_row < 0),
                                                                   None)
    for option in ("mss", "wscale", "sack_perm", "timestamps"):
        cols[f"client_{option}"] = _gather(pk[option], syn_row)
        cols[f"server_{option}"] = _gather(pk[option], synack_row)
    not_syn = ((flags & SYN) == 0) & r.has_flags
    for name, client in (("client_min_window", True), ("server_min_window", False)):
        smallest = r.extreme(r.window_scaled, np.minimum, NO_WINDOW,
                             mask=not_syn & (r.c2s == client))
        cols[name] = pl.Series(smallest).replace(NO_WINDOW, None)
    # the first pure ACK from the client at or after the SYN-ACK completes the handshake
    synack_ts = _at(r.ts, synack_row, NO_TIME_MAX)[r.stream]
    pure_ack = ((flags & (SYN | FIN | RST | ACK)) == ACK) & (r.tcp_len == 0)
    completing = r.c2s & pure_ack & timed & (r.ts >= synack_ts)
    cols["ack_ts_ns"] = pl.Series(r.extreme(r.ts, np.minimum, NO_TIME_MAX, mask=completing)
                                  ).replace(NO_TIME_MAX, None)
    cols["established_frame"] = pl.Series(r.extreme(r.frame, np.minimum, NO_ROW,
                                                    mask=completing)).replace(NO_ROW, None)
    closing = r.first((flags & (FIN | RST)) > 0)
    cols["close_frame"] = pl.Series(_at(r.frame, closing, 0)).set(pl.Series(closing < 0), None)
    first_rst = r.first((flags & RST) > 0)
    conns = pl.DataFrame(cols)
    conns = conns.with_columns(**_rtt_statistics(r))
    history = _history(r)
    rst_by_client = _at(r.c2s, first_rst, False)
    fin_client = r.count(((flags & FIN) > 0) & r.c2s, r.stream, n) > 0
    fin_server = r.count(((flags & FIN) > 0) & ~r.c2s, r.stream, n) > 0
    ended = np.select([(first_rst >= 0) & rst_by_client, first_rst >= 0, fin_client & fin_server,
                       fin_client, fin_server],
                      ["rst_client", "rst_server", "fin_both", "fin_client", "fin_server"], "open")
    conns = conns.with_columns(
        history, _conn_state(r, history),
        pl.Series("ended_by", ended),
        (C("last_ts_ns") - C("first_ts_ns")).alias("duration_ns"),
        (C("synack_ts_ns") - C("syn_ts_ns")).alias("syn_to_synack_ns"),
        (C("ack_ts_ns") - C("synack_ts_ns")).alias("synack_to_ack_ns"),
    )
    conns = conns.with_columns(
        keys.uid(conns["first_ts_ns"], conns["client"], conns["client_port"], conns["server"],
                 conns["server_port"]),
        keys.community_id(conns["client"], conns["client_port"], conns["server"],
                          conns["server_port"]))
    every, same_server = _open_at_end(conns, client_by)
    conns = conns.with_columns(pl.Series("client_open_at_end", every),
                               pl.Series("client_open_to_other_servers_at_end", every - same_server),
                               pl.Series("client_open_to_same_server_at_end", same_server))
    types = polars_schema(CONN_COLUMNS)
    return conns.select([C(name).cast(dtype) for name, dtype in types.items()])
