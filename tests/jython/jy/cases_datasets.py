"""Jython cases: Datasets and DataFrames through a real sidecar, column by column (extension 5).

Run by test_datasets_jython.py twice: with the gateway helper jar on the class path and
without it (PY3_EXPECT_HELPER says which); the same cases pass on both paths.
"""
import os

import jarray
import java.lang
import java.util
from java.lang import Class as JClass

import harness
from harness import save_project
from ignition_double import DoubleDataset

NAMES = ['id', 'temp', 'name', 'on']
CLASSES = ['java.lang.Integer', 'java.lang.Double', 'java.lang.String', 'java.lang.Boolean']


def p3():
    return harness.MODULES['python3']


def codec():
    return harness.MODULES['py3sidecar.codec']


def setup_module():
    save_project(TRANSPORT='py4j')


def _rows(n):
    return [[i if i % 5 else None, i * 0.5, u'pump-%d' % i if i % 7 else None, i % 2 == 0]
            for i in xrange(n)]


def _datasets(n):
    """The same table as a Jython-written Dataset and, when Ignition's class is there, as a
    BasicDataset (column-major Java cells, as Ignition holds them)."""
    out = [DoubleDataset(NAMES, [JClass.forName(c) for c in CLASSES], _rows(n))]
    try:
        from com.inductiveautomation.ignition.common import BasicDataset
    except ImportError:
        return out
    boxes = [java.lang.Integer, java.lang.Double, None, java.lang.Boolean]
    data = jarray.zeros(len(NAMES), JClass.forName('[Ljava.lang.Object;'))
    for c in range(len(NAMES)):
        cells = [r[c] if r[c] is None or boxes[c] is None else boxes[c](r[c]) for r in _rows(n)]
        data[c] = jarray.array(cells, java.lang.Object)
    out.append(BasicDataset(NAMES, [JClass.forName(c) for c in CLASSES], data))
    return out


def _cells(ds):
    return [[ds.getValueAt(r, c) for c in range(len(list(ds.getColumnNames())))]
            for r in range(ds.getRowCount())]


def test_the_expected_codec_path_is_in_use():
    expected = os.environ.get('PY3_EXPECT_HELPER') == '1'
    assert (codec().java_helper() is not None) == expected, codec().java_helper()


def test_a_dataset_arrives_column_by_column_and_returns_unchanged():
    for ds in _datasets(50):
        kinds = p3().execute('[type(values).__name__ for values, _ in ds.column_data()]',
                             {'ds': ds})
        assert kinds == ['ndarray', 'ndarray', 'list', 'ndarray'], kinds
        seen = p3().execute('[ds.columns, ds.types, len(ds), ds.rows[5], ds.rows[7]]',
                            {'ds': ds})
        assert seen == [NAMES, ['int', 'double', 'str', 'bool'], 50,
                        [None, 2.5, u'pump-5', False], [7, 3.5, None, False]], seen
        back = p3().execute('ds', {'ds': ds})
        assert list(back.getColumnNames()) == NAMES
        assert _cells(back) == _rows(50), _cells(back)[:8]


def test_a_dataframe_from_a_worker_becomes_a_dataset():
    ds = p3().execute('import pandas as pd\n'
                      'pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"),'
                      ' "x": [0.5, 1.5, 2.5], "s": ["a", None, "c"],'
                      ' "b": [True, False, True]})')
    assert list(ds.getColumnNames()) == [u'n', u'x', u's', u'b']
    assert _cells(ds) == [[1, 0.5, u'a', True], [None, 1.5, None, False],
                          [3, 2.5, u'c', True]], _cells(ds)


def test_describe_comes_back_as_a_dataset():
    ds = _datasets(1000)[-1]
    summary = p3().execute('ds.to_pandas().describe()', {'ds': ds})
    assert summary.getRowCount() == 8, summary.getRowCount()
    assert list(summary.getColumnNames()) == [u'id', u'temp'], list(summary.getColumnNames())
    assert summary.getValueAt(0, 1) == 1000.0  # count of temp
    assert summary.getValueAt(0, 0) == 800.0   # count of id: every fifth is null
