"""py3sidecar.datasets - Ignition Datasets on the wire (docs/protocol.md), Jython 2.7.

Owns: knowing a Dataset when the encoder meets one (PyDataSet through its underlying dataset),
writing it column by column (ext 5: a numeric column as one little-endian block, ext 4, plus a
null mask), reading ext 1 (row-wise, older senders) and ext 5 back, and building the Dataset: a
BasicDataset when Ignition's class is there, else `dataset_factory(columns, types, rows)`
(DatasetBuilder inside Ignition 8.1+, else system.dataset.toDataSet). Must not touch: values
other than Datasets, the Java helper's choice and the extension codes (py3sidecar.codec), the
pure-Jython decoder (py3sidecar.decoder), sockets (py3sidecar.transport).

py3sidecar.codec and py3sidecar.decoder call in here once per Dataset, handing in their own
encoder or decoder (its class makes the nested one), so this module never reaches back for them
on a cell's path. Gateway scope ("G"): msgpack-java (msgpack-core.jar) on the class path.
"""
import array

import java.lang
import java.math
from java.lang import Boolean as JBoolean
from org.msgpack.core import MessagePack

try:  # Ignition's own Dataset class: built from column-major cells in one call
    from com.inductiveautomation.ignition.common import BasicDataset as _BasicDataset
except ImportError:
    _BasicDataset = None

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def is_dataset(value):
    return (hasattr(value, 'getColumnNames') and hasattr(value, 'getColumnTypes')
            and hasattr(value, 'getRowCount') and hasattr(value, 'getValueAt'))


def as_dataset(value):
    """A Dataset, or None. PyDataSet is unwrapped to its underlying dataset."""
    if isinstance(value, (dict, list, tuple, basestring)):
        return None
    under = getattr(value, 'getUnderlyingDataset', None)
    if under is not None:
        try:
            value = under()
        except Exception:
            pass
    if is_dataset(value):
        return value
    return None



# ---------------------------------------------------------------------------
# Encoding (ext 5)
# ---------------------------------------------------------------------------

def pack(encoder, ds):

    """A Dataset as ext 5, column by column; a numeric column whose cells are all numbers
    (or None) is one little-endian block plus a null mask (docs/protocol.md). ``encoder`` is
    py3sidecar.codec's pure-Jython encoder: the payload is packed by a fresh one of its class."""
    codec = py3sidecar.codec  # noqa: F821 (project library global)
    names = [unicode(n) for n in ds.getColumnNames()]
    types = [codec.column_type_name(c) for c in ds.getColumnTypes()]
    nrows = ds.getRowCount()
    ncols = len(names)
    inner = type(encoder)()
    ip = inner.p
    ip.packArrayHeader(4)
    ip.packArrayHeader(ncols)
    for n in names:
        ip.packString(n)
    ip.packArrayHeader(ncols)
    for t in types:
        ip.packString(t)
    ip.packLong(nrows)
    ip.packArrayHeader(ncols)
    enc = inner.enc
    get = ds.getValueAt
    for c in xrange(ncols):
        cells = [get(r, c) for r in xrange(nrows)]
        ip.packArrayHeader(2)
        if not _block(ip, codec.EXT_NDARRAY, types[c], cells):
            ip.packArrayHeader(nrows)
            for v in cells:
                enc(v)
            ip.packNil()
    payload = inner.bytes()
    encoder.p.packExtensionTypeHeader(codec.EXT_COLUMNS, len(payload))
    encoder.p.writePayload(payload)


def _block(p, ext_ndarray, type_name, cells):
    """Packs [block, nulls] for a numeric column; False (nothing packed) otherwise."""
    spec = _BLOCKS.get(type_name)
    if spec is None:
        return False
    dtype, width, put = spec
    import java.nio
    buf = java.nio.ByteBuffer.allocate(len(cells) * width)
    buf.order(java.nio.ByteOrder.LITTLE_ENDIAN)
    nulls = None
    for i, v in enumerate(cells):
        if v is None:
            if nulls is None:
                nulls = [0] * len(cells)
            nulls[i] = 1
            continue
        if not _fits(type_name, v):
            return False
        put(buf, i * width, v)
    _pack_block(p, ext_ndarray, dtype, buf.array(), len(cells))
    if nulls is None:
        p.packNil()
    else:
        _pack_block(p, ext_ndarray, '|b1', array.array('b', nulls), len(cells))
    return True


