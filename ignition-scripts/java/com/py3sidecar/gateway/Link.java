/*
 * py3sidecar gateway helper: what a transport's hot path looks like from the fast call.
 *
 * Owns: the Link interface (one request/reply exchange on a pooled or per-thread connection,
 * the reply checked before the connection is used again), its Failed exception (the outcome
 * kinds the Jython transport turns into its TransportError classes), and Check (what reads a
 * reply: the fast call's id check, or a Jython callable). Must not touch: sockets (Py4JLink,
 * ZmtpPool), the envelope (FastCall, FastCodec), the error classes (py3sidecar/transport).
 */
package com.py3sidecar.gateway;

import org.python.core.Py;
import org.python.core.PyException;
import org.python.core.PyObject;

public interface Link {

    /**
     * Sends payload and waits at most timeoutMs for the reply; returns what check made of it
     * (check runs before the connection is used again: a mismatch drops the connection).
     */
    PyObject exchange(byte[] payload, int timeoutMs, Check check);

    /** The Jython transports' entry: check is a callable of the reply (or None). */
    default PyObject request(byte[] payload, int timeoutMs, PyObject check) {
        return exchange(payload, timeoutMs, new PyCheck(check, mismatch()));
    }

    /** The Jython ReplyMismatch class: what a check raises for another request's reply. */
    PyObject mismatch();

    void close();

    /** Reads a reply: the value to return, or throws (Failed MISMATCH: not this request's). */
    interface Check {
        PyObject check(byte[] reply);
    }

    /** A transport outcome other than a reply; `kind` says which TransportError it is. */
    final class Failed extends RuntimeException {
        public static final int NOT_CONNECTED = 1;
        public static final int AUTH = 2;
        public static final int LINK_LOST = 3;
        public static final int DEADLINE = 4;
        public static final int MISMATCH = 5;
        public static final int DECODE = 6;
        /** A raw exception of the Py4J call: the Jython transport classifies it (getCause()). */
        public static final int RAW = 7;

        public final int kind;
        public final int generation;

        public Failed(int kind, String message) {
            super(message, null, false, false);
            this.kind = kind;
            this.generation = 0;
        }

        public Failed(Throwable cause, int generation) {
            super(String.valueOf(cause), cause, false, false);
            this.kind = RAW;
            this.generation = generation;
        }
    }

    /** A Jython callable as a Check: None from it means the reply was a link check's answer. */
    final class PyCheck implements Check {
        static final String UNASKED = "the sidecar answered a link check this call never sent";
        final PyObject fn;
        final PyObject mismatch;

        PyCheck(PyObject fn, PyObject mismatch) {
            this.fn = fn;
            this.mismatch = mismatch;
        }

        @Override
        public PyObject check(byte[] reply) {
            PyObject raw = Py.java2py(reply);
            if (fn == null || fn == Py.None) {
                return raw;
            }
            PyObject value = fn.__call__(raw);
            if (value == Py.None) {
                throw new Failed(Failed.MISMATCH, UNASKED);
            }
            return value;
        }

        /** The exception says the reply was not this request's (the connection is dropped). */
        static boolean isMismatch(RuntimeException e, PyObject mismatch) {
            if (e instanceof Failed) {
                return ((Failed) e).kind == Failed.MISMATCH;
            }
            return mismatch != null && e instanceof PyException && ((PyException) e).match(mismatch);
        }
    }
}
