// JavaNio.java — a java.nio Selector server for the server matrix: one thread,
// non-blocking channels; a request starting "big" gets the file named on the
// command line, then the connection ends; any other input gets "hi\n".
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.*;
import java.nio.file.*;
import java.util.Iterator;

public class JavaNio {
    public static void main(String[] args) throws Exception {
        byte[] big = Files.readAllBytes(Paths.get(args[1]));
        Selector sel = Selector.open();
        ServerSocketChannel ls = ServerSocketChannel.open();
        ls.bind(new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])), 128);
        ls.configureBlocking(false);
        ls.register(sel, SelectionKey.OP_ACCEPT);
        ByteBuffer in = ByteBuffer.allocate(4096);
        for (;;) {
            sel.select();
            Iterator<SelectionKey> it = sel.selectedKeys().iterator();
            while (it.hasNext()) {
                SelectionKey k = it.next();
                it.remove();
                if (!k.isValid())
                    continue;
                if (k.isAcceptable()) {
                    SocketChannel c = ls.accept();
                    if (c == null)
                        continue;
                    c.configureBlocking(false);
                    c.register(sel, SelectionKey.OP_READ);
                } else if (k.isReadable()) {
                    SocketChannel c = (SocketChannel) k.channel();
                    in.clear();
                    int n;
                    try {
                        n = c.read(in);
                    } catch (java.io.IOException e) {
                        n = -1;
                    }
                    if (n < 0) {
                        k.cancel();
                        c.close();
                    } else if (n > 0 && in.get(0) == 'b') {
                        k.attach(ByteBuffer.wrap(big));
                        k.interestOps(SelectionKey.OP_WRITE);
                    } else if (n > 0) {
                        c.write(ByteBuffer.wrap("hi\n".getBytes()));
                    }
                } else if (k.isWritable()) {
                    SocketChannel c = (SocketChannel) k.channel();
                    ByteBuffer out = (ByteBuffer) k.attachment();
                    try {
                        c.write(out);
                    } catch (java.io.IOException e) {
                        out.position(out.limit());
                    }
                    if (!out.hasRemaining()) {
                        k.cancel();
                        c.close();
                    }
                }
            }
        }
    }
}
