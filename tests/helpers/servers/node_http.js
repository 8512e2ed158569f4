// node_http.js — Node's `http` server for the server matrix: GET /big answers
// the file named on the command line, anything else "hi\n"; keep-alive
// connections stay open for a minute (the pause test holds them).
'use strict';
const http = require('http');
const fs = require('fs');
const [port, bigPath] = process.argv.slice(2);
const big = fs.readFileSync(bigPath);
const server = http.createServer((req, res) => {
    if (req.url === '/big') {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': big.length });
        res.end(big);
    } else {
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 3 });
        res.end('hi\n');
    }
});
server.keepAliveTimeout = 60000;
server.headersTimeout = 61000;
server.requestTimeout = 0;
server.listen(Number(port), '127.0.0.1');
