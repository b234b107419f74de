#!/usr/bin/env python3
"""Make samples/sample.pcap from real Linux TCP connections (needs root).

    sudo python3 scripts/make_sample.py [--out samples/sample.pcap]

Two network namespaces joined by one veth pair (MTU 1500):

    client namespace                               server namespace
    192.0.2.10/24, 2001:db8:1::10/64  <-- veth -->  198.51.100.10/24, 2001:db8:2::10/64

(each side reaches the other's prefix through an on-link route, so ARP and
neighbour discovery happen on the wire).  Both ends transmit with checksum
offload and TSO off and neither end does GRO, so every frame is a real
<= 1514-byte wire frame with a correct checksum.  tcpdump runs in the client
namespace on its veth end, snaplen 0, filter `tcp or arp or icmp6` (this
keeps ARP and neighbour discovery but not the MLD reports the kernel sends
on its own).  The traffic is made by this same script, run again inside the
namespaces (`--role server` / `--role client`), stdlib only:

  1. IPv4 GET /obj/300        one short exchange, server closes first
  2. IPv4 GET /obj/4000       response of three segments
  3. IPv4 GET /obj/24000      larger response (17 segments)
  4. IPv4 keep-alive: GET /obj/150 then GET /obj/900 on one connection,
     then the client closes first
  5. IPv4 GET /slow/400       the server waits 250 ms before answering
  6. IPv4 GET /obj/30000      the client reads the headers, then resets the
                              connection (SO_LINGER 0 close: RST)
  7. IPv4 connect to port 81  nobody listens: SYN -> RST/ACK (refused)
  8. IPv6 GET /obj/300
  9. IPv6 GET /obj/6000
 10. IPv6 GET /slow/200       the server waits 150 ms
 11. IPv6 connect to port 81  refused

The namespaces, the veth pair and every process started here are removed at
the end, also on error or Ctrl-C.  Namespace and interface names carry this
process's id, so two runs do not collide.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent

CLIENT4, SERVER4 = "192.0.2.10", "198.51.100.10"
CLIENT6, SERVER6 = "2001:db8:1::10", "2001:db8:2::10"
PORT, CLOSED_PORT = 80, 81
BODY = bytes((i * 7 + 13) & 0xFF for i in range(65536))  # a fixed, printable-free pattern

# (name, family, kind, argument)
PLAN = [
    ("v4-short", 4, "get", "/obj/300"),
    ("v4-medium", 4, "get", "/obj/4000"),
    ("v4-large", 4, "get", "/obj/24000"),
    ("v4-keepalive", 4, "keepalive", ["/obj/150", "/obj/900"]),
    ("v4-slow", 4, "get", "/slow/400"),
    ("v4-client-rst", 4, "abort", "/obj/30000"),
    ("v4-refused", 4, "refused", None),
    ("v6-short", 6, "get", "/obj/300"),
    ("v6-medium", 6, "get", "/obj/6000"),
    ("v6-slow", 6, "get", "/slow/200"),
    ("v6-refused", 6, "refused", None),
]
SLOW_MS = {4: 250, 6: 150}


# ------------------------------------------------------------------ server role
def serve_conn(conn: socket.socket) -> None:
    try:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            parts = lines[0].split()
            path = parts[1].decode() if len(parts) > 1 else "/"
            keep = any(line.lower() == b"connection: keep-alive" for line in lines[1:])
            n = 0
            if path.startswith("/obj/") or path.startswith("/slow/"):
                n = min(int(path.rsplit("/", 1)[1] or 0), len(BODY))
            if path.startswith("/slow/"):
                fam6 = conn.family == socket.AF_INET6
                time.sleep(SLOW_MS[6 if fam6 else 4] / 1000)
            hdr = (b"HTTP/1.1 200 OK\r\nServer: tcpsift-sample\r\n"
                   b"Content-Type: application/octet-stream\r\n"
                   b"Content-Length: %d\r\nConnection: %s\r\n\r\n"
                   % (n, b"keep-alive" if keep else b"close"))
            conn.sendall(hdr + BODY[:n])
            if not keep:
                return
    except OSError:  # the client reset the connection
        pass
    finally:
        conn.close()


def role_server() -> int:
    socks = []
    for fam, addr in ((socket.AF_INET, SERVER4), (socket.AF_INET6, SERVER6)):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, PORT))
        s.listen(16)
        socks.append(s)

    def accept_loop(s):
        while True:
            conn, _ = s.accept()
            threading.Thread(target=serve_conn, args=(conn,), daemon=True).start()

    for s in socks:
        threading.Thread(target=accept_loop, args=(s,), daemon=True).start()
    print("listening", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    return 0


# ------------------------------------------------------------------ client role
def read_response(s: socket.socket) -> tuple[bytes, int]:
    """Read one response with Content-Length; return (headers, body bytes read)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    n = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":", 1)[1])
    got = len(body)
    while got < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += len(chunk)
    return head, got


