"""py3sidecar.codec - msgpack encoding of the bridge envelope (docs/protocol.md), Jython 2.7.

Owns: values <-> msgpack bytes on the gateway (Jython, Java and Ignition Dataset values), the
choice between the Java helper (py3sidecar-gateway.jar) and the pure-Jython code, and building
an Ignition Dataset from decoded columns. Must not touch: sockets (py3sidecar.transport), the
envelope's meaning and failover (py3sidecar.client).

Uses msgpack-java (org.msgpack.core, Debian libmsgpack-java: msgpack-core.jar) on the gateway.
With the bundle's py3sidecar-gateway.jar on the class path (com.py3sidecar.gateway.FastCodec,
sources in ignition-scripts/java/) the hot work runs in Java: whole envelopes, Datasets column by
column (a numeric column as one binary block). Without it, the pure-Jython code below does the
same, slower, with the same bytes on the wire (use_java_helper(False) forces it).

Jython -> wire:
    None, bool, int/long (64-bit as msgpack int, beyond as ext 3), float, str/unicode (msgpack str),
    byte[] (jarray 'b', signed) / bytearray -> bin, list/tuple/java.util.List/other Java arrays -> array,
    dict/java.util.Map -> map, java.util.Date (and java.sql.Timestamp) / datetime.datetime
    (naive = UTC) -> timestamp (ext -1), java.math.BigDecimal / decimal.Decimal -> ext 2,
    java.math.BigInteger -> int or ext 3 (two's-complement bytes), Ignition Datasets (anything with getColumnNames,
    getColumnTypes, getRowCount, getValueAt; PyDataSet through its underlying dataset) -> ext 5
    (column-wise: numeric columns as one block each, docs/protocol.md).
wire -> Jython:
    nil/bool/int/float/str as Python values, bin -> jarray byte array ('b', signed),
    array -> list, map -> dict, timestamp -> java.util.Date, ext 2 -> BigDecimal, ext 3 -> long,
    ext 1 (row-wise, older senders) and ext 5 (column-wise) -> an Ignition Dataset: a BasicDataset
    when Ignition's class is there, else built by `dataset_factory(columns, types, rows)`,
    ext 4 (numpy array) -> nested lists.
Anything else raises EncodeError naming the type and its position, e.g. args[0]['a'][2].
"""
import array
import datetime
import decimal

import java.io
import java.lang
import java.math
import java.sql
import java.util
from java.lang import Boolean as JBoolean, Class as JClass
from org.msgpack.core import MessagePack
from org.msgpack.value import ValueType

EXT_TIMESTAMP = -1
EXT_DATASET = 1
EXT_DECIMAL = 2
EXT_BIGINT = 3
EXT_NDARRAY = 4  # a numpy array from CPython: u32 header length, [dtype, shape], the buffer
EXT_COLUMNS = 5  # a Dataset column by column: [columns, types, nrows, [[values, nulls], ...]]

try:  # the bundle's helper jar (optional): the codec's hot paths in Java
    from com.py3sidecar.gateway import FastCodec as _FastCodec
except ImportError:
    _FastCodec = None
try:  # Ignition's own Dataset class: built from column-major cells in one call
    from com.inductiveautomation.ignition.common import BasicDataset as _BasicDataset
except ImportError:
    _BasicDataset = None
_fast = _FastCodec


def use_java_helper(enabled=True):
    """Turns the Java helper on or off (benchmarks, tests); True when it is now in use."""
    global _fast
    _fast = _FastCodec if enabled else None
    return _fast is not None


def java_helper():
    """The helper's version when it is in use, else None (no jar, or turned off)."""
    return _fast.VERSION if _fast is not None else None

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1
_EPOCH = datetime.datetime(1970, 1, 1)


class CodecError(Exception):
    pass


class EncodeError(CodecError):
    """A value that cannot cross to CPython: names the type and its position."""
    def __init__(self, message, path=None, type_name=None):
        CodecError.__init__(self, message)
        self.path = path
        self.type_name = type_name


class DecodeError(CodecError):
    pass


def _type_name(value):
    try:
        if isinstance(value, java.lang.Object):
            return value.getClass().getName()
    except Exception:
        pass
    t = type(value)
    mod = getattr(t, '__module__', None)
    if mod and mod not in ('__builtin__', 'exceptions'):
        return '%s.%s' % (mod, t.__name__)
    return t.__name__


