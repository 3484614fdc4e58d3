"""py3sidecar.decoder - the pure-Jython msgpack decoder (docs/protocol.md), Jython 2.7.

Owns: msgpack bytes -> Jython values without the Java helper: nil/bool/int/float/str, bin ->
jarray byte array ('b', signed), array -> list, map -> dict, timestamp -> java.util.Date, ext 2
-> BigDecimal, ext 3 -> long, ext 4 (numpy array) -> nested lists; ext 1 and ext 5 Datasets are
handed to py3sidecar.datasets. Must not touch: the choice of the Java helper and the public
decode() (py3sidecar.codec), building Datasets (py3sidecar.datasets), sockets
(py3sidecar.transport).

py3sidecar.codec.decode() runs it when the helper jar is absent or turned off. The extension
codes are py3sidecar.codec's, read once when this module runs (codec never needs this module
before a call, so there is no cycle). Gateway scope ("G"): msgpack-java on the class path.
"""
import java.io
import java.lang
import java.util
from org.msgpack.core import MessagePack
from org.msgpack.value import ValueType

_codec = py3sidecar.codec  # noqa: F821 (project library global)
EXT_TIMESTAMP, EXT_DATASET, EXT_DECIMAL = _codec.EXT_TIMESTAMP, _codec.EXT_DATASET, _codec.EXT_DECIMAL
EXT_BIGINT, EXT_NDARRAY, EXT_COLUMNS = _codec.EXT_BIGINT, _codec.EXT_NDARRAY, _codec.EXT_COLUMNS
del _codec

_VT_NIL = ValueType.NIL
_VT_BOOLEAN = ValueType.BOOLEAN
_VT_INTEGER = ValueType.INTEGER
_VT_FLOAT = ValueType.FLOAT
_VT_STRING = ValueType.STRING
_VT_BINARY = ValueType.BINARY
_VT_ARRAY = ValueType.ARRAY
_VT_MAP = ValueType.MAP
_VT_EXTENSION = ValueType.EXTENSION

from org.msgpack.core import MessageFormat as _MF
_UINT64 = _MF.UINT64

# MessageFormat -> ValueType, looked up in a Jython dict: one Java call fewer per value.
_VT_OF = {}
for _f in _MF.values():
    if _f.name() != 'NEVER_USED':
        _VT_OF[_f] = _f.getValueType()
del _f


class Decoder(object):
    def __init__(self, data, dataset_factory):
        self.u = MessagePack.newDefaultUnpacker(data)
        self.dataset_factory = dataset_factory

    def dec(self):
        u = self.u
        fmt = u.getNextFormat()
        vt = _VT_OF.get(fmt)
        if vt is _VT_STRING:
            return u.unpackString()
        if vt is _VT_INTEGER:
            if fmt is _UINT64:
                return _small(long(u.unpackBigInteger()))
            return _small(u.unpackLong())
        if vt is _VT_MAP:
            n = u.unpackMapHeader()
            d = {}
            for _ in xrange(n):
                k = self.dec()
                d[k] = self.dec()
            return d
        if vt is _VT_ARRAY:
            n = u.unpackArrayHeader()
            return [self.dec() for _ in xrange(n)]
        if vt is _VT_NIL:
            u.unpackNil()
            return None
        if vt is _VT_BOOLEAN:
            return bool(u.unpackBoolean())
        if vt is _VT_FLOAT:
            return u.unpackDouble()
        if vt is _VT_BINARY:
            n = u.unpackBinaryHeader()
            return u.readPayload(n)
        if vt is _VT_EXTENSION:
            return self._ext()
        raise py3sidecar.codec.DecodeError(  # noqa: F821
            'unexpected msgpack format %s' % fmt)

    def _ext(self):
        u = self.u
        h = u.unpackExtensionTypeHeader()
        code = h.getType()
        if code == EXT_TIMESTAMP:
            instant = u.unpackTimestamp(h)
            return java.util.Date.from(instant)
        data = u.readPayload(h.getLength())
        if code == EXT_DECIMAL:
            text = java.lang.String(data, 'UTF-8')
            try:
                return java.math.BigDecimal(text)
            except java.lang.NumberFormatException:
                return float(text)  # NaN / Infinity have no BigDecimal
        if code == EXT_BIGINT:
            if len(data) == 0:
                raise py3sidecar.codec.DecodeError(  # noqa: F821
                    'the bigint extension (code 3) is empty')
            return long(java.math.BigInteger(data))  # two's complement, big-endian
        if code == EXT_DATASET:
            return py3sidecar.datasets.rows_dataset(self, data)  # noqa: F821 (library global)
        if code == EXT_COLUMNS:
            return py3sidecar.datasets.columns_dataset(self, data)  # noqa: F821
        if code == EXT_NDARRAY:
            return _ndarray_lists(data)
        raise py3sidecar.codec.DecodeError(  # noqa: F821
            'unknown msgpack extension type %d' % code)


_NDARRAY_READERS = {
    'f8': (8, lambda b, i: b.getDouble(i)), 'f4': (4, lambda b, i: float(b.getFloat(i))),
    'i8': (8, lambda b, i: _small(b.getLong(i))), 'i4': (4, lambda b, i: int(b.getInt(i))),
    'i2': (2, lambda b, i: int(b.getShort(i))), 'i1': (1, lambda b, i: int(b.get(i))),
    'u4': (4, lambda b, i: _small(b.getInt(i) & 0xffffffffL)),
    'u2': (2, lambda b, i: b.getShort(i) & 0xffff), 'u1': (1, lambda b, i: b.get(i) & 0xff),
    'b1': (1, lambda b, i: b.get(i) != 0),
}


def _ndarray_lists(data):
    """A numpy array (ext 4) as nested lists, like the codec's ``tolist()`` before it."""
    import java.nio
    buf = java.nio.ByteBuffer.wrap(data)
    try:
        size = buf.getInt(0)
        dtype, shape = Decoder(java.util.Arrays.copyOfRange(data, 4, 4 + size), None).dec()
        width, read = _NDARRAY_READERS[str(dtype)[1:]]
    except (KeyError, ValueError, TypeError, java.lang.RuntimeException, java.io.IOException):
        raise py3sidecar.codec.DecodeError(  # noqa: F821
            'the ndarray extension (code 4) is malformed or has an unknown dtype')
    order = java.nio.ByteOrder.LITTLE_ENDIAN if dtype[0] == '<' else java.nio.ByteOrder.BIG_ENDIAN
    buf.order(order)
    start = 4 + size
    count = (len(data) - start) // width
    flat = [read(buf, start + k * width) for k in xrange(count)]
    for n in reversed(list(shape)[1:]):
        flat = [flat[i:i + n] for i in xrange(0, len(flat), n)]
    return flat if len(shape) else flat[0]


def _small(n):
    # Java long -> int when it fits (Jython returns long for Java long).
    try:
        return int(n)
    except OverflowError:
        return n
