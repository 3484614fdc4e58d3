"""py3sidecar.valuepath - where a value that cannot cross to CPython sits, Jython 2.7.

Owns: naming the first unsendable value's type and position in what was being encoded
(args[0]['a'][2], kwargs['x'].dataset[row 1]['c']) and the EncodeError that says so. Must not
touch: encoding itself (py3sidecar.codec, py3sidecar.datasets), sockets (py3sidecar.transport).

Runs only after py3sidecar.codec's encoder has failed (it raises _Unsupported with the value,
so the hot path never formats a path string). Gateway scope ("G"), like py3sidecar.codec.
"""
import array

import java.lang
import java.util


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
    is_java_array = py3sidecar.codec._is_java_array  # noqa: F821 (project library global)
    if isinstance(v, (list, tuple, java.util.Collection)) or is_java_array(v):
        return [(item, '%s[%d]' % (path, i)) for i, item in enumerate(list(v))]
    datasets = py3sidecar.datasets  # noqa: F821 (project library global)
    ds = datasets.as_dataset(v) if isinstance(v, java.lang.Object) or hasattr(v, 'getValueAt') \
        else None
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


def encode_error(root, root_path, bad):
    """The EncodeError for ``bad``, found inside ``root`` (named ``root_path``)."""
    path = _find_path(root, root_path, bad) or root_path
    name = _type_name(bad)
    return py3sidecar.codec.EncodeError(  # noqa: F821 (project library global)
        'cannot send a value of type %s to Python 3 (at %s); supported: '
        'None, bool, int, long, float, str, unicode, byte arrays, list, '
        'tuple, dict, java.util.List/Map, java.util.Date, datetime, '
        'BigDecimal, Decimal, BigInteger, Ignition Dataset'
        % (name, path), path, name)
