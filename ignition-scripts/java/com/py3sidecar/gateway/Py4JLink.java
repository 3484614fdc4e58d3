/*
 * py3sidecar gateway helper: the Py4J transport's per-call work, in Java.
 *
 * Owns: for one build of the Jython Py4JTransport (one py4j ClientServer), each thread's socket
 * state (the socket it last used, when, the breakage epoch it saw, its SO_TIMEOUT), the link
 * check (a ping on a socket idle for staleAfterMs, or older than a breakage another thread saw:
 * only that socket is dropped when it fails, the request is never sent twice), opening a
 * thread's socket with a ping when the call's deadline is above the builder's backstop, the
 * per-call deadline (SO_TIMEOUT), and dropping a socket whose reply was not its request's.
 * Must not touch: building the ClientServer, TLS, classifying py4j's exceptions (all in
 * py3sidecar/transport: a raw exception comes back as Failed RAW), the envelope.
 *
 * py4j is reached by reflection (this jar compiles against Jython and msgpack-core only); the
 * proxy is the JDK's BiFunction the Jython transport already asks py4j for.
 */
package com.py3sidecar.gateway;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.Socket;
import java.net.SocketException;
import java.util.function.BiFunction;

import org.python.core.PyObject;

public final class Py4JLink implements Link {
    static final String CLOSED = "the python3 connection was closed (library reloaded?)";

    private static final class State {
        Object conn;
        long lastOkNs;
        int epoch;
        Socket sock;
        int soTimeout;
    }

    private final Object client;
    private final BiFunction<Object, Object, Object> proxy;
    private final byte[] warm;
    private final long staleNs;
    private final int connectTimeoutMs;
    private final int backstopMs;
    private final PyObject mismatch;
    public final int generation;
    private final Method perThread, setPerThread, getSocket, shutdown;
    private final ThreadLocal<State> local = ThreadLocal.withInitial(State::new);
    private volatile int epoch;
    private volatile boolean closed;

    @SuppressWarnings("unchecked")
    public Py4JLink(Object client, Object proxy, byte[] warm, int staleAfterMs,
                    int connectTimeoutMs, int backstopMs, int generation, PyObject mismatch)
            throws ReflectiveOperationException {
        this.client = client;
        this.proxy = (BiFunction<Object, Object, Object>) proxy;
        this.warm = warm;
        this.staleNs = staleAfterMs * 1000000L;
        this.connectTimeoutMs = connectTimeoutMs;
        this.backstopMs = backstopMs;
        this.generation = generation;
        this.mismatch = mismatch;
        perThread = client.getClass().getMethod("getPerThreadConnection");
        Class<?> connClass = perThread.getReturnType();
        setPerThread = client.getClass().getMethod("setPerThreadConnection", connClass);
        getSocket = connClass.getMethod("getSocket");
        shutdown = connClass.getMethod("shutdown", boolean.class);
    }

    @Override
    public PyObject mismatch() {
        return mismatch;
    }

    @Override
    public PyObject exchange(byte[] payload, int timeoutMs, Check check) {
        if (closed) {
            throw new Failed(Failed.NOT_CONNECTED, CLOSED);
        }
        timeoutMs = Math.max(1, timeoutMs);
        long started = System.nanoTime();
        State st = local.get();
        Object conn = connection();
        if (conn != null && socket(conn) != null && warm != null
                && (st.conn != conn || st.epoch != epoch || started - st.lastOkNs >= staleNs)) {
            if (!linkCheck(st, conn, Math.min(timeoutMs, connectTimeoutMs))) {
                conn = null; // dropped: the request goes out on a fresh socket below
            }
            timeoutMs = Math.max(1, timeoutMs - (int) ((System.nanoTime() - started) / 1000000L));
        }
        if ((conn == null || socket(conn) == null) && timeoutMs > backstopMs && warm != null) {
            // first call on this thread: open its socket with a ping, so the per-call deadline
            // below applies to the real request (the builder's read timeout is a backstop)
            apply(warm);
            conn = connection();
        }
        if (conn != null) {
            Socket sock = socket(conn);
            if (sock != null && (sock != st.sock || st.soTimeout != timeoutMs)) {
                try {
                    sock.setSoTimeout(timeoutMs);
                    st.sock = sock;
                    st.soTimeout = timeoutMs;
                } catch (SocketException e) {
                    st.sock = null;
                }
            }
        }
        Object raw = apply(payload);
        if (!(raw instanceof byte[])) {
            throw new Failed(Failed.DECODE, "malformed reply from the sidecar: not bytes but "
                             + (raw == null ? "null" : raw.getClass().getName()));
        }
        PyObject value;
        try {
            value = check.check((byte[]) raw);
        } catch (RuntimeException e) {
            if (PyCheck.isMismatch(e, mismatch)) {
                Object now = connection();
                if (now != null) {
                    drop(st, now); // out of step: never used again
                }
            }
            throw e;
        }
        st.conn = connection();
        st.lastOkNs = System.nanoTime();
        st.epoch = epoch;
        return value;
    }

    private Object apply(byte[] payload) {
        try {
            return proxy.apply("request", payload);
        } catch (RuntimeException e) {
            throw new Failed(e, generation);
        }
    }

    /** A ping on this thread's socket before a request: false when it failed (then dropped). */
    private boolean linkCheck(State st, Object conn, int timeoutMs) {
        st.sock = null; // its deadline is the ping's now: set again before the call
        try {
            socket(conn).setSoTimeout(Math.max(1, timeoutMs));
            proxy.apply("request", warm);
            return true;
        } catch (Exception e) {
            // the socket is dropped below; nothing but the ping was sent
        }
        drop(st, conn);
        return false;
    }

    /** Shuts this thread's socket; the other threads check theirs before their next call. */
    private void drop(State st, Object conn) {
        st.sock = null;
        synchronized (this) {
            epoch++;
        }
        try {
            shutdown.invoke(conn, true);
        } catch (ReflectiveOperationException | RuntimeException e) {
            // shutting anyway
        }
        if (connection() == conn) {
            try {
                setPerThread.invoke(client, (Object) null);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    private Object connection() {
        try {
            return perThread.invoke(client);
        } catch (InvocationTargetException e) {
            throw new Failed(e.getCause(), generation);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    private Socket socket(Object conn) {
        try {
            return (Socket) getSocket.invoke(conn);
        } catch (ReflectiveOperationException e) {
            return null;
        }
    }

    @Override
    public void close() {
        closed = true;
    }
}
