/*
 * py3sidecar gateway helper: the pool of Unix-socket connections to one sidecar on this host.
 *
 * Owns: connecting a UnixConnection for a call when none is idle, the call's deadline on every
 * send and read, and what each outcome is: a request not one byte of which was written on a
 * pooled connection (the sidecar closed it while it sat idle: a restart) goes out once more on
 * a fresh one; not written on a fresh one, or no connection at all: NOT_CONNECTED (it was not
 * delivered); the connection lost once the request was out: LINK_LOST, its effects unknown
 * (worded as ZmtpPool words it); no reply in time: DEADLINE (that connection is closed).
 * The pooling itself is LinkPool's. Must not touch: the frames (UnixConnection), the envelope,
 * the error classes (py3sidecar/unixlink and py3sidecar/transport turn a Failed into them).
 */
package com.py3sidecar.gateway;

import java.io.IOException;
import java.net.SocketTimeoutException;

import org.python.core.PyObject;

public final class UnixPool extends LinkPool<UnixConnection> {
    private final String path, endpoint;
    private final int connectTimeoutMs;
    private final long maxMessageBytes;

    public UnixPool(String path, int connectTimeoutMs, int maxIdle, long maxMessageBytes,
                    PyObject mismatch) {
        super(maxIdle, mismatch);
        this.path = path;
        this.endpoint = "unix:" + path;
        this.connectTimeoutMs = connectTimeoutMs;
        this.maxMessageBytes = maxMessageBytes;
    }

    @Override
    public PyObject exchange(byte[] payload, int timeoutMs, Check check) {
        long deadline = System.nanoTime() + Math.max(1, timeoutMs) * 1_000_000L;
        UnixConnection c = take();
        boolean fresh = c == null;
        if (fresh) {
            c = connect();
        }
        boolean ok = false;
        try {
            byte[] reply;
            try {
                try {
                    c.send(payload, deadline);
                } catch (UnixConnection.Unsent e) {
                    if (fresh) {
                        throw notDelivered(e);
                    }
                    discard(c); // closed by the sidecar while idle: nothing of ours was on it
                    c = null;
                    c = connect();
                    try {
                        c.send(payload, deadline);
                    } catch (UnixConnection.Unsent again) {
                        throw notDelivered(again);
                    }
                }
                reply = c.recv(deadline);
            } catch (SocketTimeoutException e) {
                reply = null; // mid-frame: the connection is broken, as at the deadline
            } catch (IOException e) {
                throw linkLost(endpoint, e);
            }
            if (reply == null) {
                throw noReply(endpoint);
            }
            PyObject value = check.check(reply); // before the connection is pooled again
            ok = c.isOpen();
            return value;
        } finally {
            if (c != null) {
                release(c, ok);
            }
        }
    }

    private Failed notDelivered(IOException e) {
        return new Failed(Failed.NOT_CONNECTED, "cannot send to the sidecar at " + endpoint
                          + ": it closed the connection (" + causeText(e) + ")");
    }

    private UnixConnection connect() {
        try {
            return register(new UnixConnection(path, connectTimeoutMs, maxMessageBytes));
        } catch (IOException e) {
            throw new Failed(Failed.NOT_CONNECTED, "cannot connect to the sidecar at " + endpoint
                             + " (" + causeText(e) + ")");
        }
    }
}
