/*
 * py3sidecar gateway helper: the hot codec work of the Jython library, in Java.
 *
 * Owns: encoding a request envelope (Jython values, Java values, Ignition Datasets column by
 * column, a numeric column as one binary block) to msgpack bytes, and decoding a reply to Jython
 * values, with the same results as the pure-Jython codec (py3sidecar/codec, docs/protocol.md).
 * Must not touch: sockets, the envelope's meaning, how a Dataset is built (the Jython library's
 * factory builds it from the column-major cells handed over here), error messages that name a
 * position (on Unsupported the library re-encodes with the pure-Jython codec, which names it).
 *
 * Built by `make gateway-jar` (sidecar/deploy/gateway_jar.py: javac --release 11 against jython.jar and
 * msgpack-core.jar), shipped as jars/py3sidecar-gateway.jar by `py3sidecar ignition-bundle`.
 * Optional: without this jar the library runs the pure-Jython codec (slower, same wire).
 */
package com.py3sidecar.gateway;

import java.io.IOException;
import java.lang.reflect.Method;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.msgpack.core.ExtensionTypeHeader;
import org.msgpack.core.MessageBufferPacker;
import org.msgpack.core.MessageFormat;
import org.msgpack.core.MessagePack;
import org.msgpack.core.MessagePacker;
import org.msgpack.core.MessageUnpacker;
import org.msgpack.value.ValueType;
import org.python.core.Py;
import org.python.core.PyArray;
import org.python.core.PyBoolean;
import org.python.core.PyByteArray;
import org.python.core.PyDictionary;
import org.python.core.PyFloat;
import org.python.core.PyInteger;
import org.python.core.PyList;
import org.python.core.PyLong;
import org.python.core.PyNone;
import org.python.core.PyObject;
import org.python.core.PySequenceList;
import org.python.core.PyString;

public final class FastCodec {
    public static final int VERSION = 1;

    static final byte EXT_DATASET = 1;
    static final byte EXT_DECIMAL = 2;
    static final byte EXT_BIGINT = 3;
    static final byte EXT_NDARRAY = 4;
    static final byte EXT_COLUMNS = 5;
    static final byte EXT_TIMESTAMP = -1;

