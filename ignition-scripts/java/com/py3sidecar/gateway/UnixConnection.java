/*
 * py3sidecar gateway helper: one connection to the sidecar's Unix-socket front (sidecar/
 * unix_front.py), for a gateway on the sidecar's host.
 *
 * Owns: opening an AF_UNIX stream channel (Java 16+, reached by reflection: the jar is built
 * for Java 11 and loads there, this class then says why it cannot connect), the frames (a
 * 4-byte big-endian length, then one msgpack envelope, each way) and every wait on them with
 * a deadline (a Selector: a blocking channel has no timeout). A send that failed before any
 * byte of it was written is Unsent (a connection the sidecar closed fails at once, EPIPE:
 * the request was not delivered). A deadline, a broken frame or a reply above the size limit
 * leaves the connection broken (never used again: a late reply never reaches the next call).
 * Must not touch: pooling and what a failure means for the call (UnixPool), the envelope.
 */
package com.py3sidecar.gateway;

import java.io.EOFException;
import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.ProtocolFamily;
import java.net.SocketAddress;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.CancelledKeyException;
import java.nio.channels.ClosedSelectorException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;

public final class UnixConnection implements LinkPool.Conn {
    private static final ProtocolFamily UNIX;
    private static final Method OPEN, ADDRESS_OF;
    private static final String MISSING;
    private static final int IN_SIZE = 65536;
    private static final int WINDOW = 1 << 18;

    static {
        ProtocolFamily unix = null;
        Method open = null, of = null;
        String missing = null;
        try {
            unix = Enum.valueOf(StandardProtocolFamily.class, "UNIX");
            open = SocketChannel.class.getMethod("open", ProtocolFamily.class);
            of = Class.forName("java.net.UnixDomainSocketAddress").getMethod("of", String.class);
        } catch (ReflectiveOperationException | IllegalArgumentException e) {
            missing = "this JVM (Java " + System.getProperty("java.version") + ") has no "
                    + "Unix-domain sockets: Java 16 or later is needed";
        }
        UNIX = unix;
        OPEN = open;
        ADDRESS_OF = of;
        MISSING = missing;
    }

    /** Thrown by send when not one byte of the request was written: it was not delivered. */
    public static final class Unsent extends IOException {
        Unsent(IOException cause) {
            super(cause.getMessage(), cause);
        }
    }

    private final SocketChannel channel;
    private final Selector selector;
    private final SelectionKey key;
    private final long maxMessageBytes;
    private final ByteBuffer head = ByteBuffer.allocate(4);
    private final ByteBuffer in = (ByteBuffer) ByteBuffer.allocate(IN_SIZE).limit(0);
    private volatile boolean broken;

    /** Why this JVM cannot open one (null: it can). */
    public static String unsupported() {
        return MISSING;
    }

    /**
     * Connects to the socket at path within connectTimeoutMs; a reply above maxMessageBytes
     * breaks the connection, never the heap.
     */
    public UnixConnection(String path, int connectTimeoutMs, long maxMessageBytes)
            throws IOException {
        if (MISSING != null) {
            throw new IOException(MISSING);
        }
        this.maxMessageBytes = maxMessageBytes;
        long deadline = System.nanoTime() + Math.max(1, connectTimeoutMs) * 1_000_000L;
        SocketAddress address;
        try {
            channel = (SocketChannel) OPEN.invoke(null, UNIX);
            address = (SocketAddress) ADDRESS_OF.invoke(null, path);
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            throw cause instanceof IOException ? (IOException) cause
                    : new IOException("cannot open a Unix socket for " + path + ": " + cause, cause);
        } catch (IllegalAccessException e) {
            throw new IOException("cannot open a Unix socket: " + e, e);
        }
        Selector sel = null;
        boolean ok = false;
        try {
            sel = Selector.open();
            channel.configureBlocking(false);
            if (!channel.connect(address)) {
                channel.register(sel, SelectionKey.OP_CONNECT);
                while (!channel.finishConnect()) {
                    if (!select(sel, channel.keyFor(sel), SelectionKey.OP_CONNECT, deadline)) {
                        throw new SocketTimeoutException("timed out connecting to " + path);
                    }
                }
            }
            SelectionKey k = channel.keyFor(sel);
            key = k != null ? k : channel.register(sel, SelectionKey.OP_READ);
            selector = sel;
            ok = true;
        } finally {
            if (!ok) {
                if (sel != null) {
                    sel.close();
                }
                channel.close();
            }
        }
    }

