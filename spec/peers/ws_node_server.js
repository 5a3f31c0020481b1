// A node `ws` echo server for greenhub's WebSocket client (spec/websocket_spec.lua).
// Prints "port N" once listening. A text message "close <code> <reason>" makes it close.
const WebSocket = require('ws');
const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0, handleProtocols: (ps) => (ps.has('chat') ? 'chat' : false) });
wss.on('listening', () => process.stdout.write('port ' + wss.address().port + '\n'));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    const s = data.toString();
    if (!isBinary && s.startsWith('close ')) {
      const [, code, ...r] = s.split(' ');
      ws.close(parseInt(code, 10), r.join(' '));
    } else if (!isBinary && s === 'fragment please') {
      ws.send('one-', { fin: false }); ws.send('two-', { fin: false }); ws.send('three', { fin: true });
    } else if (!isBinary && s === 'ping me') {
      ws.ping('server ping');
      ws.once('pong', (d) => ws.send('pong seen: ' + d.toString()));
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('close', (code, reason) => process.stdout.write('closed ' + code + ' ' + reason + '\n'));
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