    private static final String[] HEAD_KEYS = {"v", "id", "token", "op"};
    private static final BigInteger UINT64_MAX = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);

    private FastCodec() {
    }

    /** A value this helper does not encode: the library re-encodes with the Jython codec. */
    public static final class Unsupported extends RuntimeException {
        public final transient Object value;

        Unsupported(Object value) {
            super("unsupported value of type " + (value == null ? "null" : value.getClass().getName()), null,
                  false, false);
            this.value = value;
        }
    }

    /** Bytes that cannot be decoded; the message says why (the library raises DecodeError). */
    public static final class DecodeFailure extends RuntimeException {
        DecodeFailure(String message) {
            super(message);
        }
    }

    // ------------------------------------------------------------------ encoding

    /**
     * The envelope (a Jython dict) as msgpack, `v`, `id`, `token`, `op` first (the sidecar looks
     * for the token among the first values only). `hook(value)` turns a Python value this class
     * does not know (datetime, Decimal, bytearray, array.array) into one it does, or None.
     */
    public static byte[] encodeRequest(PyDictionary envelope, PyObject hook) throws IOException {
        Encoder e = new Encoder(hook);
        Map<PyObject, PyObject> map = envelope.getMap();
        e.p.packMapHeader(map.size());
        int head = 0;
        for (String k : HEAD_KEYS) {
            PyObject v = envelope.__finditem__(k);
            if (v != null) {
                e.p.packString(k);
                e.any(v);
                head++;
            }
        }
        for (Map.Entry<PyObject, PyObject> entry : map.entrySet()) {
            PyObject k = entry.getKey();
            if (head > 0 && k instanceof PyString && isHeadKey(((PyString) k).getString())) {
                continue;
            }
            e.any(k);
            e.any(entry.getValue());
        }
        return e.p.toByteArray();
    }

    /** One value as msgpack (see encodeRequest for `hook`). */
    public static byte[] encode(PyObject value, PyObject hook) throws IOException {
        Encoder e = new Encoder(hook);
        e.any(value);
        return e.p.toByteArray();
    }

    private static boolean isHeadKey(String k) {
        for (String h : HEAD_KEYS) {
            if (h.equals(k)) {
                return true;
            }
        }
        return false;
    }

    /** A packer that starts small (a call's envelope is ~100 bytes; it grows as needed). */
    private static final MessagePack.PackerConfig SMALL =
            new MessagePack.PackerConfig().withBufferSize(512);

    static final class Encoder {
        final MessageBufferPacker p;
        final PyObject hook;
        int depth;

        Encoder(PyObject hook) {
            this(hook, false);
        }

        /** small: the packer's first buffer is 512 bytes, not 8 KiB (one call's envelope). */
        Encoder(PyObject hook, boolean small) {
            this.p = small ? SMALL.newBufferPacker() : MessagePack.newDefaultBufferPacker();
            this.hook = hook;
        }

        void any(Object v) throws IOException {
            if (v instanceof PyObject) {
                py((PyObject) v);
            } else {
                java(v);
            }
        }

        void py(PyObject v) throws IOException {
            if (v instanceof PyString) {  // PyUnicode too
                p.packString(((PyString) v).getString());
            } else if (v instanceof PyBoolean) {
                p.packBoolean(((PyBoolean) v).getBooleanValue());
            } else if (v instanceof PyInteger) {
                p.packLong(((PyInteger) v).getValue());
            } else if (v == Py.None || v instanceof PyNone) {
                p.packNil();
            } else if (v instanceof PyFloat) {
                p.packDouble(((PyFloat) v).getValue());
            } else if (v instanceof PyLong) {
                bigInteger(((PyLong) v).getValue());
            } else if (v instanceof PyDictionary) {
                Map<PyObject, PyObject> map = ((PyDictionary) v).getMap();
                enter();
                p.packMapHeader(map.size());
                for (Map.Entry<PyObject, PyObject> entry : map.entrySet()) {
                    py(entry.getKey());
                    py(entry.getValue());
                }
                depth--;
            } else if (v instanceof PySequenceList) {  // list, tuple
                PySequenceList seq = (PySequenceList) v;
                int n = seq.size();
                enter();
                p.packArrayHeader(n);
                for (int i = 0; i < n; i++) {
                    py(seq.pyget(i));
                }
                depth--;
            } else {
                other(v);
            }
        }

        private void enter() {
            if (++depth > 500) {
                throw new Unsupported(null);  // the Jython codec says where (or recurses)
            }
        }

        private void other(PyObject v) throws IOException {
            if (v instanceof PyArray && ((PyArray) v).getArray() instanceof byte[]) {  // array('b')
                byte[] b = (byte[]) ((PyArray) v).getArray();
                p.packBinaryHeader(b.length);
                p.writePayload(b);
                return;
            }
            if (!(v instanceof PyArray) && !(v instanceof PyByteArray)) {
                Object j = v.__tojava__(Object.class);
                if (j != Py.NoConversion && !(j instanceof PyObject)) {
                    java(j);
                    return;
                }
                PyObject under = v.__findattr__("getUnderlyingDataset");
                if (under != null) {
                    any(unwrap(under.__call__()));
                    return;
                }
                if (v.__findattr__("getValueAt") != null && v.__findattr__("getColumnNames") != null
                        && v.__findattr__("getColumnTypes") != null && v.__findattr__("getRowCount") != null) {
                    dataset(new PyTable(v));
                    return;
                }
            }
            PyObject converted = hook == null ? Py.None : hook.__call__(v);
            if (converted == Py.None) {
                throw new Unsupported(v);
            }
            any(unwrap(converted));
        }

        void java(Object v) throws IOException {
            if (v == null) {
                p.packNil();
            } else if (v instanceof String) {
                p.packString((String) v);
            } else if (v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte) {
                p.packLong(((Number) v).longValue());
            } else if (v instanceof Double || v instanceof Float) {
                p.packDouble(((Number) v).doubleValue());
            } else if (v instanceof Boolean) {
                p.packBoolean((Boolean) v);
            } else if (v instanceof java.sql.Timestamp) {
                java.sql.Timestamp ts = (java.sql.Timestamp) v;
                p.packTimestamp(Math.floorDiv(ts.getTime(), 1000L), ts.getNanos());
            } else if (v instanceof java.util.Date) {
                p.packTimestamp(((java.util.Date) v).getTime());
            } else if (v instanceof BigDecimal) {
                byte[] text = ((BigDecimal) v).toString().getBytes(java.nio.charset.StandardCharsets.UTF_8);
                p.packExtensionTypeHeader(EXT_DECIMAL, text.length);
                p.writePayload(text);
            } else if (v instanceof BigInteger) {
                bigInteger((BigInteger) v);
            } else if (v instanceof Number) {  // AtomicLong and friends
                p.packLong(((Number) v).longValue());
            } else if (v instanceof Character) {
                p.packString(v.toString());
            } else if (v instanceof byte[]) {
                byte[] b = (byte[]) v;
                p.packBinaryHeader(b.length);
                p.writePayload(b);
            } else if (v instanceof Map) {
                Map<?, ?> map = (Map<?, ?>) v;
                enter();
                p.packMapHeader(map.size());
                for (Map.Entry<?, ?> entry : map.entrySet()) {
                    any(entry.getKey());
                    any(entry.getValue());
                }
                depth--;
            } else if (v instanceof Collection) {
                Collection<?> c = (Collection<?>) v;
                enter();
                p.packArrayHeader(c.size());
                for (Object item : c) {
                    any(item);
                }
                depth--;
            } else if (v.getClass().isArray()) {
                int n = java.lang.reflect.Array.getLength(v);
                enter();
                p.packArrayHeader(n);
                for (int i = 0; i < n; i++) {
                    any(java.lang.reflect.Array.get(v, i));
                }
                depth--;
            } else {
                Table t = JavaTable.of(v);
                if (t == null) {
                    throw new Unsupported(v);
                }
                dataset(t);
            }
        }

        void bigInteger(BigInteger v) throws IOException {
            int bits = v.bitLength();
            if (bits <= 63) {
                p.packLong(v.longValue());
            } else if (v.signum() > 0 && v.compareTo(UINT64_MAX) <= 0) {
                p.packBigInteger(v);
            } else {
                byte[] data = v.toByteArray();  // two's complement, big-endian (docs/protocol.md)
                p.packExtensionTypeHeader(EXT_BIGINT, data.length);
                p.writePayload(data);
            }
        }

        /** A Dataset as the column-wise extension (code 5): see docs/protocol.md. */
        void dataset(Table t) throws IOException {
            String[] names = t.names();
            String[] types = t.types();
            int rows = t.rows();
            Encoder inner = new Encoder(hook);
            MessagePacker ip = inner.p;
            ip.packArrayHeader(4);
            ip.packArrayHeader(names.length);
            for (String n : names) {
                ip.packString(n);
            }
            ip.packArrayHeader(types.length);
            for (String ty : types) {
                ip.packString(ty);
            }
            ip.packInt(rows);
            ip.packArrayHeader(names.length);
            for (int c = 0; c < names.length; c++) {
                ip.packArrayHeader(2);
                Object[] cells = new Object[rows];
                for (int r = 0; r < rows; r++) {
                    cells[r] = t.cell(r, c);
                }
                if (!inner.numericBlock(types[c], cells)) {
                    ip.packArrayHeader(rows);
                    for (Object cell : cells) {
                        inner.any(cell);
                    }
                    ip.packNil();
                }
            }
            byte[] payload = inner.p.toByteArray();
            p.packExtensionTypeHeader(EXT_COLUMNS, payload.length);
            p.writePayload(payload);
        }

        /** Packs `[block, nulls]` for a numeric column; false (nothing packed) when a cell is
         * not a number of that column (the column then goes inline). */
        boolean numericBlock(String type, Object[] cells) throws IOException {
            String dtype = Dtype.of(type);
            if (dtype == null) {
                return false;
            }
            int n = cells.length;
            int width = Dtype.width(dtype);
            ByteBuffer buf = ByteBuffer.allocate(n * width).order(ByteOrder.LITTLE_ENDIAN);
            byte[] nulls = null;
            for (int i = 0; i < n; i++) {
                Object v = cells[i];
                if (v instanceof PyObject) {
                    Object j = ((PyObject) v).__tojava__(Object.class);
                    v = j == Py.NoConversion ? v : j;
                }
                if (v == null || v == Py.None) {
                    if (nulls == null) {
                        nulls = new byte[n];
                    }
                    nulls[i] = 1;
                    buf.position(buf.position() + width);
                    continue;
                }
                if (dtype.equals("|b1")) {
                    if (!(v instanceof Boolean)) {
                        return false;
                    }
                    buf.put((byte) (((Boolean) v) ? 1 : 0));
                    continue;
                }
                if (!(v instanceof Number) || v instanceof BigDecimal || v instanceof BigInteger) {
                    return false;
                }
                Number num = (Number) v;
                switch (dtype) {
                    case "<i4":
                        long lv = num.longValue();
                        if (lv != (int) lv || v instanceof Double || v instanceof Float) {
                            return false;
                        }
                        buf.putInt((int) lv);
                        break;
                    case "<i8":
                        if (v instanceof Double || v instanceof Float) {
                            return false;
                        }
                        buf.putLong(num.longValue());
                        break;
                    case "<f4":
                        buf.putFloat(num.floatValue());
                        break;
                    default:
                        buf.putDouble(num.doubleValue());
                }
            }
            block(dtype, buf.array());
            if (nulls == null) {
                p.packNil();
            } else {
                block("|b1", nulls);
            }
            return true;
        }

        void block(String dtype, byte[] data) throws IOException {
            int count = data.length / Dtype.width(dtype);
            MessageBufferPacker hp = MessagePack.newDefaultBufferPacker();
            hp.packArrayHeader(2);
            hp.packString(dtype);
            hp.packArrayHeader(1);
            hp.packInt(count);
            byte[] header = hp.toByteArray();
            p.packExtensionTypeHeader(EXT_NDARRAY, 4 + header.length + data.length);
            p.writePayload(new byte[] {(byte) (header.length >>> 24), (byte) (header.length >>> 16),
                                       (byte) (header.length >>> 8), (byte) header.length});
            p.writePayload(header);
            p.writePayload(data);
        }
    }

    static Object unwrap(PyObject v) {
        Object j = v.__tojava__(Object.class);
        return j == Py.NoConversion || j instanceof PyObject && j != v ? v : j;
    }

    /** The numeric dtypes of the column types (docs/protocol.md, extension 5). */
    static final class Dtype {
        static String of(String type) {
            switch (type) {
                case "bool": return "|b1";
                case "int": return "<i4";
                case "long": return "<i8";
                case "float": return "<f4";
                case "double": return "<f8";
                default: return null;
            }
        }

        static int width(String dtype) {
            return Integer.parseInt(dtype.substring(2));
        }
    }

    /** A Dataset's shape and cells, however it is reached. */
    /** A Dataset as the encoder reads it: the shape, read once, then cell by cell. */
    abstract static class Table {
        String[] names;
        String[] types;
        int rows;

        final String[] names() {
            return names;
        }

        final String[] types() {
            return types;
        }

        final int rows() {
            return rows;
        }

        abstract Object cell(int row, int col);
    }

    static final Map<String, String> TYPE_NAMES = new HashMap<>();

    static {
        String[][] pairs = {
            {"java.lang.Boolean", "bool"}, {"boolean", "bool"},
            {"java.lang.Byte", "int"}, {"byte", "int"}, {"java.lang.Short", "int"}, {"short", "int"},
            {"java.lang.Integer", "int"}, {"int", "int"},
            {"java.lang.Long", "long"}, {"long", "long"}, {"java.math.BigInteger", "long"},
            {"java.lang.Float", "float"}, {"float", "float"},
            {"java.lang.Double", "double"}, {"double", "double"},
            {"java.lang.String", "str"},
            {"java.util.Date", "datetime"}, {"java.sql.Timestamp", "datetime"}, {"java.sql.Date", "datetime"},
            {"java.math.BigDecimal", "decimal"}, {"[B", "bytes"},
        };
        for (String[] pair : pairs) {
            TYPE_NAMES.put(pair[0], pair[1]);
        }
    }

    static String typeName(Object cls) {
        if (cls instanceof PyObject) {
            Object j = ((PyObject) cls).__tojava__(Class.class);
            cls = j == Py.NoConversion ? null : j;
        }
        if (!(cls instanceof Class)) {
            return "object";
        }
        String t = TYPE_NAMES.get(((Class<?>) cls).getName());
        return t == null ? "object" : t;
    }

    static String[] strings(Object list) {
        List<?> l = asList(list);
        String[] out = new String[l.size()];
        for (int i = 0; i < out.length; i++) {
            Object o = l.get(i);
            out[i] = o instanceof PyObject ? ((PyObject) o).__str__().toString() : String.valueOf(o);
        }
        return out;
    }

    static String[] typeNames(Object list) {
        List<?> l = asList(list);
        String[] out = new String[l.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = typeName(l.get(i));
        }
        return out;
    }

    static List<?> asList(Object o) {
        if (o instanceof PyObject) {
            Object j = ((PyObject) o).__tojava__(Object.class);
            o = j == Py.NoConversion ? o : j;
        }
        if (o instanceof List) {
            return (List<?>) o;
        }
        if (o instanceof Object[]) {
            return java.util.Arrays.asList((Object[]) o);
        }
        if (o instanceof Collection) {
            return new ArrayList<Object>((Collection<?>) o);
        }
        throw new Unsupported(o);
    }

    /** An Ignition Dataset (any Java object with its four methods), read by reflection. */
    static final class JavaTable extends Table {
        private static final Map<Class<?>, Method[]> METHODS = new ConcurrentHashMap<>();
        private static final Method[] NONE = new Method[0];
        final Object ds;
        final Method valueAt;

        static Table of(Object v) throws IOException {
            Method[] m = METHODS.computeIfAbsent(v.getClass(), JavaTable::lookup);
            if (m.length == 0) {
                return null;
            }
            try {
                if (m.length == 1) {
                    Object under = m[0].invoke(v);
                    return under == null ? null : of(under);
                }
                return new JavaTable(v, m);
            } catch (ReflectiveOperationException e) {
                throw new Unsupported(v);
            }
        }

        private static Method[] lookup(Class<?> c) {
            try {
                return new Method[] {c.getMethod("getColumnNames"), c.getMethod("getColumnTypes"),
                                     c.getMethod("getRowCount"), c.getMethod("getValueAt", int.class, int.class)};
            } catch (NoSuchMethodException e) {
                try {
                    return new Method[] {c.getMethod("getUnderlyingDataset")};  // PyDataSet
                } catch (NoSuchMethodException e2) {
                    return NONE;
                }
            }
        }

        JavaTable(Object ds, Method[] m) throws ReflectiveOperationException {
            this.ds = ds;
            for (Method method : m) {
                method.setAccessible(true);
            }
            names = strings(m[0].invoke(ds));
            types = typeNames(m[1].invoke(ds));
            rows = ((Number) m[2].invoke(ds)).intValue();
            valueAt = m[3];
        }

        Object cell(int row, int col) {
            try {
                return valueAt.invoke(ds, row, col);
            } catch (ReflectiveOperationException e) {
                throw new Unsupported(ds);
            }
        }
    }

    /** A Dataset written in Jython (anything with the four methods): called through Jython. */
    static final class PyTable extends Table {
        final PyObject valueAt;

        PyTable(PyObject ds) {
            names = strings(ds.__getattr__("getColumnNames").__call__());
            types = typeNames(ds.__getattr__("getColumnTypes").__call__());
            rows = ds.__getattr__("getRowCount").__call__().asInt();
            valueAt = ds.__getattr__("getValueAt");
        }

        Object cell(int row, int col) {
            return unwrap(valueAt.__call__(Py.newInteger(row), Py.newInteger(col)));
        }
    }

    /** Column-major cells (what the decoder hands the Dataset factory) as rows. */
    public static Object[][] rows(Object[][] columns) {
        int nrows = columns.length == 0 ? 0 : columns[0].length;
        Object[][] out = new Object[nrows][columns.length];
        for (int c = 0; c < columns.length; c++) {
            for (int r = 0; r < nrows; r++) {
                out[r][c] = columns[c][r];
            }
        }
        return out;
    }

    // ------------------------------------------------------------------ decoding

    /**
     * One msgpack value as Jython values (str, int/long, float, bool, None, list, dict, byte
     * array, java.util.Date, BigDecimal); a Dataset (extension 1 or 5) is built by
     * `factory(names, types, columns)` with `columns` column-major Java cells.
     */
    public static PyObject decode(byte[] data, PyObject factory) throws IOException {
        try (MessageUnpacker u = MessagePack.newDefaultUnpacker(data)) {
            return new Decoder(u, factory).py();
        }
    }

    static final class Decoder {
        final MessageUnpacker u;
        final PyObject factory;

        Decoder(MessageUnpacker u, PyObject factory) {
            this.u = u;
            this.factory = factory;
        }

        PyObject py() throws IOException {
            MessageFormat f = u.getNextFormat();
            switch (f.getValueType()) {
                case STRING:
                    return Py.newUnicode(u.unpackString());
                case INTEGER:
                    if (f == MessageFormat.UINT64) {
                        return Py.newLong(u.unpackBigInteger());
                    }
                    return Py.newInteger(u.unpackLong());
                case MAP: {
                    int n = u.unpackMapHeader();
                    PyDictionary d = new PyDictionary();
                    for (int i = 0; i < n; i++) {
                        PyObject k = py();
                        d.__setitem__(k, py());
                    }
                    return d;
                }
                case ARRAY: {
                    int n = u.unpackArrayHeader();
                    PyObject[] items = new PyObject[n];
                    for (int i = 0; i < n; i++) {
                        items[i] = py();
                    }
                    return new PyList(items);
                }
                case NIL:
                    u.unpackNil();
                    return Py.None;
                case BOOLEAN:
                    return u.unpackBoolean() ? Py.True : Py.False;
                case FLOAT:
                    return Py.newFloat(u.unpackDouble());
                case BINARY:
                    return Py.java2py(u.readPayload(u.unpackBinaryHeader()));
                case EXTENSION:
                    return ext();
                default:
                    throw new DecodeFailure("unexpected msgpack format " + f);
            }
        }

        private PyObject ext() throws IOException {
            ExtensionTypeHeader h = u.unpackExtensionTypeHeader();
            byte code = h.getType();
            if (code == EXT_TIMESTAMP) {
                return Py.java2py(java.util.Date.from(u.unpackTimestamp(h)));
            }
            byte[] data = u.readPayload(h.getLength());
            switch (code) {
                case EXT_DECIMAL: {
                    String text = new String(data, java.nio.charset.StandardCharsets.UTF_8);
                    try {
                        return Py.java2py(new BigDecimal(text));
                    } catch (NumberFormatException e) {
                        try {
                            return Py.newFloat(Double.parseDouble(text));  // NaN, Infinity
                        } catch (NumberFormatException e2) {
                            throw new DecodeFailure("the decimal extension (code 2) holds '" + text
                                                    + "', which is not a decimal number");
                        }
                    }
                }
                case EXT_BIGINT:
                    if (data.length == 0) {
                        throw new DecodeFailure("the bigint extension (code 3) is empty");
                    }
                    return Py.newLong(new BigInteger(data));
                case EXT_DATASET:
                    return rowsDataset(data);
                case EXT_COLUMNS:
                    return columnsDataset(data);
                case EXT_NDARRAY:
                    return ndarrayLists(Block.read(data));
                default:
                    throw new DecodeFailure("unknown msgpack extension type " + code);
            }
        }

        private PyObject build(List<String> names, List<String> types, Object[][] columns) {
            PyObject[] n = new PyObject[names.size()];
            PyObject[] t = new PyObject[types.size()];
            for (int i = 0; i < n.length; i++) {
                n[i] = Py.newUnicode(names.get(i));
                t[i] = Py.newUnicode(types.get(i));
            }
            return factory.__call__(new PyList(n), new PyList(t), Py.java2py(columns));
        }

        private PyObject rowsDataset(byte[] data) throws IOException {
            try (MessageUnpacker in = MessagePack.newDefaultUnpacker(data)) {
                if (in.unpackArrayHeader() != 3) {
                    throw new DecodeFailure("the Dataset extension (code 1) must hold [columns, types, rows]");
                }
                List<String> names = stringList(in, "columns");
                List<String> types = stringList(in, "types");
                checkTypes(names, types);
                int nrows = in.unpackArrayHeader();
                int ncols = names.size();
                Object[][] cols = new Object[ncols][nrows];
                for (int r = 0; r < nrows; r++) {
                    int width = in.unpackArrayHeader();
                    if (width != ncols) {
                        throw new DecodeFailure("the Dataset's row " + r + " has " + width + " value(s) for "
                                                + ncols + " columns");
                    }
                    for (int c = 0; c < ncols; c++) {
                        cols[c][r] = Cells.coerce(types.get(c), java(in));
                    }
                }
                return build(names, types, cols);
            }
        }

        private PyObject columnsDataset(byte[] data) throws IOException {
            try (MessageUnpacker in = MessagePack.newDefaultUnpacker(data)) {
                if (in.unpackArrayHeader() != 4) {
                    throw new DecodeFailure("the column-wise Dataset extension (code 5) must hold "
                                            + "[columns, types, rows, data]");
                }
                List<String> names = stringList(in, "columns");
                List<String> types = stringList(in, "types");
                checkTypes(names, types);
                long nrowsLong = in.unpackLong();
                if (nrowsLong < 0 || nrowsLong > Integer.MAX_VALUE) {
                    throw new DecodeFailure("the column-wise Dataset extension (code 5) has " + nrowsLong + " rows");
                }
                int nrows = (int) nrowsLong;
                int ncols = names.size();
                if (in.unpackArrayHeader() != ncols) {
                    throw new DecodeFailure("the column-wise Dataset's data must hold one column per name");
                }
                Object[][] cols = new Object[ncols][];
                for (int c = 0; c < ncols; c++) {
                    if (in.unpackArrayHeader() != 2) {
                        throw new DecodeFailure("column " + c + " of the Dataset must be [values, nulls]");
                    }
                    cols[c] = column(in, types.get(c), nrows, c);
                }
                return build(names, types, cols);
            }
        }

        private Object[] column(MessageUnpacker in, String type, int nrows, int c) throws IOException {
            Object[] out;
            MessageFormat f = in.getNextFormat();
            if (f.getValueType() == ValueType.EXTENSION) {
                ExtensionTypeHeader h = in.unpackExtensionTypeHeader();
                if (h.getType() != EXT_NDARRAY) {
                    throw new DecodeFailure("column " + c + " of the Dataset is extension " + h.getType()
                                            + ", not a numeric block (4) or a list");
                }
                Block b = Block.read(in.readPayload(h.getLength()));
                if (b.count != nrows) {
                    throw new DecodeFailure("column " + c + " of the Dataset has " + b.count + " values for "
                                            + nrows + " rows");
                }
                out = new Object[nrows];
                for (int r = 0; r < nrows; r++) {
                    out[r] = Cells.coerce(type, b.get(r));
                }
            } else {
                int n = in.unpackArrayHeader();
                if (n != nrows) {
                    throw new DecodeFailure("column " + c + " of the Dataset has " + n + " values for "
                                            + nrows + " rows");
                }
                out = new Object[nrows];
                for (int r = 0; r < nrows; r++) {
                    out[r] = Cells.coerce(type, java(in));
                }
            }
            if (in.getNextFormat().getValueType() == ValueType.NIL) {
                in.unpackNil();
            } else {
                ExtensionTypeHeader h = in.unpackExtensionTypeHeader();
                Block mask = h.getType() == EXT_NDARRAY ? Block.read(in.readPayload(h.getLength())) : null;
                if (mask == null || !mask.dtype.endsWith("b1") || mask.count != nrows) {
                    throw new DecodeFailure("column " + c + " of the Dataset has a null mask that is not "
                                            + nrows + " booleans (|b1)");
                }
                for (int r = 0; r < nrows; r++) {
                    if (mask.buf.get(mask.start + r) != 0) {
                        out[r] = null;
                    }
                }
            }
            return out;
        }

        private void checkTypes(List<String> names, List<String> types) {
            if (names.size() != types.size()) {
                throw new DecodeFailure("the Dataset has " + types.size() + " types for " + names.size()
                                        + " columns");
            }
        }

        private List<String> stringList(MessageUnpacker in, String what) throws IOException {
            int n = in.unpackArrayHeader();
            List<String> out = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                if (in.getNextFormat().getValueType() != ValueType.STRING) {
                    throw new DecodeFailure("the Dataset's " + what + " must be a list of strings");
                }
                out.add(in.unpackString());
            }
            return out;
        }

        /** A cell as a Java value (what an Ignition Dataset holds). */
        private Object java(MessageUnpacker in) throws IOException {
            MessageFormat f = in.getNextFormat();
            switch (f.getValueType()) {
                case STRING:
                    return in.unpackString();
                case INTEGER:
                    if (f == MessageFormat.UINT64) {
                        return in.unpackBigInteger();
                    }
                    return in.unpackLong();
                case NIL:
                    in.unpackNil();
                    return null;
                case BOOLEAN:
                    return in.unpackBoolean();
                case FLOAT:
                    return in.unpackDouble();
                case BINARY:
                    return in.readPayload(in.unpackBinaryHeader());
                case ARRAY: {
                    int n = in.unpackArrayHeader();
                    List<Object> l = new ArrayList<>(n);
                    for (int i = 0; i < n; i++) {
                        l.add(java(in));
                    }
                    return l;
                }
                case MAP: {
                    int n = in.unpackMapHeader();
                    Map<Object, Object> m = new HashMap<>();
                    for (int i = 0; i < n; i++) {
                        Object k = java(in);
                        m.put(k, java(in));
                    }
                    return m;
                }
                case EXTENSION: {
                    ExtensionTypeHeader h = in.unpackExtensionTypeHeader();
                    if (h.getType() == EXT_TIMESTAMP) {
                        return java.util.Date.from(in.unpackTimestamp(h));
                    }
                    byte[] payload = in.readPayload(h.getLength());
                    if (h.getType() == EXT_DECIMAL) {
                        String text = new String(payload, java.nio.charset.StandardCharsets.UTF_8);
                        try {
                            return new BigDecimal(text);
                        } catch (NumberFormatException e) {
                            try {
                                return Double.parseDouble(text);
                            } catch (NumberFormatException e2) {
                                throw new DecodeFailure("the decimal extension (code 2) holds '" + text
                                                        + "', which is not a decimal number");
                            }
                        }
                    }
                    if (h.getType() == EXT_BIGINT && payload.length > 0) {
                        return new BigInteger(payload);
                    }
                    // Anything else in a cell: as the value decoder gives it (Jython object).
                    MessageBufferPacker again = MessagePack.newDefaultBufferPacker();
                    again.packExtensionTypeHeader(h.getType(), payload.length);
                    again.writePayload(payload);
                    return decode(again.toByteArray(), factory);
                }
                default:
                    throw new DecodeFailure("unexpected msgpack format " + f);
            }
        }

        private PyObject ndarrayLists(Block b) {
            PyObject[] flat = new PyObject[b.count];
            for (int i = 0; i < b.count; i++) {
                Object v = b.get(i);
                flat[i] = v instanceof Long ? Py.newInteger((Long) v) : Py.java2py(v);
            }
            if (b.shape.length == 0) {
                return flat.length == 1 ? flat[0] : new PyList(flat);
            }
            List<PyObject> level = java.util.Arrays.asList(flat);
            for (int d = b.shape.length - 1; d >= 1; d--) {
                int n = b.shape[d];
                List<PyObject> next = new ArrayList<>();
                for (int i = 0; i + n <= level.size() && n > 0; i += n) {
                    next.add(new PyList(level.subList(i, i + n).toArray(new PyObject[0])));
                }
                level = next;
            }
            return new PyList(level.toArray(new PyObject[0]));
        }
    }

    /** Cells converted to their column's Java class (an `int` column holds Integers). */
    static final class Cells {
        static Object coerce(String type, Object v) {
            if (!(v instanceof Number) || v instanceof BigDecimal) {
                return v;
            }
            Number n = (Number) v;
            switch (type) {
                case "int":
                    return v instanceof Integer ? v : Integer.valueOf(n.intValue());
                case "long":
                    return v instanceof Long || v instanceof BigInteger ? v : Long.valueOf(n.longValue());
                case "float":
                    return v instanceof Float ? v : Float.valueOf(n.floatValue());
                case "double":
                    return v instanceof Double ? v : Double.valueOf(n.doubleValue());
                default:
                    if (v instanceof Long && n.longValue() == n.intValue()) {
                        return Integer.valueOf(n.intValue());
                    }
                    return v;
            }
        }
    }

    /** A numeric array (extension 4): dtype, shape and the buffer, read in place. */
    static final class Block {
        String dtype;
        int[] shape;
        int count;
        int width;
        int start;
        ByteBuffer buf;

        static Block read(byte[] data) throws IOException {
            Block b = new Block();
            try {
                ByteBuffer buf = ByteBuffer.wrap(data);
                int size = buf.getInt(0);
                try (MessageUnpacker h = MessagePack.newDefaultUnpacker(data, 4, size)) {
                    if (h.unpackArrayHeader() != 2) {
                        throw new DecodeFailure("");
                    }
                    b.dtype = h.unpackString();
                    int dims = h.unpackArrayHeader();
                    b.shape = new int[dims];
                    long count = 1;
                    for (int i = 0; i < dims; i++) {
                        b.shape[i] = h.unpackInt();
                        if (b.shape[i] < 0) {
                            throw new DecodeFailure("");
                        }
                        count *= b.shape[i];
                    }
                    b.width = Integer.parseInt(b.dtype.substring(2));
                    b.start = 4 + size;
                    if (count * b.width != data.length - b.start
                            || b.dtype.length() != 3 || "<>|".indexOf(b.dtype.charAt(0)) < 0
                            || "biuf".indexOf(b.dtype.charAt(1)) < 0) {
                        throw new DecodeFailure("");
                    }
                    b.count = (int) count;
                }
                b.buf = buf.order(b.dtype.charAt(0) == '>' ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN);
            } catch (IOException | RuntimeException e) {
                throw new DecodeFailure("the ndarray extension (code 4) is malformed or has an unknown dtype");
            }
            return b;
        }

        Object get(int i) {
            int at = start + i * width;
            switch (dtype.substring(1)) {
                case "f8": return buf.getDouble(at);
                case "f4": return (double) buf.getFloat(at);
                case "i8": return buf.getLong(at);
                case "i4": return buf.getInt(at);
                case "i2": return (int) buf.getShort(at);
                case "i1": return (int) buf.get(at);
                case "u4": return buf.getInt(at) & 0xffffffffL;
                case "u2": return buf.getShort(at) & 0xffff;
                case "u1": return buf.get(at) & 0xff;
                case "b1": return buf.get(at) != 0;
                default: throw new DecodeFailure("the ndarray extension (code 4) has an unknown dtype " + dtype);
            }
        }
    }
}
