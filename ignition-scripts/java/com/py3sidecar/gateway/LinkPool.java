/*
 * py3sidecar gateway helper: what the pooled links (ZmtpPool, UnixPool) share.
 *
 * Owns: the idle connections (one per call in flight, at most maxIdle kept), dropping an idle
 * one that is no longer open before a request is sent on it, registering a new connection
 * (refused once the pool is closed), pooling a connection again only after its call got its
 * own reply (a failed, timed-out or mismatched call's connection is closed: a late reply never
 * reaches the next call), closing them all, and the one-line text of an exception chain.
 * Must not touch: the wire of a connection (ZmtpPlainDealer, UnixConnection), what a failure
 * means (each pool's exchange says which Link.Failed it is).
 */
package com.py3sidecar.gateway;

import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;

import org.python.core.PyObject;

public abstract class LinkPool<C extends LinkPool.Conn> implements Link {

    /** One pooled connection: open while it can carry a request; close() is idempotent. */
    public interface Conn {
        boolean isOpen();

        void close();
    }

    private final int maxIdle;
    private final PyObject mismatch;
    private final ConcurrentLinkedQueue<C> idle = new ConcurrentLinkedQueue<>();
    private final Set<C> all = new HashSet<>();
    private volatile boolean closed;

    protected LinkPool(int maxIdle, PyObject mismatch) {
        this.maxIdle = maxIdle;
        this.mismatch = mismatch;
    }

    @Override
    public PyObject mismatch() {
        return mismatch;
    }

    /** An idle connection still open (null: none); Failed NOT_CONNECTED once closed. */
    protected final C take() {
        if (closed) {
            throw new Failed(Failed.NOT_CONNECTED, Py4JLink.CLOSED);
        }
        C c = idle.poll();
        while (c != null && !c.isOpen()) {
            discard(c); // closed while idle: nothing of ours was on it
            c = idle.poll();
        }
        return c;
    }

    /** A new connection joins the pool (closed, and Failed NOT_CONNECTED, if the pool is). */
    protected final C register(C c) {
        synchronized (all) {
            if (closed) {
                c.close();
                throw new Failed(Failed.NOT_CONNECTED, Py4JLink.CLOSED);
            }
            all.add(c);
        }
        return c;
    }

    /** After a call: pooled again only when it got its own reply (ok) on a sound connection. */
    protected final void release(C c, boolean ok) {
        if (ok && !closed && idle.size() < maxIdle) {
            idle.offer(c);
        } else {
            discard(c);
        }
    }

    protected final void discard(C c) {
        synchronized (all) {
            all.remove(c);
        }
        c.close();
    }

    /** The connection the next call takes (null: none idle); for tests and diagnostics. */
    public C idlePeek() {
        return idle.peek();
    }

    @Override
    public void close() {
        Object[] items;
        synchronized (all) {
            closed = true;
            items = all.toArray();
            all.clear();
        }
        idle.clear();
        for (Object c : items) {
            ((Conn) c).close();
        }
    }

    /** The link broke after the request went out: the call may or may not have run. */
    static Link.Failed linkLost(String endpoint, Throwable e) {
        return new Link.Failed(Link.Failed.LINK_LOST, "the connection to the sidecar at "
                               + endpoint + " was lost while this call was running there; its "
                               + "effects are unknown (" + causeText(e) + ")");
    }

    /** No reply by the call's deadline. */
    static Link.Failed noReply(String endpoint) {
        return new Link.Failed(Link.Failed.DEADLINE, "no reply from the sidecar at " + endpoint
                               + " before the deadline");
    }

    /** As much of ``from`` as ``to`` has room for, moved into ``to`` (a connection's read-ahead
     *  buffer handed out before the socket is read again). */
    static void moveInto(java.nio.ByteBuffer from, java.nio.ByteBuffer to) {
        int take = Math.min(from.remaining(), to.remaining());
        int limit = from.limit();
        from.limit(from.position() + take);
        to.put(from);
        from.limit(limit);
    }

    /** Closes each of ``closeables``, going on past a failure (a connection's close). */
    static void closeQuietly(java.io.Closeable... closeables) {
        for (java.io.Closeable c : closeables) {
            try {
                c.close();
            } catch (java.io.IOException e) {
                // closing anyway
            }
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
