/*
 * py3sidecar gateway helper: a ZMTP/3.0 DEALER that authenticates with the PLAIN mechanism.
 *
 * Owns: one TCP connection to the sidecar's ROUTER, the ZMTP/3.0 greeting, the PLAIN handshake
 * (HELLO, WELCOME, INITIATE, READY: RFC 23/ZMTP and RFC 24/ZMTP-PLAIN), and single-frame
 * messages both ways with deadlines. Must not touch: pooling and error kinds (the Jython
 * transport, py3sidecar/transport), the envelope (its bytes pass through untouched).
 *
 * Why: the JeroMQ in reach (Debian 0.3.6) speaks ZMTP/2.0 only, without any security mechanism,
 * and the sidecar's ZeroMQ front refuses a peer that skips authentication at the handshake. This
 * is the small part of ZMTP the library needs: one request, one reply, on one thread at a time
 * (the transport pools one dealer per call in flight). Not thread-safe.
 *
 * The channel is non-blocking throughout: every wait goes through a Selector with a deadline,
 * and isOpen() can tell, without blocking, a connection the sidecar closed while it sat idle in
 * the pool (the sidecar restarted) from a live one.
 */
package com.py3sidecar.gateway;

import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.CancelledKeyException;
import java.nio.channels.ClosedSelectorException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;

public final class ZmtpPlainDealer implements LinkPool.Conn {

    /** The sidecar refused our credentials (ZMTP ERROR during the handshake). */
    public static final class HandshakeRefused extends IOException {
        public HandshakeRefused(String message) {
            super(message);
        }
    }

    /** The peer spoke something other than ZMTP/3 PLAIN (a NULL/ZMTP-2 sidecar, not ZMTP). */
    public static final class ProtocolMismatch extends IOException {
        public ProtocolMismatch(String message) {
            super(message);
        }
    }

    private static final int FLAG_MORE = 1, FLAG_LONG = 2, FLAG_COMMAND = 4;
    private static final int MAX_COMMAND = 1 << 16;

    private final SocketChannel channel;
    private final Selector selector;
    private final long maxMessageBytes;
    private boolean broken;
    /** Bytes read from the channel and not consumed yet (position..limit): one read system
     *  call fetches a whole small reply (flags, size and body) instead of three. */
    private final ByteBuffer in = (ByteBuffer) ByteBuffer.allocate(16384).limit(0);

    /**
     * Connects to host:port and completes the PLAIN handshake within connectTimeoutMs.
     * maxMessageBytes bounds a reply (a larger one breaks the connection, never the heap).
     */
    public ZmtpPlainDealer(String host, int port, String username, String password,
                           int connectTimeoutMs, long maxMessageBytes) throws IOException {
        byte[] user = username.getBytes(StandardCharsets.UTF_8);
        byte[] pass = password.getBytes(StandardCharsets.UTF_8);
        if (user.length > 255 || pass.length > 255) {
            throw new IllegalArgumentException("PLAIN username and password are at most 255 bytes");
        }
        this.maxMessageBytes = maxMessageBytes;
        long deadline = System.currentTimeMillis() + Math.max(1, connectTimeoutMs);
        channel = SocketChannel.open();
        selector = Selector.open();
        boolean ok = false;
        try {
            channel.configureBlocking(false);
            channel.socket().setTcpNoDelay(true);
            if (!channel.connect(new InetSocketAddress(host, port))) {
                channel.register(selector, SelectionKey.OP_CONNECT);
                while (!channel.finishConnect()) {
                    waitFor(SelectionKey.OP_CONNECT, deadline, "connect");
                }
            }
            handshake(user, pass, deadline);
            ok = true;
        } finally {
            if (!ok) {
                close();
            }
        }
    }

    // ------------------------------------------------------------ handshake

    private void handshake(byte[] user, byte[] pass, long deadline) throws IOException {
        ByteBuffer greeting = ByteBuffer.allocate(64);
        greeting.put((byte) 0xFF).put(new byte[8]).put((byte) 0x7F);
        greeting.put((byte) 3).put((byte) 0);                       // ZMTP 3.0
        byte[] mechanism = new byte[20];
        System.arraycopy("PLAIN".getBytes(StandardCharsets.US_ASCII), 0, mechanism, 0, 5);
        greeting.put(mechanism).put((byte) 0).put(new byte[31]);    // as-server 0, filler
        greeting.flip();
        writeFully(greeting, deadline);

        // Signature and major version first: a ZMTP/2.0 peer sends only 12 bytes in all.
        ByteBuffer peer = ByteBuffer.allocate(64);
        peer.limit(11);
        readFully(peer, deadline, "greeting");
        byte[] g = peer.array();
        if ((g[0] & 0xFF) != 0xFF || (g[9] & 0x01) != 0x01) {
            throw new ProtocolMismatch("the peer sent no ZMTP greeting");
        }
        if (g[10] < 3) {
            throw new ProtocolMismatch("the peer speaks ZMTP/" + (g[10] + 1)
                    + ".0 without security (an older sidecar, or a JeroMQ/NULL socket)");
        }
        peer.limit(64);
        readFully(peer, deadline, "greeting");
        String theirs = new String(g, 12, 20, StandardCharsets.US_ASCII).trim();
        if (!"PLAIN".equals(theirs)) {
            throw new ProtocolMismatch("the sidecar's ZeroMQ front uses the " + theirs
                    + " mechanism, not PLAIN");
        }

        ByteBuffer hello = ByteBuffer.allocate(1 + 5 + 1 + user.length + 1 + pass.length);
        hello.put((byte) 5).put("HELLO".getBytes(StandardCharsets.US_ASCII));
        hello.put((byte) user.length).put(user).put((byte) pass.length).put(pass);
        sendFrame(hello.array(), true, deadline);
        expectCommand("WELCOME", deadline);

        byte[] type = "Socket-Type".getBytes(StandardCharsets.US_ASCII);
        byte[] dealer = "DEALER".getBytes(StandardCharsets.US_ASCII);
        ByteBuffer initiate = ByteBuffer.allocate(1 + 8 + 1 + type.length + 4 + dealer.length);
        initiate.put((byte) 8).put("INITIATE".getBytes(StandardCharsets.US_ASCII));
        initiate.put((byte) type.length).put(type).putInt(dealer.length).put(dealer);
        sendFrame(initiate.array(), true, deadline);
        expectCommand("READY", deadline);
    }