    /** True while it can carry a request (no system call: a closed peer fails the send). */
    @Override
    public boolean isOpen() {
        return !broken && channel.isOpen();
    }

    /** Sends one frame by deadline (System.nanoTime); Unsent when no byte of it was written. */
    public void send(byte[] payload, long deadline) throws IOException {
        head.clear();
        head.putInt(payload.length).flip();
        ByteBuffer body = ByteBuffer.wrap(payload);
        ByteBuffer[] both = {head, body};
        long written = 0;
        try {
            while (body.position() < payload.length) { // one writev for both, as a rule
                long n;
                // at most WINDOW bytes a call: the JDK copies a heap buffer into a temporary
                // direct one of that size and keeps it for the thread (a 32 MiB request would
                // leave 32 MiB of native memory behind on every gateway thread)
                body.limit(Math.min(payload.length, body.position() + WINDOW));
                try {
                    n = channel.write(both);
                } catch (IOException e) {
                    if (written == 0) {
                        throw new Unsent(e);
                    }
                    throw e;
                }
                written += n;
                if (n == 0 && !select(selector, key, SelectionKey.OP_WRITE, deadline)) {
                    throw new SocketTimeoutException("timed out sending the request");
                }
            }
        } catch (IOException e) {
            broken = true;
            throw e;
        }
    }

    /** The next frame, or null at the deadline (the connection is then broken). */
    public byte[] recv(long deadline) throws IOException {
        try {
            // a reply is never there the moment its request left: wait first (a read system
            // call that would find nothing is saved)
            if (!in.hasRemaining() && !waitReadable(deadline)) {
                broken = true;
                return null;
            }
            if (!fill(head, deadline, true)) {
                broken = true;
                return null;
            }
            long size = head.getInt(0) & 0xFFFFFFFFL;
            if (size > maxMessageBytes) {
                throw new IOException("the sidecar's reply of " + size + " bytes is over the "
                        + "limit of " + maxMessageBytes);
            }
            ByteBuffer body = ByteBuffer.allocate((int) size);
            if (!fill(body, deadline, false)) {
                throw new SocketTimeoutException("timed out reading the reply from the sidecar");
            }
            if (in.hasRemaining()) {
                broken = true; // bytes nobody asked for: out of step, never pooled again
            }
            return body.array();
        } catch (IOException e) {
            broken = true;
            throw e;
        }
    }

    /**
     * Fills buf from what the last read brought, then the channel. False at the deadline only
     * when idleOk and nothing of buf was read yet; in the middle of a frame it raises.
     */
    private boolean fill(ByteBuffer buf, long deadline, boolean idleOk) throws IOException {
        buf.clear();
        while (buf.hasRemaining()) {
            if (in.hasRemaining()) { // what the last read call brought first
                LinkPool.moveInto(in, buf);
                continue;
            }
            int n;
            if (buf.remaining() >= IN_SIZE) {
                // a large body: straight into its buffer, IN_SIZE at a time (the JDK's
                // temporary direct buffer for a heap one is that size, as in send)
                int limit = buf.limit();
                buf.limit(buf.position() + IN_SIZE);
                try {
                    n = channel.read(buf);
                } finally {
                    buf.limit(limit);
                }
            } else {
                in.clear();
                n = channel.read(in);
                in.flip();
            }
            if (n < 0) {
                throw new EOFException("the sidecar closed the connection");
            }
            if (n == 0 && !waitReadable(deadline)) {
                if (idleOk && buf.position() == 0) {
                    return false;
                }
                throw new SocketTimeoutException("timed out reading the reply from the sidecar");
            }
        }
        buf.flip();
        return true;
    }

    private boolean waitReadable(long deadline) throws IOException {
        return select(selector, key, SelectionKey.OP_READ, deadline);
    }

    /**
     * Waits until key is ready for op; false once the deadline (System.nanoTime) passed. Closed
     * under the wait (the pool closed: a library reload) is an IOException, as a read's is.
     */
    private static boolean select(Selector selector, SelectionKey key, int op, long deadline)
            throws IOException {
        try {
            while (true) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                if (key.interestOps() != op) {
                    key.interestOps(op);
                }
                int ready = selector.select(Math.max(1, (left + 999_999) / 1_000_000));
                selector.selectedKeys().clear();
                if (ready > 0) {
                    return true;
                }
            }
        } catch (ClosedSelectorException | CancelledKeyException e) {
            throw new AsynchronousCloseException();
        }
    }

    @Override
    public void close() {
        broken = true;
        LinkPool.closeQuietly(selector, channel);
    }
}
