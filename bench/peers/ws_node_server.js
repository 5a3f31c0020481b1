// WebSocket echo server for make bench: node's ws (NODE_PATH=/usr/share/nodejs).
const WebSocket = require('ws');
const wss = new WebSocket.Server({ host: '127.0.0.1', port: parseInt(process.argv[2], 10), perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary })));
