"""The transparent Parquet cache of capture tables (docs/cache.md).

tcpsift.read() and every command keep a capture's packet, layer, TCP analysis and
connection tables here the first time they are computed, and read them from here the
next time, as long as the files are unchanged.
"""
from tcpsift.cache.folder import (
                                  ENVIRONMENT,
                                  OFF,
                                  cache_applies,
                                  cache_folder,
                                  clear,
                                  default_folder,
                                  entries,
                                  make_room,
                                  size_limit,
)

__all__ = ["ENVIRONMENT", "OFF", "cache_applies", "cache_folder", "clear", "default_folder", "entries",
           "make_room", "size_limit"]
