/*
 * py3sidecar gateway helper: one call's exchange with one sidecar, in Java.
 *
 * Owns: sending an encoded request on a Link (Py4JLink, ZmtpPool), decoding its reply
 * (FastCodec) and matching it to the request (the same rule as py3sidecar/client's
 * _read_reply: a success must name the request's id; only a failure may say id null; the
 * answer to a link check or to another request is a MISMATCH, and its connection is dropped).
 * Must not touch: the envelope's fields, failover, the breaker, error texts of the replies
 * (py3sidecar/client), the sockets (the links).
 *
 * Optional, like the whole jar: without it py3sidecar/client does the same in Jython.
 */
package com.py3sidecar.gateway;

import java.io.IOException;
import java.util.Map;

import org.python.core.Py;
import org.python.core.PyDictionary;
import org.python.core.PyObject;

public final class FastCall {
    public static final int VERSION = 1;
    static final PyObject ID = Py.newString("id");
    static final PyObject OK = Py.newString("ok");

    private FastCall() {
    }

    /** Field names the envelope sets itself: a call whose fields hold one goes the Jython way. */
    private static final String[] OWN_KEYS = {"v", "id", "token", "op", "timeout", "routed"};

    /**
     * One request, built here as py3sidecar/client builds its envelope ({v, id, token (when
     * set), op, timeout (seconds, when timeoutMs is not None), the fields, routed (when not
     * None)}), sent on `link` and its reply decoded and matched: the reply dict (ok or not), or
     * Link.Failed. FastCodec.Unsupported (a value the Java encoder leaves to Jython, or a field
     * named like one of the envelope's own) is thrown before anything is sent.
     */
    public static PyObject call(Link link, int version, long id, PyObject token, PyObject op,
                                PyDictionary fields, PyObject timeoutMs, PyObject routed,
                                int waitMs, PyObject hook, PyObject probeId, PyObject factory)
            throws IOException {
        FastCodec.Encoder e = new FastCodec.Encoder(hook, true);
        Map<PyObject, PyObject> map = fields.getMap();
        for (String k : OWN_KEYS) {
            if (fields.__finditem__(k) != null) {
                throw new FastCodec.Unsupported(k);
            }
        }
        boolean hasToken = token != null && token.__nonzero__();
        boolean hasTimeout = timeoutMs != null && timeoutMs != Py.None;
        boolean hasRouted = routed != null && routed != Py.None;
        e.p.packMapHeader(3 + map.size() + (hasToken ? 1 : 0) + (hasTimeout ? 1 : 0)
                          + (hasRouted ? 1 : 0));
        e.p.packString("v");
        e.p.packInt(version);
        e.p.packString("id");
        e.p.packLong(id);
        if (hasToken) {
            e.p.packString("token");
            e.any(token);
        }
        e.p.packString("op");
        e.any(op);
        if (hasTimeout) {
            e.p.packString("timeout");
            e.p.packDouble(timeoutMs.asDouble() / 1000.0);
        }
        for (Map.Entry<PyObject, PyObject> entry : map.entrySet()) {
            e.any(entry.getKey());
            e.any(entry.getValue());
        }
        if (hasRouted) {
            e.p.packString("routed");
            e.any(routed);
        }
        return exchange(link, e.p.toByteArray(), waitMs, Py.newLong(id), probeId, factory);
    }

    /** The decoded reply to `payload` (request id `rid`), or Link.Failed. */
    public static PyObject exchange(Link link, byte[] payload, int waitMs, PyObject rid,
                                    PyObject probeId, PyObject factory) {
        return link.exchange(payload, waitMs, new IdCheck(rid, probeId, factory));
    }

    static final class IdCheck implements Link.Check {
        final PyObject rid, probeId, factory;

        IdCheck(PyObject rid, PyObject probeId, PyObject factory) {
            this.rid = rid;
            this.probeId = probeId;
            this.factory = factory;
        }

        @Override
        public PyObject check(byte[] raw) {
            PyObject reply;
            try {
                reply = FastCodec.decode(raw, factory);
            } catch (FastCodec.DecodeFailure e) {
                throw new Link.Failed(Link.Failed.DECODE, e.getMessage());
            } catch (IOException | RuntimeException e) {
                throw new Link.Failed(Link.Failed.DECODE, "malformed reply from the sidecar: " + e);
            }
            if (!(reply instanceof PyDictionary)) {
                throw new Link.Failed(Link.Failed.DECODE, "the sidecar sent a reply that is not a map");
            }
            PyObject got = ((PyDictionary) reply).__finditem__(ID);
            if (got == null) {
                got = Py.None;
            }
            if (got._eq(rid).__nonzero__()) {
                return reply;
            }
            PyObject ok = ((PyDictionary) reply).__finditem__(OK);
            boolean success = ok != null && ok.__nonzero__();
            if (got == Py.None && !success) {
                return reply;
            }
            if (got._eq(probeId).__nonzero__()) {
                throw new Link.Failed(Link.Failed.MISMATCH, Link.PyCheck.UNASKED);
            }
            if (got == Py.None) {
                throw new Link.Failed(Link.Failed.MISMATCH, "the sidecar answered with a success "
                        + "that names no request (reply id null, this call's is " + rid.__repr__()
                        + "): the link is out of step, its socket was dropped");
            }
            throw new Link.Failed(Link.Failed.MISMATCH, "the sidecar's reply is for another call "
                    + "(reply id " + got.__repr__() + ", this call's is " + rid.__repr__()
                    + "): the link is out of step, its socket was dropped");
        }
    }
}
