// JavaHttp.java — com.sun.net.httpserver for the server matrix: GET /big answers
// the file named on the command line, anything else "hi\n" (keep-alive; run with
// -Dsun.net.httpserver.idleInterval=60 so held clients stay open).
import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.file.*;

public class JavaHttp {
    public static void main(String[] args) throws Exception {
        byte[] big = Files.readAllBytes(Paths.get(args[1]));
        byte[] hi = "hi\n".getBytes();
        HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])), 128);
        s.createContext("/", ex -> {
            byte[] body = ex.getRequestURI().getPath().equals("/big") ? big : hi;
            ex.getRequestBody().readAllBytes();
            ex.sendResponseHeaders(200, body.length);
            try (OutputStream o = ex.getResponseBody()) {
                o.write(body);
            }
        });
        s.start();
    }
}