def _key_repr(key):
    if isinstance(key, unicode):
        try:
            key = str(key)
        except UnicodeError:
            pass
    return repr(key)


# ---------------------------------------------------------------------------
# Dataset column types
# ---------------------------------------------------------------------------

_JTYPE_NAMES = {
    'java.lang.Boolean': 'bool', 'boolean': 'bool',
    'java.lang.Byte': 'int', 'byte': 'int', 'java.lang.Short': 'int', 'short': 'int',
    'java.lang.Integer': 'int', 'int': 'int',
    'java.lang.Long': 'long', 'long': 'long', 'java.math.BigInteger': 'long',
    'java.lang.Float': 'float', 'float': 'float',
    'java.lang.Double': 'double', 'double': 'double',
    'java.lang.String': 'str',
    'java.util.Date': 'datetime', 'java.sql.Timestamp': 'datetime', 'java.sql.Date': 'datetime',
    'java.math.BigDecimal': 'decimal',
    '[B': 'bytes',
}

# Vocabulary -> Java class, for building a Dataset with exact column types.
_VOCAB_CLASSES = {
    'bool': 'java.lang.Boolean', 'int': 'java.lang.Integer', 'long': 'java.lang.Long',
    'float': 'java.lang.Float', 'double': 'java.lang.Double', 'str': 'java.lang.String',
    'datetime': 'java.util.Date', 'decimal': 'java.math.BigDecimal', 'bytes': '[B',
    'object': 'java.lang.Object',
}


def column_type_name(java_class):
    """Maps a Dataset column class to the protocol's type vocabulary."""
    if java_class is None:
        return 'object'
    try:
        name = java_class.getName()
    except (AttributeError, TypeError):
        name = getattr(java_class, '__name__', str(java_class))
    return _JTYPE_NAMES.get(name, 'object')


def column_class(type_name):
    """Maps a vocabulary name to a java.lang.Class (java.lang.Object when unknown)."""
    return JClass.forName(_VOCAB_CLASSES.get(type_name, 'java.lang.Object'))


def is_dataset(value):
    return (hasattr(value, 'getColumnNames') and hasattr(value, 'getColumnTypes')
            and hasattr(value, 'getRowCount') and hasattr(value, 'getValueAt'))


def _as_dataset(value):
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
# Encoding
# ---------------------------------------------------------------------------

def _date_millis(value):
    return value.getTime()


def _datetime_to_seconds_nanos(dt):
    off = dt.utcoffset() if dt.tzinfo is not None else None
    naive = dt.replace(tzinfo=None)
    if off is not None:
        naive = naive - off
    delta = naive - _EPOCH
    secs = delta.days * 86400 + delta.seconds
    return secs, delta.microseconds * 1000


class _Unsupported(Exception):
    """Raised by the encoder at the first value it cannot send; the caller finds its position
    afterwards (so the hot path never formats a path string)."""
    def __init__(self, value):
        Exception.__init__(self)
        self.value = value


