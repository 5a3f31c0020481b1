// A node `ws` client driving greenhub's WebSocket echo server (spec/websocket_spec.lua).
// Prints one line per check: "ok <name>" or "fail <name> <detail>", then "done".
const WebSocket = require('ws');
const url = process.argv[2];
const mode = process.argv[3] || 'echo';

function once(ws, ev) { return new Promise((res) => ws.once(ev, (...a) => res(a))); }
function say(s) { process.stdout.write(s + '\n'); }

async function echo() {
  const ws = new WebSocket(url, ['chat']);
  await once(ws, 'open');
  say((ws.protocol === 'chat' ? 'ok' : 'fail') + ' protocol ' + ws.protocol);
  for (const n of [0, 125, 126, 65535, 65536, 1 << 20]) {
    const text = 'x'.repeat(n);
    ws.send(text);
    let [data, isBinary] = await once(ws, 'message');
    say((!isBinary && data.toString() === text ? 'ok' : 'fail') + ' text ' + n);
    const bin = Buffer.alloc(n, 7);
    ws.send(bin);
    [data, isBinary] = await once(ws, 'message');
    say((isBinary && Buffer.compare(data, bin) === 0 ? 'ok' : 'fail') + ' binary ' + n);
  }
  // a fragmented message: three frames
  ws.send('frag-', { fin: false });
  ws.send('ment-', { fin: false });
  ws.send('ed', { fin: true });
  let [data] = await once(ws, 'message');
  say((data.toString() === 'frag-ment-ed' ? 'ok' : 'fail') + ' fragmented ' + data.toString());
  // a ping is answered with a pong carrying the same data
  ws.ping('are you there');
  const [pong] = await once(ws, 'pong');
  say((pong.toString() === 'are you there' ? 'ok' : 'fail') + ' pong');
  // the server closes with the code and reason we ask for
  ws.send('close-me 4001 going away');
  const [code, reason] = await once(ws, 'close');
  say((code === 4001 && reason.toString() === 'going away' ? 'ok' : 'fail') + ' server-close ' + code + ' ' + reason);
  // we close: the server sees our code and reason
  const ws2 = new WebSocket(url);
  await once(ws2, 'open');
  ws2.close(4002, 'client bye');
  const [c2] = await once(ws2, 'close');
  say((c2 === 4002 ? 'ok' : 'fail') + ' client-close ' + c2);
}

async function many() {
  const n = parseInt(process.argv[4] || '500', 10);
  const socks = [];
  for (let i = 0; i < n; i++) socks.push(new WebSocket(url));
  await Promise.all(socks.map((s) => once(s, 'open')));
  say('ok open ' + n);
  let good = 0;
  await Promise.all(socks.map(async (s, i) => {
    s.send('hello ' + i);
    const [d] = await once(s, 'message');
    if (d.toString() === 'hello ' + i) good++;
  }));
  say((good === n ? 'ok' : 'fail') + ' echoed ' + good);
  await Promise.all(socks.map((s) => { s.close(1000); return once(s, 'close'); }));
  say('ok closed ' + n);
}

(mode === 'many' ? many() : echo())
  .then(() => { say('done'); process.exit(0); })
  .catch((e) => { say('fail exception ' + e); process.exit(1); });
