# cython: language_level=3
"""Columns handed to Polars through the Arrow C data interface (PyCapsule protocol).

Polars builds a List column from Python lists or expressions slowly (a SACK column of
a million rows took a third of a header-only capture's read); an object with
`__arrow_c_array__` is taken over without a copy. Here: a List<UInt32> column from
per-row counts and the flat values, for `sack_blocks`, with 64-bit offsets (Arrow's
LargeList: Polars' own list layout; 32-bit offsets were converted, a copy).

The buffers are copied into memory the exported structures own (freed by their
release callbacks), so that no callback needs the GIL: Polars may release them from
any thread.
"""
from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_IsValid, PyCapsule_New

cdef extern from *:
    """
    #ifndef ARROW_C_DATA_INTERFACE
    #define ARROW_C_DATA_INTERFACE
    #define ARROW_FLAG_DICTIONARY_ORDERED 1
    #define ARROW_FLAG_NULLABLE 2
    #define ARROW_FLAG_MAP_KEYS_SORTED 4
    struct ArrowSchema {
      const char* format;
      const char* name;
      const char* metadata;
      int64_t flags;
      int64_t n_children;
      struct ArrowSchema** children;
      struct ArrowSchema* dictionary;
      void (*release)(struct ArrowSchema*);
      void* private_data;
    };
    struct ArrowArray {
      int64_t length;
      int64_t null_count;
      int64_t offset;
      int64_t n_buffers;
      int64_t n_children;
      const void** buffers;
      struct ArrowArray** children;
      struct ArrowArray* dictionary;
      void (*release)(struct ArrowArray*);
      void* private_data;
    };
    #endif
    """
    struct ArrowSchema:
        const char* format
        const char* name
        const char* metadata
        int64_t flags
        int64_t n_children
        ArrowSchema** children
        ArrowSchema* dictionary
        void (*release)(ArrowSchema*) noexcept nogil
        void* private_data

    struct ArrowArray:
        int64_t length
        int64_t null_count
        int64_t offset
        int64_t n_buffers
        int64_t n_children
        const void** buffers
        ArrowArray** children
        ArrowArray* dictionary
        void (*release)(ArrowArray*) noexcept nogil
        void* private_data

    int ARROW_FLAG_NULLABLE


# --- schema: large_list<item: uint32> -------------------------------------------------

ctypedef struct ListSchema:          # everything the exported schema points at
    ArrowSchema child
    ArrowSchema* children[1]


cdef void release_child_schema(ArrowSchema* s) noexcept nogil:
    s.release = NULL                 # its memory belongs to the parent's ListSchema


cdef void release_list_schema(ArrowSchema* s) noexcept nogil:
    cdef ListSchema* d = <ListSchema*>s.private_data
    if d != NULL:
        if d.child.release != NULL:
            d.child.release(&d.child)
        free(d)
    s.private_data = NULL
    s.release = NULL


cdef int fill_list_schema(ArrowSchema* s) noexcept nogil:
    cdef ListSchema* d = <ListSchema*>calloc(1, sizeof(ListSchema))
    if d == NULL:
        return -1
    d.child.format = b"I"
    d.child.name = b"item"
    d.child.flags = ARROW_FLAG_NULLABLE
    d.child.release = release_child_schema
    d.children[0] = &d.child
    memset(s, 0, sizeof(ArrowSchema))
    s.format = b"+L"
    s.name = b""
    s.flags = ARROW_FLAG_NULLABLE
    s.n_children = 1
    s.children = d.children
    s.release = release_list_schema
    s.private_data = d
    return 0


# --- array ------------------------------------------------------------------------------

ctypedef struct ListArrayData:       # everything the exported array points at
    uint8_t* validity
    int64_t* offsets
    const void* buffers[2]
    ArrowArray child
    const void* child_buffers[2]
    ArrowArray* children[1]


cdef void release_child_array(ArrowArray* a) noexcept nogil:
    free(a.private_data)             # the values
    a.private_data = NULL
    a.release = NULL


