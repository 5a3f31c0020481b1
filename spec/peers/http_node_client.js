// Node's own http client (keep-alive agents) against a greenhub.http server
// (spec/http_node_spec.lua). Prints "ok <what>" or "FAIL <what> <detail>"
// lines, then "done".
const http = require('http');
const port = +process.argv[2];
const one = new http.Agent({ keepAlive: true, maxSockets: 1 });
function req(agent, opts, body) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, agent, ...opts }, res => {
      const d = [];
      res.on('data', c => d.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, trailers: res.trailers,
                                    body: Buffer.concat(d).toString(), socket: res.socket }));
    });
    r.on('error', reject);
    for (const b of body || []) r.write(b);
    r.end();
  });
}
function check(what, cond, detail) { console.log((cond ? 'ok ' : 'FAIL ') + what + (cond ? '' : ' ' + detail)); }
(async () => {
  const sockets = new Set();
  let same = true;
  for (let i = 0; i < 50; i++) {
    const r = await req(one, { path: '/p' + i });
    sockets.add(r.socket);
    if (r.status !== 200 || r.body !== 'ok /p' + i) same = false;
  }
  check('50 keep-alive GETs on one socket', same && sockets.size === 1, `sockets ${sockets.size}`);
  let r = await req(one, { path: '/echo', method: 'POST', headers: { 'Transfer-Encoding': 'chunked' } }, ['abc', 'defg', 'h'.repeat(70000)]);
  check('chunked upload', r.status === 200 && r.body === 'POST 70007 chunked', r.body);
  r = await req(one, { path: '/echo', method: 'PUT', headers: { 'Content-Length': 5 } }, ['12345']);
  check('upload with Content-Length', r.status === 200 && r.body === 'PUT 5 -', r.body);
  r = await req(one, { path: '/echo', method: 'POST', headers: { 'Content-Length': 3, 'Expect': '100-continue' } }, ['xyz']);
  check('Expect: 100-continue', r.status === 200 && r.body === 'POST 3 -', `${r.status} ${r.body}`);
  r = await req(one, { path: '/stream' });
  check('streamed chunked response with trailers', r.status === 200 && r.body.length === 5003 &&
        r.headers['transfer-encoding'] === 'chunked' && r.trailers['x-sum'] === '5', JSON.stringify(r.trailers));
  r = await req(one, { path: '/x', method: 'HEAD' });
  check('HEAD: no body, the GET\'s length', r.status === 200 && r.body === '' && r.headers['content-length'] === '5', JSON.stringify(r.headers));
  r = await req(one, { path: '/after-head' });
  check('the connection after HEAD', r.body === 'ok /after-head', r.body);
  r = await req(one, { path: '/fail' });
  check('handler error: 500, empty', r.status === 500 && r.body === '', `${r.status} ${r.body}`);
  const many = new http.Agent({ keepAlive: true, maxSockets: 20 });
  const ps = [];
  for (let i = 0; i < 300; i++) ps.push(req(many, { path: '/c' + i }));
  const all = await Promise.all(ps);
  check('300 requests over 20 keep-alive sockets', all.every((x, i) => x.body === 'ok /c' + i), '');
  console.log('done');
  process.exit(0);
})().catch(e => { console.log('FAIL exception ' + e); console.log('done'); process.exit(1); });
