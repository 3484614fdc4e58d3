"""Jython cases: py3sidecar.codec against CPython msgpack (files exchanged in $PY3_CASE_DIR).

CPython wrote from_cpython/<name>.bin; we decode and check. We write from_jython/<name>.bin;
test_jython.py decodes them with CPython msgpack and checks.
"""
import os
import array
import datetime
import jarray
import java.math
import java.util
from java.lang import Class as JClass

import ignition_double
import loader

CASE_DIR = os.environ['PY3_CASE_DIR']
LIB = os.environ['PY3_LIBRARY_DIR']
SYSTEM = ignition_double.DoubleSystem()
loader.load_library(LIB, SYSTEM)
codec = py3sidecar.codec  # noqa: F821 (made global by the loader, as Ignition does)


def _read(name):
    f = open(os.path.join(CASE_DIR, 'from_cpython', name + '.bin'), 'rb')
    try:
        data = f.read()
    finally:
        f.close()
    return jarray.array([ord(c) - 256 if ord(c) > 127 else ord(c) for c in data], 'b')


def _write(name, value):
    data = codec.encode(value)
    d = os.path.join(CASE_DIR, 'from_jython')
    if not os.path.isdir(d):
        os.makedirs(d)
    f = open(os.path.join(d, name + '.bin'), 'wb')
    try:
        f.write(''.join(chr(b & 0xff) for b in data))
    finally:
        f.close()


def _cls(name):
    return JClass.forName(name)


def sample_dataset():
    return ignition_double.DoubleDataset(
        ['id', 'name', 'temp', 'when'],
        [_cls('java.lang.Integer'), _cls('java.lang.String'), _cls('java.lang.Double'), _cls('java.util.Date')],
        [[1, u'pump', 20.5, java.util.Date(1700000000123)], [2, None, -1.0, None]])


def test_encode_every_type():
    _write('none', None)
    _write('bools', [True, False])
    _write('ints', [0, 1, -1, 127, 128, -33, 2 ** 31, -2 ** 31 - 1, 2 ** 63 - 1, -2 ** 63])
    _write('uint64', 2 ** 64 - 1)
    _write('bigint', [2 ** 70, -2 ** 70])
    _write('floats', [1.5, -2.25, 1e300])
    _write('strings', [u'h\xe9llo \u20ac', '', 'plain'])
    _write('bytes', jarray.array([0, 1, 127, -128, -1], 'b'))
    _write('bytearray', bytearray('\x00\xff'))
    _write('nested', {'a': [1, {'b': None}], 'c': (1, 2)})
    m = java.util.LinkedHashMap()
    m.put('k', java.util.ArrayList([1, 2, 3]))
    _write('java_collections', m)
    _write('date', java.util.Date(1700000000123))
    _write('pydatetime', datetime.datetime(2023, 11, 14, 22, 13, 20, 123456))
    _write('decimal', [java.math.BigDecimal('12.50'), java.math.BigDecimal('-0.001')])
    _write('biginteger', [java.math.BigInteger('5'), java.math.BigInteger('1' + '0' * 30)])
    _write('dataset', sample_dataset())


HUGE = 7 * 10 ** 99999 + 12345  # the same number the CPython side writes
HUGE_NEGATIVE_EDGE = -(2 ** 332191)


def test_encode_huge_integers():
    _write('hugeint', [HUGE, -HUGE, HUGE_NEGATIVE_EDGE])


def test_decode_huge_integers_from_cpython():
    got = codec.decode(_read('hugeint'))
    assert got == [HUGE, -HUGE, HUGE_NEGATIVE_EDGE], [g.bit_length() for g in got]
    assert codec.decode(codec.encode(java.math.BigInteger('-1' + '0' * 50))) == -10 ** 50