class _Encoder(object):
    def __init__(self):
        self.p = MessagePack.newDefaultBufferPacker()

    def bytes(self):
        return self.p.toByteArray()

    def enc(self, v):
        p = self.p
        t = type(v)
        if t is unicode or t is str:
            p.packString(v)
        elif t is int:
            p.packLong(v)
        elif v is None:
            p.packNil()
        elif t is bool:
            p.packBoolean(v)
        elif t is float:
            p.packDouble(v)
        elif t is dict:
            p.packMapHeader(len(v))
            enc = self.enc
            for k, item in v.iteritems():
                enc(k)
                enc(item)
        elif t is list or t is tuple:
            p.packArrayHeader(len(v))
            enc = self.enc
            for item in v:
                enc(item)
        elif t is long:
            self._long(v)
        else:
            self._other(v)

    def _long(self, v):
        if _INT64_MIN <= v <= _INT64_MAX:
            self.p.packLong(v)
        elif 0 <= v <= _UINT64_MAX:
            self.p.packBigInteger(java.math.BigInteger(str(v)))  # 20 digits at most
        else:
            # Big-endian two's complement (docs/protocol.md): linear in the size, where the
            # decimal text would cost quadratic time at both ends for a long of 100,000 digits.
            data = java.math.BigInteger.toByteArray(v)
            self.p.packExtensionTypeHeader(EXT_BIGINT, len(data))
            self.p.writePayload(data)

    def _ext_text(self, code, text):
        data = java.lang.String(text).getBytes('UTF-8')
        self.p.packExtensionTypeHeader(code, len(data))
        self.p.writePayload(data)

    def _other(self, v):
        if self._python_value(v) or self._java_value(v):
            return
        ds = _as_dataset(v)
        if ds is not None:
            self._dataset(ds)
        elif _is_java_array(v):
            self._seq(list(v))
        else:
            raise _Unsupported(v)

    def _python_value(self, v):
        """Pack a Python (Jython) value; False if ``v`` is none of these types."""
        p = self.p
        if isinstance(v, bool):
            p.packBoolean(bool(v))
        elif isinstance(v, (int, long)):
            self._long(long(v))
        elif isinstance(v, float):
            p.packDouble(float(v))
        elif isinstance(v, basestring):
            p.packString(unicode(v))
        elif isinstance(v, array.array):
            self._array(v)
        elif isinstance(v, bytearray):
            raw = _to_signed_bytes(v)
            p.packBinaryHeader(len(raw))
            p.writePayload(raw)
        elif isinstance(v, dict):
            self._map(v.items())
        elif isinstance(v, (list, tuple)):
            self._seq(v)
        elif isinstance(v, datetime.datetime):
            secs, nanos = _datetime_to_seconds_nanos(v)
            p.packTimestamp(secs, nanos)
        elif isinstance(v, decimal.Decimal):
            self._ext_text(EXT_DECIMAL, str(v))
        else:
            return False
        return True

    def _array(self, v):
        if v.typecode == 'b':
            self.p.packBinaryHeader(len(v))
            self.p.writePayload(v)
        elif v.typecode in ('c', 'u') or v.typecode == 'B':
            raw = _to_signed_bytes(v)
            self.p.packBinaryHeader(len(raw))
            self.p.writePayload(raw)
        else:
            self._seq(list(v))

    def _java_value(self, v):
        """Pack a Java object Jython did not convert; False if ``v`` is none of these types."""
        p = self.p
        if isinstance(v, java.util.Date):
            millis = v.getTime()
            if isinstance(v, java.sql.Timestamp):
                p.packTimestamp(millis // 1000, v.getNanos())
            else:
                p.packTimestamp(millis)
        elif isinstance(v, java.math.BigDecimal):
            self._ext_text(EXT_DECIMAL, v.toString())
        elif isinstance(v, java.math.BigInteger):
            self._long(long(v))  # Jython wraps the BigInteger: no conversion
        elif isinstance(v, java.lang.Number):
            # Boxed Java numbers that Jython did not convert (e.g. AtomicLong).
            if isinstance(v, (java.lang.Float, java.lang.Double)):
                p.packDouble(v.doubleValue())
            else:
                self._long(long(v.longValue()))
        elif isinstance(v, java.lang.Boolean):
            p.packBoolean(v.booleanValue())
        elif isinstance(v, java.lang.Character):
            p.packString(unicode(v.toString()))
        elif isinstance(v, java.util.Map):
            self._map([(e.getKey(), e.getValue()) for e in v.entrySet()])
        elif isinstance(v, java.util.Collection):
            self._seq(list(v))
        else:
            return False
        return True

    def _map(self, items):
        self.p.packMapHeader(len(items))
        for k, item in items:
            self.enc(k)
            self.enc(item)

    def _seq(self, seq):
        self.p.packArrayHeader(len(seq))
        for item in seq:
            self.enc(item)

    def _dataset(self, ds):
        """A Dataset as ext 5, column by column; a numeric column whose cells are all numbers
        (or None) is one little-endian block plus a null mask (docs/protocol.md)."""
        names = [unicode(n) for n in ds.getColumnNames()]
        types = [column_type_name(c) for c in ds.getColumnTypes()]
        nrows = ds.getRowCount()
        ncols = len(names)
        inner = _Encoder()
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
            if not inner._block(types[c], cells):
                ip.packArrayHeader(nrows)
                for v in cells:
                    enc(v)
                ip.packNil()
        payload = inner.bytes()
        self.p.packExtensionTypeHeader(EXT_COLUMNS, len(payload))
        self.p.writePayload(payload)

    def _block(self, type_name, cells):
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
        self._pack_block(dtype, buf.array(), len(cells))
        if nulls is None:
            self.p.packNil()
        else:
            self._pack_block('|b1', array.array('b', nulls), len(cells))
        return True

    def _pack_block(self, dtype, data, count):
        head = _Encoder()
        head.p.packArrayHeader(2)
        head.p.packString(dtype)
        head.p.packArrayHeader(1)
        head.p.packLong(count)
        header = head.bytes()
        n = len(header)
        self.p.packExtensionTypeHeader(EXT_NDARRAY, 4 + n + len(data))
        self.p.writePayload(_u32(n))
        self.p.writePayload(header)
        self.p.writePayload(data)


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


def _children(v, path):
    """(child, path) pairs of a container, in the encoder's order (for error positions only)."""
    if isinstance(v, (basestring, array.array, bytearray)):
        return []
    if isinstance(v, dict):
        items = v.items()
    elif isinstance(v, java.util.Map):
        items = [(e.getKey(), e.getValue()) for e in v.entrySet()]
    else:
        items = None
    if items is not None:
        out = []
        for k, item in items:
            out.append((k, '%s{key %s}' % (path, _key_repr(k))))
            out.append((item, '%s[%s]' % (path, _key_repr(k))))
        return out
    if isinstance(v, (list, tuple, java.util.Collection)) or _is_java_array(v):
        return [(item, '%s[%d]' % (path, i)) for i, item in enumerate(list(v))]
    ds = _as_dataset(v) if isinstance(v, java.lang.Object) or hasattr(v, 'getValueAt') else None
    if ds is not None:
        names = [unicode(n) for n in ds.getColumnNames()]
        return [(ds.getValueAt(r, c), '%s.dataset[row %d][%s]' % (path, r, _key_repr(names[c])))
                for r in xrange(ds.getRowCount()) for c in xrange(len(names))]
    return []


def _find_path(value, path, target, depth=0):
    if value is target:
        return path
    if depth > 100:
        return None
    for child, child_path in _children(value, path):
        found = _find_path(child, child_path, target, depth + 1)
        if found is not None:
            return found
    return None


def _encode_error(root, root_path, bad):
    path = _find_path(root, root_path, bad) or root_path
    name = _type_name(bad)
    return EncodeError('cannot send a value of type %s to Python 3 (at %s); supported: '
                       'None, bool, int, long, float, str, unicode, byte arrays, list, '
                       'tuple, dict, java.util.List/Map, java.util.Date, datetime, '
                       'BigDecimal, Decimal, BigInteger, Ignition Dataset'
                       % (name, path), path, name)


def _is_java_array(v):
    try:
        return v.getClass().isArray()
    except Exception:
        return False


def _to_signed_bytes(seq):
    """Any sequence of byte values (0..255 or -128..127, or 1-char strings) -> Java byte[]."""
    out = []
    for b in seq:
        if isinstance(b, basestring):
            b = ord(b)
        b = int(b)
        if b > 127:
            b -= 256
        out.append(b)
    return array.array('b', out)


def to_bytes(text_or_seq):
    """Helper for scripts: str (Latin-1 byte string), bytearray or list of ints -> Java byte[]."""
    if isinstance(text_or_seq, array.array) and text_or_seq.typecode == 'b':
        return text_or_seq
    return _to_signed_bytes(text_or_seq)


def _to_java(v):
    """The helper's hook: a Python value it does not know, as one it does (None: unsupported,
    the pure-Jython encoder then names the value's position)."""
    if isinstance(v, datetime.datetime):
        secs, nanos = _datetime_to_seconds_nanos(v)
        ts = java.sql.Timestamp(secs * 1000)
        ts.setNanos(nanos)
        return ts
    if isinstance(v, decimal.Decimal):
        return java.math.BigDecimal(str(v)) if v.is_finite() else None
    if isinstance(v, bytearray):
        return _to_signed_bytes(v)
    if isinstance(v, array.array):
        if v.typecode in ('c', 'u', 'B'):
            return _to_signed_bytes(v)
        return list(v)
    return None


def encode(value, root='value'):
    """Encodes one value (normally the request envelope) to a Java byte[]."""
    fast = _fast
    if fast is not None:
        try:
            return fast.encode(value, _to_java)
        except fast.Unsupported:
            pass  # the pure-Jython encoder below names the value (or knows it after all)
    e = _Encoder()
    try:
        e.enc(value)
    except _Unsupported, u:
        raise _encode_error(value, root, u.value)
    return e.bytes()


_HEAD_KEYS = ('v', 'id', 'token', 'op')


def encode_request(envelope):
    """Encodes a request envelope; errors name positions relative to the envelope's fields
    (args[0], kwargs['x'], vars['y'])."""
    fast = _fast
    if fast is not None and type(envelope) is dict:
        try:
            return fast.encodeRequest(envelope, _to_java)
        except fast.Unsupported:
            pass  # the pure-Jython encoder below names the value (or knows it after all)
    e = _Encoder()
    p = e.p
    enc = e.enc
    p.packMapHeader(len(envelope))
    # The token first: before it is checked the sidecar steps over only a few thousand values
    # (bridge/preauth.py), and a Jython dict has no order of its own.
    keys = [k for k in _HEAD_KEYS if k in envelope]
    keys.extend(k for k in envelope if k not in _HEAD_KEYS)
    for k in keys:
        v = envelope[k]
        p.packString(k)
        try:
            enc(v)
        except _Unsupported, u:
            raise _encode_error(v, k, u.value)
    return e.bytes()


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------

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


def _default_dataset_factory(columns, types, rows):
    """Builds an Ignition Dataset: DatasetBuilder (exact column types) when running inside
    Ignition 8.1+, else system.dataset.toDataSet(headers, rows)."""
    try:
        from com.inductiveautomation.ignition.common.util import DatasetBuilder
    except ImportError:
        DatasetBuilder = None
    if DatasetBuilder is not None:
        b = DatasetBuilder.newBuilder().colNames(columns).colTypes([column_class(t) for t in types])
        for row in rows:
            b.addRow(row)
        return b.build()
    return system.dataset.toDataSet(list(columns), [list(r) for r in rows])  # noqa: F821 (Ignition global)


class _Decoder(object):
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
        raise DecodeError('unexpected msgpack format %s' % fmt)

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
                raise DecodeError('the bigint extension (code 3) is empty')
            return long(java.math.BigInteger(data))  # two's complement, big-endian
        if code == EXT_DATASET:
            inner = _Decoder(data, self.dataset_factory)
            cols, types, rows = inner.dec()
            return (self.dataset_factory or _default_dataset_factory)(cols, types, rows)
        if code == EXT_COLUMNS:
            return self._columns(data)
        if code == EXT_NDARRAY:
            return _ndarray_lists(data)
        raise DecodeError('unknown msgpack extension type %d' % code)

    def _columns(self, data):
        parts = _Decoder(data, self.dataset_factory).dec()
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
        return (self.dataset_factory or _default_dataset_factory)(cols, types, rows)


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
        dtype, shape = _Decoder(java.util.Arrays.copyOfRange(data, 4, 4 + size), None).dec()
        width, read = _NDARRAY_READERS[str(dtype)[1:]]
    except (KeyError, ValueError, TypeError, java.lang.RuntimeException, java.io.IOException):
        raise DecodeError('the ndarray extension (code 4) is malformed or has an unknown dtype')
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


def _columns_factory(dataset_factory):
    """The helper's Dataset factory: (names, types, column-major Java cells) -> a Dataset."""
    if dataset_factory is None and _BasicDataset is not None:
        return lambda names, types, columns: _BasicDataset(
            list(names), [column_class(t) for t in types], columns)
    build = dataset_factory or _default_dataset_factory
    return lambda names, types, columns: build(list(names), list(types),
                                               [list(r) for r in _fast.rows(columns)])


_BASIC_FACTORY = _columns_factory(None)


def decode(data, dataset_factory=None):
    """Decodes one msgpack value (normally a reply envelope) from a Java byte[]."""
    fast = _fast
    if fast is not None:
        factory = _BASIC_FACTORY if dataset_factory is None else _columns_factory(dataset_factory)
        try:
            return fast.decode(data, factory)
        except fast.DecodeFailure, e:
            raise DecodeError(e.getMessage())
        except (java.io.IOException, java.lang.RuntimeException), e:
            raise DecodeError('malformed reply from the sidecar: %s' % e)
    try:
        return _Decoder(data, dataset_factory).dec()
    except CodecError:
        raise
    except (java.io.IOException, java.lang.RuntimeException), e:
        raise DecodeError('malformed reply from the sidecar: %s' % e)
