"""The issue's Done-when, with only the bundle's files: the project library extracted from
py3sidecar-project.zip and the jars of bundle/jars (plus jython.jar and the system.* test
double, which stand in for the Ignition gateway)."""
import java.lang
import java.util
from java.lang import Class as JClass

import harness
from ignition_double import DoubleDataset


def setup_module():
    harness.save_project()


def test_classpath_is_the_bundle():
    cp = java.lang.System.getProperty('java.class.path')
    assert 'jeromq' not in cp, cp
    for jar in cp.split(':'):
        assert jar.endswith('jython.jar') or '/jars/' in jar, cp


def test_the_bundle_s_helper_jar_is_in_use():
    # jars/py3sidecar-gateway.jar: the codec's hot paths in Java (no other jar needed for it)
    assert harness.MODULES['py3sidecar.codec'].java_helper() is not None


def test_statistics_mean_is_2():
    python3 = harness.MODULES['python3']
    assert python3.call("statistics:mean", [[1, 2, 3]]) == 2


def test_dataset_comes_back_as_a_dataset_with_the_same_columns():
    python3 = harness.MODULES['python3']
    ds = DoubleDataset(['line', 'count', 'at'],
                       [JClass.forName('java.lang.String'), JClass.forName('java.lang.Integer'),
                        JClass.forName('java.util.Date')],
                       [[u'A', 3, java.util.Date(0)], [u'B', 4, java.util.Date(1000)]])
    back = python3.execute('ds.to_pandas()', {'ds': ds})
    assert list(back.getColumnNames()) == ['line', 'count', 'at'], list(back.getColumnNames())
    assert back.getRowCount() == 2 and back.getValueAt(1, 0) == 'B' and back.getValueAt(1, 1) == 4
    assert back.getValueAt(1, 2).getTime() == 1000
    python3.close()


def test_zmq_without_jeromq_is_a_clear_error():
    python3 = harness.MODULES['python3']
    harness.save_project(TRANSPORT='zmq', ZMQ_MECHANISM='null')  # an older sidecar: JeroMQ
    try:
        e = harness.raises(python3.Unavailable, python3.call, 'operator:add', [1, 2])
        assert 'jeromq.jar' in str(e), e
    finally:
        harness.save_project()