def test_big_integer_scaling():
    """Times encode+decode at 10k, 100k and 1M digits; the CPython test prints the ratios."""
    import json
    import time
    figures = {}
    for digits in (10000, 10000, 100000, 1000000):  # the first 10k warms the JIT up
        n = long(java.math.BigInteger(jarray.array([0x5a] * int(digits / 2.40824), 'b')))
        rounds = max(1, 2000000 // digits)
        started = time.time()
        for _ in xrange(rounds):
            assert codec.decode(codec.encode(n)) == n
        figures[str(digits)] = (time.time() - started) / rounds
    d = os.path.join(CASE_DIR, 'from_jython')
    if not os.path.isdir(d):
        os.makedirs(d)
    f = open(os.path.join(d, 'scaling.json'), 'w')
    try:
        f.write(json.dumps(figures))
    finally:
        f.close()


def test_unsupported_type_names_type_and_position():
    try:
        codec.encode_request({'args': [1, {'a': [0, 1, object()]}]})
    except codec.EncodeError, e:
        msg = str(e)
        assert 'object' in msg, msg
        assert "args[1]['a'][2]" in msg, msg
        assert e.path == "args[1]['a'][2]", e.path
    else:
        raise AssertionError('no EncodeError')


def test_encode_request_puts_the_token_first():
    # The sidecar looks for the token among the first few thousand values only
    # (bridge/preauth.py): a large argument must never come before it.
    from org.msgpack.core import MessagePack
    env = {'args': range(10000), 'target': 'm:f', 'op': 'call', 'timeout': 5.0,
           'token': 't' * 43, 'id': 7, 'v': 1, 'kwargs': {'a': 1}}
    u = MessagePack.newDefaultUnpacker(codec.encode_request(env))
    keys = []
    for _ in range(u.unpackMapHeader()):
        keys.append(u.unpackString())
        u.skipValue()
    assert keys[:4] == ['v', 'id', 'token', 'op'], keys
    assert sorted(keys) == sorted(env.keys()), keys


def test_unsupported_java_type_is_named():
    try:
        codec.encode([java.lang.Thread()])
    except codec.EncodeError, e:
        assert 'java.lang.Thread' in str(e), str(e)
        assert 'value[0]' in str(e), str(e)
    else:
        raise AssertionError('no EncodeError')


def test_decode_scalars_from_cpython():
    assert codec.decode(_read('none')) is None
    assert codec.decode(_read('bools')) == [True, False]
    ints = codec.decode(_read('ints'))
    assert ints == [0, 1, -1, 127, 128, -33, 2 ** 31, -2 ** 31 - 1, 2 ** 63 - 1, -2 ** 63], ints
    assert type(ints[1]) is int, type(ints[1])
    assert codec.decode(_read('uint64')) == 2 ** 64 - 1
    assert codec.decode(_read('bigint')) == [2 ** 70, -2 ** 70]
    assert codec.decode(_read('floats')) == [1.5, -2.25, 1e300]
    assert codec.decode(_read('strings')) == [u'h\xe9llo \u20ac', u'']


def test_decode_bytes_are_signed_java_bytes():
    b = codec.decode(_read('bytes'))
    assert isinstance(b, array.array) and b.typecode == 'b', (type(b), getattr(b, 'typecode', None))
    assert list(b) == [0, 1, 127, -128, -1], list(b)


def test_decode_containers():
    v = codec.decode(_read('nested'))
    assert v == {u'a': [1, {u'b': None}], u'c': [1, 2]}, v


def test_decode_timestamp_is_java_date_utc():
    v = codec.decode(_read('date'))
    assert isinstance(v, java.util.Date), type(v)
    assert v.getTime() == 1700000000123, v.getTime()
    v64 = codec.decode(_read('date_ts64'))   # timestamp 64 format (nanoseconds)
    assert v64.getTime() == 1700000000123, v64.getTime()
    v96 = codec.decode(_read('date_pre1970'))   # timestamp 96 format (negative seconds)
    assert v96.getTime() == -86400000 * 365, v96.getTime()


def test_decode_decimal_is_bigdecimal():
    v = codec.decode(_read('decimal'))
    assert isinstance(v, java.math.BigDecimal), type(v)
    assert v.compareTo(java.math.BigDecimal('12.50')) == 0 and v.scale() == 2, v


def test_decode_dataset_builds_ignition_dataset():
    ds = codec.decode(_read('dataset'))
    assert list(ds.getColumnNames()) == [u'id', u'name', u'when'], list(ds.getColumnNames())
    assert ds.getRowCount() == 2
    assert ds.getValueAt(0, 0) == 1 and ds.getValueAt(0, 1) == u'pump'
    assert ds.getValueAt(1, 1) is None
    assert isinstance(ds.getValueAt(0, 2), java.util.Date)
    assert ds.getValueAt(0, 2).getTime() == 1700000000000


def test_decode_ndarray_from_cpython_as_lists():
    got = codec.decode(_read('ndarray'))
    assert got == [[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], [1, -2], [True, False], [255, 0],
                   2 ** 40, [4000000000], [-1.5]], got


def test_decode_unknown_extension_is_an_error():
    try:
        codec.decode(_read('ext_unknown'))
    except codec.DecodeError, e:
        assert '42' in str(e), str(e)
    else:
        raise AssertionError('no DecodeError')


def test_dataset_round_trip_inside_jython():
    ds = codec.decode(codec.encode(sample_dataset()))
    assert list(ds.getColumnNames()) == ['id', 'name', 'temp', 'when']
    assert ds.getValueAt(0, 3).getTime() == 1700000000123
    assert ds.getValueAt(1, 2) == -1.0


# ---------------------------------------------------------------------------
# The gateway helper jar and column-wise Datasets (extension 5); every case runs twice,
# with the helper jar and without it (PY3_EXPECT_HELPER says which).
# ---------------------------------------------------------------------------

def _basic_dataset_class():
    try:
        from com.inductiveautomation.ignition.common import BasicDataset
    except ImportError:
        return None
    return BasicDataset


def test_helper_in_use_as_the_class_path_says():
    expected = os.environ.get('PY3_EXPECT_HELPER') == '1'
    assert (codec.java_helper() is not None) == expected, (codec.java_helper(), expected)
    if expected:
        assert codec.use_java_helper(False) is False and codec.java_helper() is None
        assert codec.use_java_helper(True) is True


DATASET_NAMES = ['id', 'temp', 'n', 'name', 'on', 'when']
DATASET_CLASSES = ['java.lang.Integer', 'java.lang.Double', 'java.lang.Long', 'java.lang.String',
                   'java.lang.Boolean', 'java.util.Date']


def _dataset_rows():
    return [[1, 20.5, 2 ** 40, u'pump', True, java.util.Date(1700000000123)],
            [None, None, None, None, None, None],
            [-7, -1.0, -2 ** 63, u'\u20ac', False, None]]


def _java_basic_dataset():
    BasicDataset = _basic_dataset_class()
    import java.lang
    rows = _dataset_rows()
    boxes = [java.lang.Integer, java.lang.Double, java.lang.Long, None, java.lang.Boolean, None]
    data = jarray.zeros(len(DATASET_NAMES), JClass.forName('[Ljava.lang.Object;'))
    for c in range(len(DATASET_NAMES)):
        cells = []
        for r in rows:
            v = r[c]
            cells.append(None if v is None or boxes[c] is None else boxes[c](v))
            if boxes[c] is None:
                cells[-1] = v
        data[c] = jarray.array(cells, java.lang.Object)
    return BasicDataset(DATASET_NAMES, [_cls(n) for n in DATASET_CLASSES], data)


def test_encode_datasets_column_wise():
    double = ignition_double.DoubleDataset(DATASET_NAMES, [_cls(n) for n in DATASET_CLASSES],
                                           _dataset_rows())
    first = _java_basic_dataset() if _basic_dataset_class() is not None else double
    _write('datasets', [first, double])


def _cells(ds):
    return [[ds.getValueAt(r, c) for c in range(len(list(ds.getColumnNames())))]
            for r in range(ds.getRowCount())]


def test_decode_column_wise_dataset_from_cpython():
    ds = codec.decode(_read('dataset_columns'))
    assert list(ds.getColumnNames()) == [u'i', u'f', u's', u'b', u't', u'i32']
    rows = _cells(ds)
    assert rows[0][:4] == [1, 0.5, u'a', True], rows[0]
    assert rows[0][5] == 7 and rows[2][5] == 9, rows
    assert isinstance(rows[0][4], java.util.Date) and rows[0][4].getTime() == 1700000000123
    assert rows[1][0] is None and rows[1][2] is None and rows[1][3] is None, rows[1]
    assert rows[1][1] != rows[1][1], 'a float NaN (pandas) is a NaN, not a null'
    assert rows[1][4] is None, rows[1]
    assert rows[2][:4] == [-3, -2.25, u'\u20ac', False], rows[2]
    if _basic_dataset_class() is not None:
        assert [codec.column_type_name(t) for t in ds.getColumnTypes()] == [
            'long', 'double', 'str', 'bool', 'datetime', 'long']


def test_decode_column_wise_dataset_without_rows():
    ds = codec.decode(_read('dataset_empty'))
    assert ds.getRowCount() == 0 and len(list(ds.getColumnNames())) == 6


def test_decode_typed_columns_hold_their_class():
    ds = codec.decode(_read('dataset_typed'))
    assert _cells(ds) == [[1, 1.5], [2, None]], _cells(ds)
    if _basic_dataset_class() is not None:
        assert [codec.column_type_name(t) for t in ds.getColumnTypes()] == ['int', 'float']
        # Jython shows a java.lang.Integer cell as int, a java.lang.Long one as long
        assert type(ds.getValueAt(0, 0)) is int, type(ds.getValueAt(0, 0))
        assert type(codec.decode(_read('dataset_columns')).getValueAt(0, 0)) is long


def test_decode_row_wise_dataset_of_older_senders():
    ds = codec.decode(_read('dataset_rows_legacy'))
    assert _cells(ds) == [[1, 0.5], [None, 2.5]], _cells(ds)


def test_dataset_column_wise_round_trip_inside_jython():
    for ds in ([_java_basic_dataset()] if _basic_dataset_class() is not None else []) + [
            ignition_double.DoubleDataset(DATASET_NAMES, [_cls(n) for n in DATASET_CLASSES],
                                          _dataset_rows())]:
        back = codec.decode(codec.encode(ds))
        assert list(back.getColumnNames()) == DATASET_NAMES
        got = _cells(back)
        assert got[0][:5] == _dataset_rows()[0][:5] and got[2][:5] == _dataset_rows()[2][:5], got
        assert got[0][5].getTime() == 1700000000123 and got[1] == [None] * 6, got


def test_values_the_helper_hands_back_to_jython():
    """Python values the Java encoder passes to the library's hook (datetime, Decimal,
    bytearray, array.array) and errors that name their position, on either path."""
    import decimal
    env = {'v': 1, 'id': 1, 'token': 't', 'op': 'call',
           'args': [datetime.datetime(2023, 11, 14, 22, 13, 20, 123456), decimal.Decimal('1.25'),
                    bytearray('\x00\xff'), array.array('i', [1, 2]), array.array('B', [255])]}
    got = codec.decode(codec.encode_request(env))
    assert got['args'][0].getTime() == 1700000000123, got['args'][0]
    assert got['args'][1].compareTo(java.math.BigDecimal('1.25')) == 0
    assert list(got['args'][2]) == [0, -1] and got['args'][3] == [1, 2], got['args']
    assert list(got['args'][4]) == [-1], got['args'][4]
    try:
        codec.encode_request({'v': 1, 'args': [1, [object()]]})
    except codec.EncodeError, e:
        assert e.path == 'args[1][0]', e.path
    else:
        raise AssertionError('no EncodeError')