def request(path: str, host: str, keep: bool) -> bytes:
    return (b"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tcpsift-sample/1\r\nAccept: */*\r\n"
            b"Connection: %s\r\n\r\n" % (path.encode(), host.encode(),
                                          b"keep-alive" if keep else b"close"))


def role_client() -> int:
    log = []
    for name, v, kind, arg in PLAN:
        fam = socket.AF_INET if v == 4 else socket.AF_INET6
        src, dst = (CLIENT4, SERVER4) if v == 4 else (CLIENT6, SERVER6)
        host = dst if v == 4 else "[%s]" % dst
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.bind((src, 0))
        sport = s.getsockname()[1]
        entry = {"name": name, "ip": v, "src": src, "sport": sport, "dst": dst,
                 "dport": CLOSED_PORT if kind == "refused" else PORT, "kind": kind}
        try:
            if kind == "refused":
                try:
                    s.connect((dst, CLOSED_PORT))
                    entry["result"] = "connected?!"
                except ConnectionRefusedError:
                    entry["result"] = "refused"
            else:
                s.connect((dst, PORT))
                if kind == "get":
                    s.sendall(request(arg, host, keep=False))
                    _, got = read_response(s)
                    assert s.recv(1) == b""  # the server closes first
                    entry["result"] = "%d body bytes" % got
                elif kind == "keepalive":
                    got = []
                    for path in arg:
                        s.sendall(request(path, host, keep=True))
                        got.append(read_response(s)[1])
                        time.sleep(0.02)
                    entry["result"] = "%s body bytes, client closes" % "+".join(map(str, got))
                elif kind == "abort":
                    s.sendall(request(arg, host, keep=False))
                    buf = b""
                    while b"\r\n\r\n" not in buf:
                        buf += s.recv(1024)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    entry["result"] = "reset by the client after the headers"
        finally:
            s.close()
        log.append(entry)
        time.sleep(0.05)
    print(json.dumps(log), flush=True)
    return 0


# ------------------------------------------------------------------ orchestration
def run(*cmd: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True,
                          stdout=subprocess.DEVNULL if quiet else None,
                          stderr=subprocess.DEVNULL if quiet else None)


