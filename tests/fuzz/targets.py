"""Fuzz targets (issue 17): one per component that reads what a capture's author wrote.

Each target is a Hypothesis strategy of inputs (bytes, plus a few parameters) and a
function that runs the component on one input and fails (raises) on a finding:

- `pcap`, `pcapng`: the record walkers, through the blocks they are read in (a random
  block size: records cut by a block's end are carried over); the records must be the
  same whatever the block size, lie within the file, and be at most 262,144 bytes.
- `decode`: the header decoder and IP reassembly (`tcpsift.read` of a pcap of built
  frames, then mutated; or of a mutated corpus capture, checked by tests/test_fuzz.py's
  `check_mutant`): no impossible value in the packet table.
- `filter`: the `-Y` parser and both evaluators (tables: fields/filter.py; arrays:
  textstream/select.py parses with its own lookup) on filters built from the grammar,
  random text and deep nesting.
- `gzip`, `zstd`: the decompressors, through `tcpsift.read` and `frame_bytes` (which
  decompresses again) of a damaged compressed capture.

For every input: no exception but the documented ones (`CaptureError`, `FieldError`,
each a one-line message), within `HANG_SECONDS` (a watchdog ends the process
otherwise, printing where it hung) and within `MEMORY_MB` of resident memory more than
before it (the kernel's high-water mark, reset before each input).

The seeds and mutators are tests/test_fuzz.py's (corpus captures, container length
fields, header lengths); tests/fuzz/test_targets.py runs each target briefly (the quick
tier); scripts/fuzz.py runs one for long.
"""
from __future__ import annotations

import faulthandler
import gzip
import os
import resource
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import test_fuzz as mutation  # noqa: E402  (the seeds and mutators of the mutation fuzz)
from support import capwriter as cw  # noqa: E402

import tcpsift  # noqa: E402
from tcpsift.capture.reader import SourceWalk  # noqa: E402
from tcpsift.capture.source import open_source  # noqa: E402
from tcpsift.decode import _decode  # noqa: E402
from tcpsift.display_filter import FieldError  # noqa: E402
from tcpsift.errors import CaptureError  # noqa: E402

HANG_SECONDS = float(os.environ.get("TCPSIFT_FUZZ_HANG_SECONDS", "20"))
MEMORY_MB = int(os.environ.get("TCPSIFT_FUZZ_MEMORY_MB", "600"))
MAX_FRAME = 262144
SAMPLE = TESTS.parent / "samples" / "sample.pcap"


@dataclass
class Input:
    data: bytes                       # the file's bytes (a filter: its UTF-8 text)
    params: dict = field(default_factory=dict)

    def __repr__(self):               # what Hypothesis prints for a failing example
        return f"Input({self.data[:200]!r}{'...' if len(self.data) > 200 else ''}, {self.params})"


@dataclass
class Target:
    name: str
    strategy: st.SearchStrategy
    run: Callable[[Input], None]
    suffix: str = ".bin"


# ----------------------------------------------------------------------------- guards

def one_line(e: Exception) -> None:
    msg = str(e).strip()
    assert msg and "\n" not in msg and len(msg) < 2000, f"{type(e).__name__}: {msg[:300]!r}"


_CLEAR_REFS = "/proc/self/clear_refs"


def _reset_peak() -> bool:
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")            # resets VmHWM, the peak resident set (Linux >= 4.0)
        return True
    except OSError:
        return False


