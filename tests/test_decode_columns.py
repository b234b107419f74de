"""The decoder's columns are declared once (tcpsift.decode.columns): the generated Cython
includes are current, and the compiled decoder writes exactly the declared arrays."""
from __future__ import annotations

import numpy as np

from tcpsift import schema
from tcpsift.decode import _decode, columns


def test_generated_includes_are_current():
    assert columns.stale() == [], \
        "stale generated decoder code: run python -m tcpsift.decode.columns and rebuild"


def test_new_packet_arrays_are_the_declared_ones():
    arrays = _decode.new_packet_arrays(3)
    assert [(name, a.dtype, a.shape) for name, a in arrays.items()] == \
        [(f.array, np.dtype(f.dtype), (3,)) for f in columns.PACKET_ARRAYS]


def test_the_compiled_decoder_was_built_from_the_declaration():
    assert _decode.COLUMN_DTYPES == tuple((f.array, f.dtype) for f in columns.PACKET_ARRAYS)
    assert _decode.PRESENCE == columns.PRESENCE
    assert sorted(columns.PRESENCE.values()) == [1 << i for i in range(len(columns.PRESENCE))]


def test_pkt_fields_go_by_size_so_there_is_no_padding():
    sizes = [columns.SIZES[f.dtype] for f in columns.pkt_fields()]
    assert sizes == sorted(sizes, reverse=True)
    assert columns.pkt_size() % 8 == 0 and columns.pkt_size() - sum(sizes) < 8


def test_codes_are_the_schema_positions():
    for codes, values in ((columns.STATUS_CODES, schema.DECODE_STATUS),
                          (columns.ENCAP_CODES, schema.ENCAPSULATIONS),
                          (columns.LAYER_KIND_CODES, schema.LAYER_KINDS)):
        assert sorted(codes.values(), key=values.index) == list(values)
    text = columns.constants_pxi()
    assert "DEF ST_MALFORMED = %d " % schema.DECODE_STATUS.index("malformed") in text
    assert "DEF E_VXLAN = %d " % schema.ENCAPSULATIONS.index("vxlan") in text
    assert "DEF K_ETH = %d " % schema.LAYER_KINDS.index("eth") in text

