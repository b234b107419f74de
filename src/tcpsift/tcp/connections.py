"""The connection table: one row per TCP connection (`tcp.stream`), built from the
packet table and the TCP analysis with Polars aggregations (no per-packet Python).

    tcpsift.tcp.connections.connections(capture) -> polars.DataFrame   # also capture.conns

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

from tcpsift.schema import CONN_COLUMNS, polars_schema
from tcpsift.tcp import FILTER_BITS, FLAG_BITS, keys, shown_analysis

C = pl.col
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# Endpoint states (Zeek's TCP_ENDPOINT_*), in a small integer code.
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)


def has_verdict(name: str) -> pl.Expr:
    """tcpsift.tcp.verdict() on the `shown` column _per_packet computes once (the same
    test, without redoing the shown mask for every verdict of every aggregation)."""
    return (C("shown") & FILTER_BITS[name]) != 0


def _per_packet(capture, with_macs: bool = False) -> pl.DataFrame:
    """Packet and analysis columns of the TCP rows, with the client side marked."""
    pk = capture.packets
    tcp = capture.tcp
    macs = ("eth_src", "eth_dst") if with_macs else ()
    df = pl.concat([pk.select("frame", "ts_ns", "len", "src", "dst", "sport", "dport",
                              "tcp_flags", "tcp_len", "window", "mss", "wscale", "sack_perm",
                              "tsval", *macs),
                    tcp.select("stream", "direction", "analysis", "window_scaled", "ack_rtt_ns")],
                   how="horizontal").filter(C("stream").is_not_null())
    syn = (C("tcp_flags") & (SYN | ACK)) == SYN
    synack = (C("tcp_flags") & (SYN | ACK)) == (SYN | ACK)
    # which `direction` value is the client's, per stream
    roles = df.group_by("stream").agg(
        C("direction").filter(syn).first().alias("syn_dir"),
        C("direction").filter(synack).first().alias("synack_dir"),
        C("sport").filter(C("direction") == 0).first().alias("port0"),
        C("dport").filter(C("direction") == 0).first().alias("port1"),
    ).with_columns(
        pl.coalesce(C("syn_dir"), 1 - C("synack_dir").cast(pl.Int16),
                    pl.when(C("port0") < C("port1")).then(1)
                    .when(C("port0") > C("port1")).then(0)
                    .otherwise(0)).cast(pl.UInt8).alias("client_dir"))
    return (df.join(roles.select("stream", "client_dir"), on="stream", how="left")
              .with_columns((C("direction") == C("client_dir")).alias("c2s"),
                            shown_analysis().alias("shown")))


def _history(df: pl.DataFrame) -> pl.DataFrame:
    """Zeek-style history string per stream."""
    flags = C("tcp_flags")
    nflags = ((flags & SYN) > 0).cast(pl.UInt8) + ((flags & FIN) > 0).cast(pl.UInt8) \
        + ((flags & RST) > 0).cast(pl.UInt8)
    main = (pl.when(nflags > 1).then(pl.when((flags & (FIN | RST)) == (FIN | RST))
                                     .then(pl.lit("I")).otherwise(pl.lit("Q")))
            .when((flags & SYN) > 0).then(pl.when((flags & ACK) > 0).then(pl.lit("H"))
                                          .otherwise(pl.lit("S")))
            .when((flags & FIN) > 0).then(pl.lit("F"))
            .when((flags & RST) > 0).then(pl.lit("R"))
            .when(C("tcp_len") > 0).then(pl.lit("D"))
            .when((flags & ACK) > 0).then(pl.lit("A")))
    retrans = has_verdict("retransmission")
    zero_win = (C("window") == 0) & ((flags & RST) == 0) & ((flags & SYN) == 0)
    parts = []
    for rank, (letter, cond) in enumerate((("main", None), ("T", retrans), ("W", zero_win))):
        sel = df.select("stream", "frame", "c2s",
                        (main if cond is None else pl.when(cond).then(pl.lit(letter))).alias("ch"))
        parts.append(sel.drop_nulls("ch").with_columns(pl.lit(rank).alias("rank")))
    letters = pl.concat(parts).with_columns(
        pl.when(C("c2s")).then(C("ch")).otherwise(C("ch").str.to_lowercase()).alias("ch"))
    letters = letters.sort("stream", "frame", "rank").with_columns(
        (pl.int_range(pl.len()).over("stream", "ch") + 1).alias("nth"))
    repeat = C("ch").str.to_uppercase().is_in(["T", "W"])
    nth = C("nth")
    keep = (nth == 1) | (repeat & ((nth == 10) | (nth == 100) | (nth == 1000) | (nth == 10000)))
    return (letters.filter(keep).group_by("stream", maintain_order=True)
            .agg(C("ch").str.join("").alias("history")))


def _endpoint_states(df: pl.DataFrame) -> pl.DataFrame:
    """Final Zeek endpoint state of each side, from the last state-changing packet."""
    flags = C("tcp_flags")
    state = (pl.when((flags & RST) > 0).then(RESET)
             .when((flags & FIN) > 0).then(CLOSED)
             .when((flags & (SYN | ACK)) == SYN).then(SYN_SENT)
             .when((flags & (SYN | ACK)) == (SYN | ACK))
             .then(pl.when(C("c2s")).then(SYN_ACK_SENT).otherwise(ESTABLISHED))
             .otherwise(None))
    seen = df.with_columns(state.alias("st"))
    per_side = seen.group_by("stream", "c2s").agg(
        # RESET and CLOSED are final; else the latest handshake state; else data = PARTIAL
        pl.when((C("st") == RESET).any()).then(RESET)
        .when((C("st") == CLOSED).any()).then(CLOSED)
        .otherwise(C("st").drop_nulls().last()).alias("st"),
        ((C("tcp_flags") & (SYN | FIN | RST)) == 0).any().alias("plain"),
        C("tcp_len").sum().alias("size"))
    return per_side


def _conn_state(df: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    sides = _endpoint_states(df)
    o = sides.filter(C("c2s")).select("stream", C("st").alias("os"), C("plain").alias("o_plain"),
                                      C("size").alias("o_size"))
    r = sides.filter(~C("c2s")).select("stream", C("st").alias("rs"), C("plain").alias("r_plain"),
                                       C("size").alias("r_size"))
    s = (df.select("stream").unique().join(o, on="stream", how="left")
         .join(r, on="stream", how="left").join(history, on="stream", how="left"))
    # a client that only ever sent a SYN and then ACKs the SYN-ACK is established
    os_, rs_ = C("os"), C("rs")
    os_eff = (pl.when(os_.is_null() & C("o_plain").fill_null(False)).then(PARTIAL)
              .when((os_ == SYN_SENT) & rs_.is_in([ESTABLISHED, CLOSED, RESET])
                    & C("o_plain").fill_null(False)).then(ESTABLISHED)
              .when(os_ == SYN_ACK_SENT).then(ESTABLISHED)
              .otherwise(os_.fill_null(INACTIVE)))
    rs_eff = (pl.when(rs_.is_null() & C("r_plain").fill_null(False)).then(PARTIAL)
              .otherwise(rs_.fill_null(INACTIVE)))
    s = s.with_columns(os_eff.alias("os"), rs_eff.alias("rs"))
    o_inactive = C("os").is_in([INACTIVE, PARTIAL])
    r_inactive = C("rs").is_in([INACTIVE, PARTIAL])
    sizes_zero = (C("o_size").fill_null(0) == 0) & (C("r_size").fill_null(0) == 0)
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
    return s.select("stream", state.alias("conn_state"))


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
    opened = np.searchsorted(est_keys, t, "left") - np.searchsorted(est_keys, base, "left")
    shut = np.searchsorted(clo_keys, t, "right") - np.searchsorted(clo_keys, base, "left")
    itself = (established < end) & (closed > end)
    return opened - shut - itself


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
    elif client_by not in CLIENT_BY and not isinstance(client_by, dict):
        _client_keys(pl.DataFrame(), client_by)   # the error naming the valid values
    df = _per_packet(capture, with_macs=client_by == "mac")
    if df.is_empty():
        return pl.DataFrame(schema=polars_schema(CONN_COLUMNS))
    c2s = C("c2s")
    flags = C("tcp_flags")
    syn = (flags & (SYN | ACK)) == SYN
    synack = (flags & (SYN | ACK)) == (SYN | ACK)
    pure_ack = ((flags & (SYN | FIN | RST | ACK)) == ACK) & (C("tcp_len") == 0)

    def side(expr, client: bool):
        return expr.filter(c2s if client else ~c2s)

    aggs = [
        C("frame").min().alias("first_frame"), C("frame").max().alias("last_frame"),
        C("ts_ns").min().alias("first_ts_ns"), C("ts_ns").max().alias("last_ts_ns"),
        side(C("src"), True).first().alias("client"), side(C("sport"), True).first().alias("client_port"),
        side(C("dst"), True).first().alias("server"), side(C("dport"), True).first().alias("server_port"),
        side(C("dst"), False).first().alias("_client2"), side(C("dport"), False).first().alias("_cport2"),
        side(C("src"), False).first().alias("_server2"), side(C("sport"), False).first().alias("_sport2"),
    ]
    if "eth_src" in df.columns:
        # the client's Ethernet address: the source of its frames, else the destination
        # of the server's
        aggs.append(pl.coalesce(side(C("eth_src"), True).first().cast(pl.String),
                                side(C("eth_dst"), False).first().cast(pl.String))
                    .alias("_client_mac"))
    for name, client in (("c2s", True), ("s2c", False)):
        aggs += [
            side(C("frame"), client).count().alias(f"{name}_packets"),
            side(C("len").cast(pl.UInt64), client).sum().alias(f"{name}_bytes"),
            side(C("tcp_len").cast(pl.UInt64), client).sum().alias(f"{name}_payload"),
        ]
        # each count is what tshark's filter of the same name counts
        aggs += [side(has_verdict(v), client).sum().alias(f"{name}_{v}") for v in FLAG_BITS]
    aggs += [
        side(C("ts_ns"), True).filter(side(syn, True)).first().alias("syn_ts_ns"),
        side(C("ts_ns"), False).filter(side(synack, False)).first().alias("synack_ts_ns"),
        side(C("mss"), True).filter(side(syn, True)).first().alias("client_mss"),
        side(C("mss"), False).filter(side(synack, False)).first().alias("server_mss"),
        side(C("wscale"), True).filter(side(syn, True)).first().alias("client_wscale"),
        side(C("wscale"), False).filter(side(synack, False)).first().alias("server_wscale"),
        side(C("sack_perm"), True).filter(side(syn, True)).first().alias("client_sack_perm"),
        side(C("sack_perm"), False).filter(side(synack, False)).first().alias("server_sack_perm"),
        side(C("tsval").is_not_null(), True).filter(side(syn, True)).first().alias("client_timestamps"),
        side(C("tsval").is_not_null(), False).filter(side(synack, False)).first()
        .alias("server_timestamps"),
        side(C("window_scaled"), True).filter(side(~((flags & SYN) > 0), True)).min()
        .alias("client_min_window"),
        side(C("window_scaled"), False).filter(side(~((flags & SYN) > 0), False)).min()
        .alias("server_min_window"),
        C("ack_rtt_ns").min().alias("ack_rtt_min_ns"),
        C("ack_rtt_ns").median().cast(pl.Int64).alias("ack_rtt_median_ns"),
        C("ack_rtt_ns").max().alias("ack_rtt_max_ns"),
        side((flags & FIN) > 0, True).any().alias("_fin_c"),
        side((flags & FIN) > 0, False).any().alias("_fin_s"),
        C("c2s").filter((flags & RST) > 0).first().alias("_rst_by_client"),
        C("frame").filter((flags & (FIN | RST)) > 0).first().alias("close_frame"),
    ]
    conns = df.group_by("stream").agg(aggs)
    # the first pure ACK from the client after the SYN-ACK completes the handshake
    ack_ts = (df.join(conns.select("stream", "synack_ts_ns"), on="stream")
              .filter(c2s & pure_ack & (C("ts_ns") >= C("synack_ts_ns")))
              .group_by("stream").agg(C("ts_ns").min().alias("ack_ts_ns"),
                                      C("frame").min().alias("established_frame")))
    history = _history(df)
    conns = (conns.join(ack_ts, on="stream", how="left")
                  .join(history, on="stream", how="left")
                  .join(_conn_state(df, history), on="stream", how="left")
                  .sort("stream"))
    ended = (pl.when(C("_rst_by_client").is_not_null())
             .then(pl.when(C("_rst_by_client")).then(pl.lit("rst_client")).otherwise(pl.lit("rst_server")))
             .when(C("_fin_c").fill_null(False) & C("_fin_s").fill_null(False)).then(pl.lit("fin_both"))
             .when(C("_fin_c").fill_null(False)).then(pl.lit("fin_client"))
             .when(C("_fin_s").fill_null(False)).then(pl.lit("fin_server"))
             .otherwise(pl.lit("open")))
    conns = conns.with_columns(
        # a side that never sent still has its address: take it from the other direction
        pl.coalesce("client", "_client2").alias("client"),
        pl.coalesce("client_port", "_cport2").alias("client_port"),
        pl.coalesce("server", "_server2").alias("server"),
        pl.coalesce("server_port", "_sport2").alias("server_port"),
        (C("last_ts_ns") - C("first_ts_ns")).alias("duration_ns"),
        (C("synack_ts_ns") - C("syn_ts_ns")).alias("syn_to_synack_ns"),
        (C("ack_ts_ns") - C("synack_ts_ns")).alias("synack_to_ack_ns"),
        ended.alias("ended_by"),
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
