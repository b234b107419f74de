"""tcpsift: turn packet captures into answers.

    import tcpsift, polars as pl
    cap = tcpsift.read("trace.pcapng")
    cap.packets.filter(pl.col("src") == "192.168.1.137")
    tcpsift.scan("trace.pcapng").filter(pl.col("dport") == 443).select("ts_ns", "src").collect()
    tcpsift.report(cap, "report.html")          # one HTML page to mail
    tcpsift.compare("point-a.pcap", "point-b.pcap").to_dict()   # two capture points
    tcpsift.diagnose(cap).connections           # what limited each TCP connection
"""
from tcpsift.errors import CaptureError

__all__ = ["read", "scan", "report", "compare", "diagnose", "Capture", "ScanReport",
           "CaptureError"]


def __getattr__(name):
    # Lazy: `import tcpsift` (and so the CLI's start-up) does not import Polars or NumPy.
    if name in ("read", "scan", "Capture", "ScanReport"):
        from tcpsift import capture

        return getattr(capture, name)
    if name == "compare":
        import tcpsift.compare  # the package is callable: tcpsift.compare(a, b)

        return tcpsift.compare
    if name == "diagnose":
        import tcpsift.diagnose  # the package is callable: tcpsift.diagnose(capture)

        return tcpsift.diagnose
    if name == "report":
        from tcpsift.workflow.report import write_report

        return write_report
    raise AttributeError(name)