    private void expectCommand(String name, long deadline) throws IOException {
        byte[] body = readFrame(deadline, true);
        if (body == null) {
            throw new SocketTimeoutException("the sidecar did not finish the ZMTP handshake in time");
        }
        String got = commandName(body);
        // libzmq 4.3's PLAIN server writes its ERROR command's name as "\x5ERROR" (one byte
        // 0x5E, then "RROR"), so accept that spelling too: [^RROR][reason size][reason].
        int at = "ERROR".equals(got) ? 6 : startsWith(body, "^RROR") ? 5 : -1;
        if (at >= 0) {
            int len = body.length > at ? body[at] & 0xFF : 0;
            String reason = new String(body, at + 1, Math.max(0, Math.min(len, body.length - at - 1)),
                    StandardCharsets.US_ASCII);
            throw new HandshakeRefused("the sidecar refused the PLAIN credentials (status "
                    + reason + ")");
        }
        if (!name.equals(got)) {
            throw new ProtocolMismatch("expected the ZMTP command " + name + ", got " + got);
        }
    }

    private static boolean startsWith(byte[] body, String prefix) {
        byte[] p = prefix.getBytes(StandardCharsets.US_ASCII);
        if (body.length < p.length) {
            return false;
        }
        for (int i = 0; i < p.length; i++) {
            if (body[i] != p[i]) {
                return false;
            }
        }
        return true;
    }

    private static String commandName(byte[] body) {
        int len = body.length > 0 ? body[0] & 0xFF : 0;
        return new String(body, 1, Math.min(len, body.length - 1), StandardCharsets.US_ASCII);
    }

    // ------------------------------------------------------------ messages

    /** Sends one single-frame message. An IOException leaves the dealer broken. */
    public void send(byte[] payload, int timeoutMs) throws IOException {
        long deadline = System.currentTimeMillis() + Math.max(1, timeoutMs);
        sendFrame(payload, false, deadline);
    }

    /**
     * The next message (its last frame), or null when none came within timeoutMs (the dealer
     * is then broken: a late reply must not be read as the next call's). PING is answered.
     */
    public byte[] recv(int timeoutMs) throws IOException {
        long deadline = System.currentTimeMillis() + Math.max(1, timeoutMs);
        // a reply is never there the moment its request left: wait first (a read system call
        // that would find nothing is saved)
        if (!in.hasRemaining() && !select(SelectionKey.OP_READ, deadline)) {
            broken = true;
            return null;
        }
        while (true) {
            byte[] body = readFrame(deadline, false);
            if (body != null) {
                return body;
            }
            if (System.currentTimeMillis() >= deadline) {
                broken = true;
                return null;
            }
        }
    }

    /**
     * True while the connection can carry a request: not broken by us, and not closed by the
     * sidecar while idle (read without blocking: end of stream, or bytes nobody asked for).
     */
    public boolean isOpen() {
        if (broken || !channel.isOpen()) {
            return false;
        }
        if (in.hasRemaining()) {
            broken = true; // bytes nobody asked for (read with the last reply)
            return false;
        }
        try {
            ByteBuffer probe = ByteBuffer.allocate(1);
            if (channel.read(probe) != 0) {
                broken = true;
            }
        } catch (IOException e) {
            broken = true;
        }
        return !broken;
    }

    public void close() {
        broken = true;
        LinkPool.closeQuietly(selector, channel);
    }

    // ------------------------------------------------------------ frames