class Lab:
    """The two namespaces and the processes inside them; close() undoes everything."""

    def __init__(self) -> None:
        pid = os.getpid()
        self.ns_c, self.ns_s = f"tcpsift-sample-c-{pid}", f"tcpsift-sample-s-{pid}"
        self.if_c, self.if_s = f"tss{pid}c"[:15], f"tss{pid}s"[:15]
        self.procs: list[subprocess.Popen] = []
        self.made: list[str] = []

    def setup(self) -> None:
        for ns in (self.ns_c, self.ns_s):
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            # no DAD (addresses usable at once), no router solicitations
            run("ip", "netns", "exec", ns, "sysctl", "-qw",
                "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.default.router_solicitations=0",
                "net.ipv6.conf.all.router_solicitations=0")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", self.if_c, "netns", self.ns_c, "mtu", "1500", "type", "veth",
            "peer", "name", self.if_s, "netns", self.ns_s, "mtu", "1500")
        for ns, dev, a4, a6, r4, r6 in (
                (self.ns_c, self.if_c, CLIENT4, CLIENT6, "198.51.100.0/24", "2001:db8:2::/64"),
                (self.ns_s, self.if_s, SERVER4, SERVER6, "192.0.2.0/24", "2001:db8:1::/64")):
            run("ip", "-n", ns, "addr", "add", f"{a4}/24", "dev", dev)
            run("ip", "-n", ns, "-6", "addr", "add", f"{a6}/64", "dev", dev, "nodad")
            # real wire frames: software checksums and segmentation, no GRO on receive
            for feature in ("tx", "tso", "gso", "gro"):
                run("ip", "netns", "exec", ns, "ethtool", "-K", dev, feature, "off",
                    check=False, quiet=True)
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "route", "add", r4, "dev", dev)
            run("ip", "-n", ns, "-6", "route", "add", r6, "dev", dev)
        time.sleep(1.0)  # let link-up chatter (MLD reports) pass before the capture

    def popen(self, ns: str, *cmd: str, **kw) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], text=True, **kw)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for ns in self.made:
            # anything else still running in the namespace (should be nothing)
            pids = subprocess.run(["ip", "netns", "pids", ns], text=True,
                                  capture_output=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        self.made.clear()


def wait_for(p: subprocess.Popen, stream, word: str, what: str, timeout: float = 10.0) -> str:
    t0 = time.monotonic()
    seen = ""
    while time.monotonic() - t0 < timeout:
        line = stream.readline()
        if not line:
            if p.poll() is not None:
                break
            continue
        seen += line
        if word in line:
            return seen
    raise RuntimeError(f"{what} did not start: {seen.strip()}")


def orchestrate(out: Path) -> int:
    if os.geteuid() != 0:
        print("make_sample.py needs root (network namespaces, tcpdump)", file=sys.stderr)
        return 1
    for tool in ("ip", "tcpdump", "ethtool"):
        if not shutil.which(tool):
            print(f"missing tool: {tool} (Debian: apt-get install iproute2 tcpdump ethtool)",
                  file=sys.stderr)
            return 1
    lab = Lab()
    tmpdir = Path(tempfile.mkdtemp(prefix="tcpsift-sample."))
    # SIGTERM/SIGHUP unwind through the finally below, like Ctrl-C does
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    try:
        lab.setup()
        server = lab.popen(lab.ns_s, sys.executable, str(HERE), "--role", "server",
                           stdout=subprocess.PIPE)
        wait_for(server, server.stdout, "listening", "server")
        raw = tmpdir / "capture.pcap"
        tcpdump = lab.popen(lab.ns_c, "tcpdump", "-Z", "root", "-i", lab.if_c, "-nn", "-s", "0", "--immediate-mode",
                            "-U", "-w", str(raw), "tcp or arp or icmp6",
                            stderr=subprocess.PIPE)
        wait_for(tcpdump, tcpdump.stderr, "listening on", "tcpdump")
        time.sleep(0.3)
        client = subprocess.run(["ip", "netns", "exec", lab.ns_c, sys.executable, str(HERE),
                                 "--role", "client"], text=True, capture_output=True,
                                timeout=60)
        if client.returncode != 0:
            raise RuntimeError("client failed:\n" + client.stderr)
        time.sleep(0.5)
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)
        stats = tcpdump.stderr.read()
        dropped = [line for line in stats.splitlines() if "dropped by kernel" in line]
        if not dropped or not dropped[0].startswith("0 "):
            raise RuntimeError("tcpdump dropped packets: " + stats)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw, out)
        print(f"wrote {out} ({out.stat().st_size} bytes); "
              + " ".join(line.strip() for line in stats.splitlines() if "packets" in line))
        for e in json.loads(client.stdout):
            print("  {name:14} {src}:{sport} -> {dst}:{dport}  {result}".format(**e))
        return 0
    finally:
        lab.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "samples" / "sample.pcap")
    ap.add_argument("--role", choices=("server", "client"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role == "server":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        return role_server()
    if args.role == "client":
        return role_client()
    return orchestrate(args.out)


if __name__ == "__main__":
    sys.exit(main())