def _pack_block(p, ext_ndarray, dtype, data, count):
    head = MessagePack.newDefaultBufferPacker()
    head.packArrayHeader(2)
    head.packString(dtype)
    head.packArrayHeader(1)
    head.packLong(count)
    header = head.toByteArray()
    n = len(header)
    p.packExtensionTypeHeader(ext_ndarray, 4 + n + len(data))
    p.writePayload(_u32(n))
    p.writePayload(header)
    p.writePayload(data)


def _u32(n):
    return array.array('b', [((n >> s) & 0xff) - (256 if (n >> s) & 0x80 else 0)
                             for s in (24, 16, 8, 0)])


def _fits(type_name, v):
    if type_name == 'bool':
        return isinstance(v, (bool, JBoolean))
    if isinstance(v, (bool, JBoolean)) or not isinstance(v, (int, long, float, java.lang.Number)):
        return False
    if isinstance(v, (java.math.BigDecimal, java.math.BigInteger)):
        return False
    if type_name in ('int', 'long'):
        if isinstance(v, (float, java.lang.Double, java.lang.Float)):
            return False
        v = long(v)
        return (-(1 << 31) <= v < (1 << 31)) if type_name == 'int' else _INT64_MIN <= v <= _INT64_MAX
    return True


_BLOCKS = {
    'bool': ('|b1', 1, lambda b, i, v: b.put(i, 1 if v else 0)),
    'int': ('<i4', 4, lambda b, i, v: b.putInt(i, int(v))),
    'long': ('<i8', 8, lambda b, i, v: b.putLong(i, long(v))),
    'float': ('<f4', 4, lambda b, i, v: b.putFloat(i, float(v))),
    'double': ('<f8', 8, lambda b, i, v: b.putDouble(i, float(v))),
}


# ---------------------------------------------------------------------------
# Decoding (ext 1, ext 5) and building the Dataset
# ---------------------------------------------------------------------------

def default_factory(columns, types, rows):
    """Builds an Ignition Dataset: DatasetBuilder (exact column types) when running inside
    Ignition 8.1+, else system.dataset.toDataSet(headers, rows)."""
    try:
        from com.inductiveautomation.ignition.common.util import DatasetBuilder
    except ImportError:
        DatasetBuilder = None
    if DatasetBuilder is not None:
        b = DatasetBuilder.newBuilder().colNames(columns).colTypes(
            [py3sidecar.codec.column_class(t) for t in types])  # noqa: F821
        for row in rows:
            b.addRow(row)
        return b.build()
    return system.dataset.toDataSet(list(columns), [list(r) for r in rows])  # noqa: F821 (Ignition global)


def rows_dataset(decoder, data):
    """ext 1 (row-wise, older senders): [columns, types, rows] -> a Dataset. ``decoder`` is
    py3sidecar.decoder's: the payload is read by a fresh one of its class."""
    inner = type(decoder)(data, decoder.dataset_factory)
    cols, types, rows = inner.dec()
    return (decoder.dataset_factory or default_factory)(cols, types, rows)


def columns_dataset(decoder, data):
    """ext 5 (column-wise): [columns, types, nrows, [[values, nulls], ...]] -> a Dataset."""
    DecodeError = py3sidecar.codec.DecodeError  # noqa: F821 (project library global)
    parts = type(decoder)(data, decoder.dataset_factory).dec()
    if not (isinstance(parts, list) and len(parts) == 4):
        raise DecodeError('the column-wise Dataset extension (code 5) must hold '
                          '[columns, types, rows, data]')
    cols, types, nrows, data = parts
    if len(types) != len(cols) or len(data) != len(cols):
        raise DecodeError('the column-wise Dataset has %d types and %d columns of data for '
                          '%d names' % (len(types), len(data), len(cols)))
    columns = []
    for c, member in enumerate(data):
        values, nulls = member
        if len(values) != nrows or nulls is not None and len(nulls) != nrows:
            raise DecodeError('column %d of the Dataset does not hold %d values' % (c, nrows))
        if nulls is not None:
            values = [None if null else v for v, null in zip(values, nulls)]
        columns.append(values)
    rows = [list(r) for r in zip(*columns)] if columns else []
    return (decoder.dataset_factory or default_factory)(cols, types, rows)


def from_java_columns(dataset_factory, names, types, columns, fast):
    """The Java helper's Dataset: (names, types, column-major Java cells) -> a Dataset, a
    BasicDataset in one call when Ignition's class is there and no factory was given; ``fast``
    is the helper (FastCodec) that decoded the cells."""
    codec = py3sidecar.codec  # noqa: F821 (project library global)
    if dataset_factory is None and _BasicDataset is not None:
        return _BasicDataset(list(names), [codec.column_class(t) for t in types], columns)
    build = dataset_factory or default_factory
    return build(list(names), list(types), [list(r) for r in fast.rows(columns)])
