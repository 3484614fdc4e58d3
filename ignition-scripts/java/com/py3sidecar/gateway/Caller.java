/*
 * py3sidecar gateway helper: the first sidecar's attempt of a call, as one Jython call.
 *
 * Owns: for one py3sidecar/client _Connection, the success path of a call to its first sidecar
 * when that sidecar's client breaker is CLOSED and the helper drives its transport: the
 * request id, the breaker's permit and record (what CircuitBreaker.acquire/record do on a
 * CLOSED breaker; any other state leaves the whole call to Jython), the envelope, the
 * exchange and its id check (FastCall), and marking a served reply (active sidecar, 'sidecar').
 * Must not touch: failover, retries, error texts, what a failure means (py3sidecar/client gets
 * every outcome that is not a served reply back, and finishes the attempt as its own).
 *
 * Called as caller(op, fields, timeout_ms, wait_ms, routed); returns the served reply (a
 * dict), None (not tried: nothing acquired, nothing sent), or a tuple (gen, outcome,
 * transport, id, started_ns): outcome the reply that is not ok, a Link.Failed, or the
 * client's marker for "nothing was sent" (a value the Java encoder leaves to Jython).
 */
package com.py3sidecar.gateway;

import java.io.IOException;
import java.util.concurrent.atomic.AtomicLong;

import org.python.core.Py;
import org.python.core.PyDictionary;
import org.python.core.PyObject;
import org.python.core.PyString;
import org.python.core.PyTuple;

public final class Caller extends PyObject {
    private final PyObject conn, sidecar, codec, probeId, unsent;
    private final AtomicLong ids;
    private final int version;

    public Caller(PyObject conn, PyObject sidecar, AtomicLong ids, PyObject codec,
                  PyObject probeId, PyObject unsent, int version) {
        this.conn = conn;
        this.sidecar = sidecar;
        this.ids = ids;
        this.codec = codec;
        this.probeId = probeId;
        this.unsent = unsent;
        this.version = version;
    }

    @Override
    public PyObject __call__(PyObject[] args, String[] keywords) {
        if (args.length != 5 || keywords.length != 0 || args[1].getType() != PyDictionary.TYPE) {
            return Py.None;
        }
        PyObject fast = codec.__findattr__("_fast");
        PyObject tr = sidecar.__findattr__("transport");
        PyObject linkObj = tr == null || tr == Py.None ? null : tr.__findattr__("link");
        if (fast == null || fast == Py.None || linkObj == null || linkObj == Py.None) {
            return Py.None;
        }
        Object link = linkObj.__tojava__(Link.class);
        PyObject breaker = sidecar.__findattr__("breaker");
        if (!(link instanceof Link) || !closed(breaker)) {
            return Py.None;
        }
        PyObject gen = breaker.__findattr__("generation");
        long started = System.nanoTime();
        long rid = ids.incrementAndGet();
        PyObject reply;
        try {
            reply = FastCall.call((Link) link, version, rid, sidecar.__findattr__("token"),
                                  args[0], (PyDictionary) args[1], args[2], args[4],
                                  (int) Math.max(1, (long) args[3].asDouble()),
                                  codec.__findattr__("_to_java"), probeId,
                                  codec.__findattr__("_BASIC_FACTORY"));
        } catch (FastCodec.Unsupported e) {
            return outcome(gen, unsent, tr, rid, started);
        } catch (Link.Failed e) {
            return outcome(gen, Py.java2py(e), tr, rid, started);
        } catch (IOException e) {
            throw Py.JavaError(e);
        }
        // it answered: alive, whatever the answer says (record's own no-op test first)
        if (!closed(breaker) || breaker.__findattr__("failures").asInt() != 0) {
            breaker.invoke("record", gen, Py.True);
        }
        PyObject ok = reply.__finditem__("ok");
        if (ok == null || !ok.__nonzero__()) {
            return outcome(gen, reply, tr, rid, started);
        }
        conn.__setattr__("active", sidecar);
        reply.__setitem__("sidecar", sidecar.__findattr__("name"));
        return reply;
    }

    private static boolean closed(PyObject breaker) {
        PyObject state = breaker.__findattr__("state");
        return state instanceof PyString && "closed".equals(((PyString) state).getString());
    }

    private static PyObject outcome(PyObject gen, PyObject what, PyObject tr, long rid,
                                    long started) {
        return new PyTuple(gen, what, tr, Py.newLong(rid), Py.newLong(started));
    }
}
