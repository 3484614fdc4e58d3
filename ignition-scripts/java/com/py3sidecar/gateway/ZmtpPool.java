/*
 * py3sidecar gateway helper: the pool of PLAIN ZeroMQ connections to one sidecar.
 *
 * Owns: pooling ZmtpPlainDealer connections (one per call in flight, at most maxIdle kept),
 * dropping a pooled one the sidecar closed while it sat idle (found without blocking, before
 * the request is sent: the request is never sent twice), the per-call deadline, and never
 * pooling again a connection whose call failed, timed out or got a reply that was not its
 * request's. Must not touch: the ZMTP wire (ZmtpPlainDealer), the envelope, the error classes
 * (py3sidecar/transport and py3sidecar/zmtp turn a Failed into them).
 */
package com.py3sidecar.gateway;

import java.io.IOException;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;

import org.python.core.PyObject;

public final class ZmtpPool implements Link {
    private final String endpoint, host, token;
    private final int port, connectTimeoutMs, maxIdle;
    private final long maxMessageBytes;
    private final PyObject mismatch;
    private final ConcurrentLinkedQueue<ZmtpPlainDealer> idle = new ConcurrentLinkedQueue<>();
    private final Set<ZmtpPlainDealer> all = new HashSet<>();
    private volatile boolean closed;

    public ZmtpPool(String endpoint, String host, int port, String token, int connectTimeoutMs,
                    int maxIdle, long maxMessageBytes, PyObject mismatch) {
        this.endpoint = endpoint;
        this.host = host;
        this.port = port;
        this.token = token;
        this.connectTimeoutMs = connectTimeoutMs;
        this.maxIdle = maxIdle;
        this.maxMessageBytes = maxMessageBytes;
        this.mismatch = mismatch;
    }

    @Override
    public PyObject mismatch() {
        return mismatch;
    }

    @Override
    public PyObject exchange(byte[] payload, int timeoutMs, Check check) {
        if (closed) {
            throw new Failed(Failed.NOT_CONNECTED, Py4JLink.CLOSED);
        }
        timeoutMs = Math.max(1, timeoutMs);
        ZmtpPlainDealer d = idle.poll();
        while (d != null && !d.isOpen()) {
            discard(d); // closed by the sidecar while idle: nothing of ours was on it
            d = idle.poll();
        }
        if (d == null) {
            d = connect();
        }
        boolean ok = false;
        try {
            byte[] reply;
            try {
                d.send(payload, timeoutMs);
                reply = d.recv(timeoutMs);
            } catch (IOException e) {
                throw new Failed(Failed.LINK_LOST, "the connection to the sidecar at " + endpoint
                                 + " was lost while this call was running there; its effects "
                                 + "are unknown (" + causeText(e) + ")");
            }
            if (reply == null) {
                throw new Failed(Failed.DEADLINE, "no reply from the sidecar at " + endpoint
                                 + " before the deadline");
            }
            PyObject value = check.check(reply); // before the connection is pooled again
            ok = true;
            return value;
        } finally {
            if (ok && !closed && idle.size() < maxIdle) {
                idle.offer(d);
            } else {
                discard(d);
            }
        }
    }

    private ZmtpPlainDealer connect() {
        ZmtpPlainDealer d;
        try {
            d = new ZmtpPlainDealer(host, port, "py3sidecar", token, connectTimeoutMs,
                                    maxMessageBytes);
        } catch (ZmtpPlainDealer.HandshakeRefused e) {
            throw new Failed(Failed.AUTH, "the sidecar at " + endpoint + " refused the token at "
                             + "the ZeroMQ handshake (" + e.getMessage() + ")");
        } catch (IOException e) {
            throw new Failed(Failed.NOT_CONNECTED, "cannot connect to the sidecar at " + endpoint
                             + " via ZeroMQ (" + causeText(e) + ")");
        }
        synchronized (all) {
            if (closed) {
                d.close();
                throw new Failed(Failed.NOT_CONNECTED, Py4JLink.CLOSED);
            }
            all.add(d);
        }
        return d;
    }

    private void discard(ZmtpPlainDealer d) {
        synchronized (all) {
            all.remove(d);
        }
        d.close();
    }

    /** The connection the next call takes (null: none idle); for tests and diagnostics. */
    public ZmtpPlainDealer idlePeek() {
        return idle.peek();
    }

    @Override
    public void close() {
        ZmtpPlainDealer[] items;
        synchronized (all) {
            closed = true;
            items = all.toArray(new ZmtpPlainDealer[0]);
            all.clear();
        }
        idle.clear();
        for (ZmtpPlainDealer d : items) {
            d.close();
        }
    }

    /** The exception chain as one line ('A: msg <- B: msg'), as py3sidecar/transport writes it. */
    static String causeText(Throwable e) {
        StringBuilder out = new StringBuilder();
        for (int seen = 0; e != null && seen < 8; seen++) {
            String msg = e.getMessage() == null ? "" : e.getMessage().split("\n", 2)[0];
            if (out.length() > 0) {
                out.append(" <- ");
            }
            out.append(e.getClass().getSimpleName()).append(": ").append(msg);
            Throwable next = e.getCause();
            if (next == e) {
                break;
            }
            e = next;
        }
        return out.toString();
    }
}
