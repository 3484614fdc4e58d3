"""Jython 2.7 batch runner: one JVM runs every `test_*` function of the given case files.

    java -cp <jars> org.python.util.jython run_cases.py cases_codec.py [cases_client.py ...]

Prints one line per case: `CASE <file>::<name> PASS` or `CASE <file>::<name> FAIL <json text>`,
then `DONE`. The CPython side (test_jython.py) turns each line into a pytest result.
"""
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _json_str(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == '\\':
            out.append('\\' + ch)
        elif o < 32 or o > 126:
            out.append('\\u%04x' % o)
        else:
            out.append(ch)
    out.append('"')
    return ''.join(out)


def main(files):
    for path in files:
        name = os.path.splitext(os.path.basename(path))[0]
        ns = {'__name__': name, '__file__': path}
        try:
            execfile(path, ns)
        except Exception:
            print 'CASE %s::<load> FAIL %s' % (name, _json_str(traceback.format_exc()))
            continue
        cases = sorted((ns[k].func_code.co_firstlineno, k) for k in ns
                       if k.startswith('test_') and callable(ns[k]))
        setup = ns.get('setup_module')
        if setup:
            try:
                setup()
            except Exception:
                print 'CASE %s::<setup> FAIL %s' % (name, _json_str(traceback.format_exc()))
                continue
        for _, k in cases:
            t0 = time.time()
            try:
                ns[k]()
                print 'CASE %s::%s PASS %.3f' % (name, k, time.time() - t0)
            except BaseException:
                print 'CASE %s::%s FAIL %s' % (name, k, _json_str(traceback.format_exc()))
            sys.stdout.flush()
        teardown = ns.get('teardown_module')
        if teardown:
            try:
                teardown()
            except Exception:
                print 'CASE %s::<teardown> FAIL %s' % (name, _json_str(traceback.format_exc()))
    print 'DONE'
    sys.stdout.flush()


if __name__ == '__main__':
    main(sys.argv[1:])
