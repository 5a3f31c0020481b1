// Node's own http server for greenhub.http's client (spec/http_node_spec.lua):
// chunked answers with trailers, an echo of what came, a redirect, 1 MiB, and
// a short keep-alive timeout (it closes idle connections after 200 ms).
const http = require('http');
const srv = http.createServer((req, res) => {
  const body = [];
  req.on('data', c => body.push(c));
  req.on('end', () => {
    const b = Buffer.concat(body);
    if (req.url === '/chunked') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Trailer': 'X-Sum' });
      res.write('hello ');
      res.write('world');
      res.addTrailers({ 'X-Sum': '42' });
      res.end();
    } else if (req.url === '/echo') {
      res.end(`${req.method} ${b.length} ${req.headers['transfer-encoding'] || '-'} ${b.toString().slice(0, 20)}`);
    } else if (req.url === '/redirect') {
      res.writeHead(302, { Location: '/echo' }); res.end('moved');
    } else if (req.url === '/big') {
      res.end('x'.repeat(1 << 20));
    } else {
      res.end('ok ' + req.url);
    }
  });
});
srv.keepAliveTimeout = 200;
srv.listen(0, '127.0.0.1', () => console.log('ready ' + srv.address().port));