def _status_mb(key: str = "VmHWM:") -> float:
    """The peak (VmHWM) or current (VmRSS) resident set of this process."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def guarded(run: Callable[[Input], None]) -> Callable[[Input], None]:
    """`run` under the watchdog and the memory check; documented errors are one line."""
    def check(inp: Input) -> None:
        reset = _reset_peak()
        base = _status_mb("VmRSS:")
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
        try:
            run(inp)
        except (CaptureError, FieldError) as e:
            one_line(e)
        finally:
            faulthandler.cancel_dump_traceback_later()
        if reset:       # (otherwise the process's peak: not this input's)
            grew = _status_mb() - base
            assert grew <= MEMORY_MB, f"resident memory grew by {grew:.0f} MB > {MEMORY_MB} MB"
    return check


class _TempFile:
    """One temporary file, rewritten for each input (the readers take paths)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tcpsift-fuzz-")

    def write(self, data: bytes, suffix: str = ".cap") -> str:
        path = os.path.join(self.dir, "input" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        return path


_TMP = _TempFile()


# ----------------------------------------------------------------------------- mutators

def _flip(draw, data: bytes) -> bytes:
    """Bit flips, byte runs overwritten, a cut, bytes inserted: anywhere."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not b:
            break
        kind = draw(st.sampled_from(["flip", "bytes", "cut", "insert", "u32"]))
        off = draw(st.integers(0, len(b) - 1))
        if kind == "flip":
            b[off] ^= 1 << draw(st.integers(0, 7))
        elif kind == "bytes":
            val = draw(st.binary(min_size=1, max_size=8))
            b[off:off + len(val)] = val
        elif kind == "cut":
            del b[off:]
        elif kind == "insert":
            b[off:off] = draw(st.binary(min_size=1, max_size=16))
        else:
            val = draw(st.sampled_from([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFC, MAX_FRAME + 1,
                                        len(b) - off, len(b) - off + 4]))
            b[off:off + 4] = struct.pack(draw(st.sampled_from("<>")) + "I", val & 0xFFFFFFFF)
    return bytes(b)


def _seeds(kind: str) -> list[str]:
    return [s for s in mutation.AVAILABLE
            if (mutation.PUBLIC / s).read_bytes()[:4] in
            ((b"\x0a\x0d\x0d\x0a",) if kind == "pcapng" else
             (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"))]


@st.composite
def _corpus_mutant(draw, kind: str):
    """tests/test_fuzz.py's mutant of a seed of this container."""
    names = _seeds(kind)
    if not names:
        return _flip(draw, draw(_built(kind)))
    name, data, _first, _desc = draw(mutation.mutant().filter(lambda m: m[0] in names))
    return data


_FRAME_BUILDERS = ["tcp", "udp", "icmp", "tcp6", "icmp6-error", "gre", "vlan", "mpls", "frag",
                   "raw"]


@st.composite
def frame(draw) -> bytes:
    """An Ethernet frame of a few layers, fields drawn, often damaged."""
    kind = draw(st.sampled_from(_FRAME_BUILDERS))
    payload = draw(st.binary(max_size=48))
    opts = draw(st.lists(st.sampled_from([cw.opt_nop(), cw.opt_mss(1460), cw.opt_ws(14),
                                          cw.opt_sack_perm(), cw.opt_ts(1, 2),
                                          cw.opt_sack([(1, 2), (3, 4)]), cw.opt_eol(),
                                          b"\x05\x01", b"\x08\x0a\x00", b"\x02\xff"]),
                         max_size=5))
    opts = b"".join(opts)[:40]
    opts += b"\x01" * (-len(opts) % 4)
    sport, dport = draw(st.integers(0, 65535)), draw(st.integers(0, 65535))
    if kind == "raw":
        return draw(st.binary(max_size=128))
    if kind in ("tcp", "vlan", "mpls", "gre"):
        inner = cw.ipv4(cw.tcp(payload, sport=sport, dport=dport, options=opts,
                               seq=draw(st.integers(0, 2**32 - 1))))
    elif kind == "udp":
        inner = cw.ipv4(cw.udp(payload, sport=sport, dport=dport), proto=cw.IPPROTO_UDP)
    elif kind == "icmp":
        inner = cw.ipv4(cw.icmp(draw(st.integers(0, 255)), draw(st.integers(0, 255)),
                                rest=b"\0" * 4 + cw.ipv4(cw.tcp(payload))[:48]),
                        proto=cw.IPPROTO_ICMP)
    elif kind == "tcp6":
        inner = cw.ipv6(cw.tcp(payload, sport=sport, dport=dport, options=opts))
        return cw.ether(inner, ethertype=cw.ETH_IPV6)
    elif kind == "icmp6-error":
        inner = cw.ipv6(cw.icmpv6(1, 0, rest=b"\0" * 4 + cw.ipv6(cw.udp(payload),
                                                               nh=cw.IPPROTO_UDP)),
                        nh=cw.IPPROTO_ICMPV6)
        return cw.ether(inner, ethertype=cw.ETH_IPV6)
    else:   # frag
        inner = cw.ipv4(payload or b"\0" * 8, proto=cw.IPPROTO_UDP,
                        ident=draw(st.integers(0, 3)), mf=draw(st.booleans()),
                        frag_offset=draw(st.integers(0, 8191)))
    if kind == "gre":
        inner = cw.ipv4(cw.gre(inner), proto=cw.IPPROTO_GRE)
    if kind == "mpls":
        return cw.ether(cw.mpls(inner, labels=[(i, 0, 64) for i in range(draw(st.integers(1, 40)))]),
                        ethertype=cw.ETH_MPLS)
    if kind == "vlan":
        return cw.ether(inner, vlans=[draw(st.integers(0, 4095))] * draw(st.integers(1, 120)))
    return cw.ether(inner)


def _damage_frame(draw, f: bytes) -> bytes:
    return _flip(draw, f) if f and draw(st.booleans()) else f


@st.composite
def _built(draw, kind: str):
    """A capture of built frames (some damaged), in either container and byte order."""
    frames = [_damage_frame(draw, f) for f in draw(st.lists(frame(), min_size=1, max_size=12))]
    endian = draw(st.sampled_from("<>"))
    records = [cw.Record(1_700_000_000_000_000_000 + i * 1000, f) for i, f in enumerate(frames)]
    if kind == "pcap":
        return cw.pcap_file(records, endian=endian, nsec=draw(st.booleans()))
    return cw.pcapng_file(records, endian=endian,
                          tsresol=draw(st.sampled_from([None, 6, 9])))


# ----------------------------------------------------------------------------- walkers

def _records(path: str, block: int | None) -> tuple[list, bool]:
    walk = SourceWalk(open_source(path), block=block)
    out = []
    for rec, _ in walk.chunks(_decode.AddressTable(), _decode.LayerBuffer(), _decode.U32Buffer(),
                              0, 64, reuse=1, decode=False):
        out += zip(*(rec[k].tolist() for k in ("offset", "cap_len", "len", "ts_ns", "iface")))
    return out, walk.complete


def _run_walker(inp: Input) -> None:
    path = _TMP.write(inp.data)
    try:
        whole, complete = _records(path, None)
    except CaptureError as e:
        one_line(e)
        try:    # a file is refused whatever its blocks
            _records(path, inp.params["block"])
        except CaptureError:
            return
        raise AssertionError("refused whole, read in blocks") from None
    for off, cap_len, *_ in whole:
        assert cap_len <= MAX_FRAME and 0 <= off and off + cap_len <= len(inp.data), (off, cap_len)
    assert [r[0] for r in whole] == sorted(r[0] for r in whole)
    blocked, complete_b = _records(path, inp.params["block"])
    assert blocked == whole and complete_b == complete, (
        f"block {inp.params['block']}: {len(blocked)} records, whole: {len(whole)}")


@st.composite
def _walker_input(draw, kind: str):
    data = draw(st.one_of(_corpus_mutant(kind), _built(kind),
                          st.builds(lambda d, x: d + x, _built(kind),
                                    st.binary(min_size=1, max_size=64))))
    if draw(st.booleans()):
        data = _flip(draw, data)
    block = draw(st.sampled_from([1, 3, 16, 97, 4099, 1 << 16]))
    if block < 16 and len(data) > 4000:
        block = 97
    return Input(data, {"block": block})


# ----------------------------------------------------------------------------- decoder

def _run_decode(inp: Input) -> None:
    if "seed" in inp.params:
        mutation.check_mutant(inp.params["seed"], inp.data, inp.params["first"], "fuzz",
                              check_tcp_len=True)
        return
    path = _TMP.write(inp.data)
    cap = tcpsift.read(path)
    pk = cap.packets
    bad = mutation.impossible_values(pk, len(inp.data), check_tcp_len=True)
    assert not bad, "; ".join(bad)
    for i in range(min(pk.height, 16)):
        fb = cap.frame_bytes(i + 1)
        assert len(fb) == pk["cap_len"][i]
        assert len(cap.payload(i + 1)) <= len(fb)
    assert cap.tcp.height == pk.height      # the TCP analysis over whatever was decoded
    assert cap.conns is not None


@st.composite
def _decode_input(draw):
    if mutation.AVAILABLE and draw(st.integers(0, 3)) == 0:
        name, data, first, _desc = draw(mutation.mutant())
        return Input(data, {"seed": name, "first": first})
    frames = [_damage_frame(draw, f) for f in draw(st.lists(frame(), min_size=1, max_size=24))]
    lt = draw(st.sampled_from(sorted(_decode.SUPPORTED_LINKTYPES)))
    if lt != cw.LINKTYPE_ETHERNET:      # the frame's link header is then part of the mess
        frames = [f[draw(st.sampled_from([0, 12, 14])):] for f in frames]
    records = [cw.Record(1_700_000_000_000_000_000 + i * 1000, f) for i, f in enumerate(frames)]
    return Input(cw.pcap_file(records, linktype=lt), {"linktype": lt})


# ----------------------------------------------------------------------------- -Y

_SAMPLE_CAP = None


def _sample():
    global _SAMPLE_CAP
    if _SAMPLE_CAP is None:
        _SAMPLE_CAP = tcpsift.read(SAMPLE)
    return _SAMPLE_CAP


def _run_filter(inp: Input) -> None:
    from tcpsift.fields.filter import compile_filter
    from tcpsift.textstream.select import array_filter

    text = inp.data.decode("utf-8", "replace")
    array_filter(text)               # the array path's parse: None when it cannot
    mask = compile_filter(text)      # FieldError: the usage error `fields -Y` prints
    cap = _sample()
    m = mask(cap)
    assert len(m) == cap.packets.height, (len(m), cap.packets.height)


def _field_names() -> list[str]:
    from tcpsift.display_filter import PROTOCOLS
    from tcpsift.fields import FIELDS
    return sorted(FIELDS) + sorted(PROTOCOLS)


_VALUES = st.one_of(
    st.integers(-2**70, 2**70).map(str), st.sampled_from([
        "0x10", "010", "08", "-0", "1e400", "inf", "-inf", "nan", "NaN", "1.5", ".5", "1e-9",
        "192.0.2.10", "10.0.0.1/8", "2001:db8::1", "::", "fe80::1%eth0", "00:11:22:33:44:55",
        "0011.2233.4455", "true", "false", "1", "0", "\"x\"", "tcp", "99999999999999999999999"]),
    st.from_regex(r"[A-Za-z0-9_.:/\-]{1,12}", fullmatch=True))
_OPS = ["==", "!=", "~=", "<", ">", "<=", ">=", "eq", "ne", "lt", "gt", "le", "ge", "any_ne",
        "contains", "matches", "in", "&", "==="]


@st.composite
def _filter_text(draw):
    names = _field_names()

    def atom():
        return st.one_of(
            st.sampled_from(names),
            st.builds(lambda f, o, v: f"{f} {o} {v}", st.sampled_from(names), st.sampled_from(_OPS),
                      _VALUES))
    tree = st.recursive(atom(), lambda kids: st.one_of(
        st.builds(lambda a, o, b: f"{a} {o} {b}", kids, st.sampled_from(["and", "or", "&&", "||", "xor"]),
                  kids),
        st.builds(lambda a, n: f"{n} {a}", kids, st.sampled_from(["not", "!", "!!"])),
        st.builds(lambda a: f"({a})", kids)), max_leaves=12)
    how = draw(st.sampled_from(["tree", "tree", "tree", "text", "deep", "damaged"]))
    if how == "tree":
        return draw(tree)
    if how == "text":
        return draw(st.text(alphabet=st.sampled_from(list("()!&|=<>~ .:-_0123456789abctpudix\"'\\\t\n"))
                            | st.characters(), max_size=40))
    if how == "deep":
        n = draw(st.sampled_from([10, 100, 500, 999, 1000, 2000, 5000]))
        a = draw(st.sampled_from(names))
        return draw(st.sampled_from([
            "(" * n + a + ")" * n, "not " * n + a, " or ".join([a] * n), " and ".join([a] * n),
            "!" * n + a, "(" * n + a, a + ")" * n, "(not " * n + a + ")" * n]))
    t = draw(tree)
    if not t:
        return t
    i = draw(st.integers(0, len(t) - 1))
    return t[:i] + draw(st.text(max_size=3)) + t[i + draw(st.integers(0, 3)):]


# ----------------------------------------------------------------------------- gzip, zstd

def _zstd(data: bytes) -> bytes:
    import zstandard
    return zstandard.ZstdCompressor(level=3).compress(data)


@st.composite
def _compressed_input(draw, kind: str):
    name = draw(st.sampled_from(["pcap", "pcapng"]))
    inner = draw(_built(name))
    pack = (lambda d: gzip.compress(d, mtime=0)) if kind == "gzip" else _zstd
    members = draw(st.integers(1, 3))
    if members > 1:       # several members or frames: the inner file split among them
        cuts = sorted(draw(st.lists(st.integers(0, len(inner)), min_size=members - 1,
                                    max_size=members - 1)))
        parts = [inner[a:b] for a, b in zip([0, *cuts], [*cuts, len(inner)])]
        data = b"".join(pack(p) for p in parts)
    else:
        data = pack(inner)
    how = draw(st.sampled_from(["flip", "flip", "tail", "zeros", "random"]))
    if how == "flip":
        data = _flip(draw, data)
    elif how == "tail":
        data += draw(st.binary(min_size=1, max_size=32))
    elif how == "zeros":
        data += b"\0" * draw(st.integers(1, 5000))
    else:   # the magic, then anything
        data = data[:4] + draw(st.binary(max_size=256))
    return Input(data, {"inner": name})


def _run_compressed(inp: Input) -> None:
    path = _TMP.write(inp.data)
    cap = tcpsift.read(path)
    pk = cap.packets
    bad = mutation.impossible_values(pk, 1 << 62)
    assert not bad, "; ".join(bad)
    n = pk.height
    for i in sorted({1, n, (n + 1) // 2} if n else (), reverse=True):   # backwards: inflated again
        assert len(cap.frame_bytes(i)) == pk["cap_len"][i - 1]


# ----------------------------------------------------------------------------- registry

TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("pcap", _walker_input("pcap"), guarded(_run_walker), ".pcap"),
    Target("pcapng", _walker_input("pcapng"), guarded(_run_walker), ".pcapng"),
    Target("decode", _decode_input(), guarded(_run_decode), ".pcap"),
    Target("filter", _filter_text().map(lambda t: Input(t.encode("utf-8", "surrogatepass"))),
           guarded(_run_filter), ".txt"),
    Target("gzip", _compressed_input("gzip"), guarded(_run_compressed), ".gz"),
    Target("zstd", _compressed_input("zstd"), guarded(_run_compressed), ".zst"),
]}
