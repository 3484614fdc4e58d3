/*
 * py3sidecar gateway helper: the pool of PLAIN ZeroMQ connections to one sidecar.
 *
 * Owns: connecting a ZmtpPlainDealer for a call when none is idle, the per-call deadline, and
 * what each outcome of the exchange is (a handshake refused: AUTH; a connection lost after the
 * request was sent: LINK_LOST, its effects unknown; no reply in time: DEADLINE). The pooling
 * itself (LinkPool): one connection per call in flight, one the sidecar closed while it sat
 * idle found without blocking before the request is sent (the request is never sent twice),
 * never pooled again after a failed, timed-out or mismatched call. Must not touch: the ZMTP
 * wire (ZmtpPlainDealer), the envelope, the error classes (py3sidecar/transport and
 * py3sidecar/zmtp turn a Failed into them).
 */
package com.py3sidecar.gateway;

import java.io.IOException;

import org.python.core.PyObject;

public final class ZmtpPool extends LinkPool<ZmtpPlainDealer> {
    private final String endpoint, host, token;
    private final int port, connectTimeoutMs;
    private final long maxMessageBytes;

    public ZmtpPool(String endpoint, String host, int port, String token, int connectTimeoutMs,
                    int maxIdle, long maxMessageBytes, PyObject mismatch) {
        super(maxIdle, mismatch);
        this.endpoint = endpoint;
        this.host = host;
        this.port = port;
        this.token = token;
        this.connectTimeoutMs = connectTimeoutMs;
        this.maxMessageBytes = maxMessageBytes;
    }

    @Override
    public PyObject exchange(byte[] payload, int timeoutMs, Check check) {
        timeoutMs = Math.max(1, timeoutMs);
        ZmtpPlainDealer d = take();
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
                throw linkLost(endpoint, e);
            }
            if (reply == null) {
                throw noReply(endpoint);
            }
            PyObject value = check.check(reply); // before the connection is pooled again
            ok = true;
            return value;
        } finally {
            release(d, ok);
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
        return register(d);
    }
}