    private void sendFrame(byte[] body, boolean command, long deadline) throws IOException {
        boolean large = body.length > 255;
        ByteBuffer head = ByteBuffer.allocate(large ? 9 : 2);
        head.put((byte) ((command ? FLAG_COMMAND : 0) | (large ? FLAG_LONG : 0)));
        if (large) {
            head.putLong(body.length);
        } else {
            head.put((byte) body.length);
        }
        head.flip();
        try {
            ByteBuffer[] both = {head, ByteBuffer.wrap(body)};
            while (both[1].hasRemaining()) { // one system call for both, as a rule
                if (channel.write(both) == 0) {
                    waitFor(SelectionKey.OP_WRITE, deadline, "send");
                }
            }
        } catch (IOException e) {
            broken = true;
            throw e;
        }
    }

    /**
     * One message's last frame (commands: the next command when wantCommand), or null at the
     * deadline. Commands met while waiting for a message: PING is answered, ERROR ends it.
     */
    private byte[] readFrame(long deadline, boolean wantCommand) throws IOException {
        try {
            while (true) {
                ByteBuffer flagsBuf = ByteBuffer.allocate(1);
                if (!readFully(flagsBuf, deadline, null)) {
                    return null;
                }
                int flags = flagsBuf.get(0) & 0xFF;
                if ((flags & ~(FLAG_MORE | FLAG_LONG | FLAG_COMMAND)) != 0) {
                    throw new ProtocolMismatch("invalid ZMTP frame flags " + flags);
                }
                long size;
                ByteBuffer sizeBuf = ByteBuffer.allocate((flags & FLAG_LONG) != 0 ? 8 : 1);
                readFully(sizeBuf, deadline, "frame size");
                size = sizeBuf.capacity() == 8 ? sizeBuf.getLong(0) : sizeBuf.get(0) & 0xFF;
                boolean command = (flags & FLAG_COMMAND) != 0;
                long limit = command ? MAX_COMMAND : maxMessageBytes;
                if (size < 0 || size > limit) {
                    throw new IOException("a ZMTP frame of " + size + " bytes is over the limit of "
                            + limit);
                }
                ByteBuffer body = ByteBuffer.allocate((int) size);
                readFully(body, deadline, "frame");
                byte[] bytes = body.array();
                if (command) {
                    if (wantCommand) {
                        return bytes;
                    }
                    String name = commandName(bytes);
                    if ("PING".equals(name)) {
                        pong(bytes, deadline);
                    } else if ("ERROR".equals(name) || startsWith(bytes, "^RROR")) {
                        throw new IOException("the sidecar sent a ZMTP ERROR and closes the link");
                    }
                    continue;
                }
                if ((flags & FLAG_MORE) == 0) {
                    return bytes;
                }
                // a multi-frame message: its last frame is the payload (never sent by the sidecar)
            }
        } catch (IOException e) {
            broken = true;
            throw e;
        }
    }

    private void pong(byte[] ping, long deadline) throws IOException {
        int context = Math.max(0, ping.length - 7);        // [4]PING, TTL (2), context
        ByteBuffer pong = ByteBuffer.allocate(5 + context);
        pong.put((byte) 4).put("PONG".getBytes(StandardCharsets.US_ASCII));
        pong.put(ping, 7, context);
        sendFrame(pong.array(), true, deadline);
    }

    // ------------------------------------------------------------ bytes with deadlines

    private void writeFully(ByteBuffer buf, long deadline) throws IOException {
        while (buf.hasRemaining()) {
            if (channel.write(buf) == 0) {
                waitFor(SelectionKey.OP_WRITE, deadline, "send");
            }
        }
    }

    /**
     * Fills buf. Returns false at the deadline only when nothing was read yet and what is null
     * (waiting for a frame to start); a deadline in the middle of something raises.
     */
    private boolean readFully(ByteBuffer buf, long deadline, String what) throws IOException {
        while (buf.hasRemaining()) {
            if (in.hasRemaining()) { // what the last read call brought first
                LinkPool.moveInto(in, buf);
                continue;
            }
            int n;
            if (buf.remaining() >= in.capacity()) {
                n = channel.read(buf); // a large body: straight into its buffer
            } else {
                in.clear();
                n = channel.read(in);
                in.flip();
            }
            if (n < 0) {
                throw new EOFException("the sidecar closed the connection");
            }
            if (n == 0) {
                if (!select(SelectionKey.OP_READ, deadline)) {
                    if (what == null && buf.position() == 0) {
                        return false;
                    }
                    throw new SocketTimeoutException("timed out reading the " + (what == null
                            ? "frame" : what) + " from the sidecar");
                }
            }
        }
        return true;
    }

    private void waitFor(int op, long deadline, String what) throws IOException {
        if (!select(op, deadline)) {
            throw new SocketTimeoutException("timed out waiting to " + what);
        }
    }

    private boolean select(int op, long deadline) throws IOException {
        long left = deadline - System.currentTimeMillis();
        if (left <= 0) {
            return false;
        }
        try {
            SelectionKey key = channel.keyFor(selector);
            if (key == null) {
                key = channel.register(selector, op);
            } else {
                key.interestOps(op);
            }
            int ready = selector.select(left);
            selector.selectedKeys().clear();
            return ready > 0 || System.currentTimeMillis() < deadline;
        } catch (ClosedSelectorException | CancelledKeyException e) {
            // closed under the wait (the pool closed: a library reload), as a read's close is
            throw new AsynchronousCloseException();
        }
    }
}