cdef void release_list_array(ArrowArray* a) noexcept nogil:
    cdef ListArrayData* d = <ListArrayData*>a.private_data
    if d != NULL:
        if d.child.release != NULL:
            d.child.release(&d.child)
        free(d.validity)
        free(d.offsets)
        free(d)
    a.private_data = NULL
    a.release = NULL


cdef void capsule_release(object capsule) noexcept:
    """Destructor of both capsules: release what the consumer did not take, then free."""
    cdef ArrowSchema* s
    cdef ArrowArray* a
    if PyCapsule_IsValid(capsule, b"arrow_schema"):
        s = <ArrowSchema*>PyCapsule_GetPointer(capsule, b"arrow_schema")
        if s.release != NULL:
            s.release(s)
        free(s)
    elif PyCapsule_IsValid(capsule, b"arrow_array"):
        a = <ArrowArray*>PyCapsule_GetPointer(capsule, b"arrow_array")
        if a.release != NULL:
            a.release(a)
        free(a)


cdef class UInt32Lists:
    """A List<UInt32> column: row i holds counts[i] values taken in order from `values`
    (null where counts[i] is 0). Pass it to polars.Series()."""
    cdef object counts
    cdef object values

    def __init__(self, const uint8_t[::1] counts, const uint32_t[::1] values):
        cdef Py_ssize_t i
        cdef int64_t total = 0
        for i in range(counts.shape[0]):
            total += counts[i]
        if total > values.shape[0]:
            raise ValueError("fewer values than the counts announce")
        self.counts = counts
        self.values = values

    def __arrow_c_array__(self, requested_schema=None):
        cdef const uint8_t[::1] counts = self.counts
        cdef const uint32_t[::1] values = self.values
        cdef Py_ssize_t n = counts.shape[0], i
        cdef int64_t nulls = 0
        cdef int64_t at = 0
        cdef ArrowSchema* schema = <ArrowSchema*>calloc(1, sizeof(ArrowSchema))
        cdef ArrowArray* array = <ArrowArray*>calloc(1, sizeof(ArrowArray))
        cdef ListArrayData* d = <ListArrayData*>calloc(1, sizeof(ListArrayData))
        cdef uint32_t* vals
        if schema == NULL or array == NULL or d == NULL:
            free(schema)
            free(array)
            free(d)
            raise MemoryError()
        d.validity = <uint8_t*>calloc((n + 7) // 8 + 1, 1)
        d.offsets = <int64_t*>malloc((n + 1) * sizeof(int64_t))
        vals = <uint32_t*>malloc(max(values.shape[0], 1) * sizeof(uint32_t))
        if d.validity == NULL or d.offsets == NULL or vals == NULL \
                or fill_list_schema(schema) != 0:
            free(d.validity)
            free(d.offsets)
            free(vals)
            free(d)
            free(array)
            free(schema)
            raise MemoryError()
        with nogil:
            for i in range(n):
                d.offsets[i] = at
                if counts[i]:
                    d.validity[i >> 3] |= <uint8_t>(1 << (i & 7))
                    at += counts[i]
                else:
                    nulls += 1
            d.offsets[n] = at
            if at:
                memcpy(vals, &values[0], at * sizeof(uint32_t))
        d.child.length = at
        d.child.n_buffers = 2
        d.child_buffers[0] = NULL
        d.child_buffers[1] = vals
        d.child.buffers = d.child_buffers
        d.child.release = release_child_array
        d.child.private_data = vals
        d.buffers[0] = d.validity
        d.buffers[1] = d.offsets
        d.children[0] = &d.child
        array.length = n
        array.null_count = nulls
        array.n_buffers = 2
        array.buffers = d.buffers
        array.n_children = 1
        array.children = d.children
        array.release = release_list_array
        array.private_data = d
        return (PyCapsule_New(schema, b"arrow_schema", capsule_release),
                PyCapsule_New(array, b"arrow_array", capsule_release))
