// node_net.js — Node's `net` server for the server matrix: a line "big" gets the
// file named on the command line and the connection ends; any other input "hi\n".
'use strict';
const net = require('net');
const fs = require('fs');
const [port, bigPath] = process.argv.slice(2);
const big = fs.readFileSync(bigPath);
net.createServer((sock) => {
    sock.on('data', (chunk) => {
        if (chunk.toString('latin1').startsWith('big'))
            sock.end(big);
        else
            sock.write('hi\n');
    });
    sock.on('error', () => {});
}).listen(Number(port), '127.0.0.1');
