"""py3sidecar.codec - msgpack encoding of the bridge envelope (docs/protocol.md), Jython 2.7.

Owns: the codec's public names (encode, encode_request, decode, to_bytes, the errors, the
extension codes, the Dataset column-type vocabulary), the choice between the Java helper
(py3sidecar-gateway.jar) and the pure-Jython code, and the pure-Jython encoder. Its parts:
Datasets on the wire (py3sidecar.datasets), the pure-Jython decoder (py3sidecar.decoder), naming
an unsendable value's position (py3sidecar.valuepath); they are reached at call time, once per
Dataset, per pure-Jython decode, or after a failure. Must not touch: sockets
(py3sidecar.transport), the envelope's meaning and failover (py3sidecar.client).

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
from java.lang import Class as JClass
from org.msgpack.core import MessagePack

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
        datasets = py3sidecar.datasets  # noqa: F821 (project library global)
        ds = datasets.as_dataset(v)
        if ds is not None:
            datasets.pack(self, ds)
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
        raise py3sidecar.valuepath.encode_error(value, root, u.value)  # noqa: F821
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
            raise py3sidecar.valuepath.encode_error(v, k, u.value)  # noqa: F821
    return e.bytes()


def _columns_factory(dataset_factory):
    """The helper's Dataset factory: (names, types, column-major Java cells) -> a Dataset
    (py3sidecar.datasets builds it)."""
    return lambda names, types, columns: py3sidecar.datasets.from_java_columns(  # noqa: F821
        dataset_factory, names, types, columns, _fast)


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
        return py3sidecar.decoder.Decoder(data, dataset_factory).dec()  # noqa: F821
    except CodecError:
        raise
    except (java.io.IOException, java.lang.RuntimeException), e:
        raise DecodeError('malformed reply from the sidecar: %s' % e)
