// A Node `ws` client for the WebSocket integration tests: connects, sends the given texts
// after open, records what it observes, prints it as one JSON line and exits.
//   node tests/ws_node_client.mjs URL '{"send": ["a"], "protocols": ["chat"], "ms": 3000}'
import { createRequire } from 'node:module';
const require = createRequire(new URL('../drivers/package.json', import.meta.url));
const WebSocket = require('ws');

const [url, optsText] = process.argv.slice(2);
const opts = JSON.parse(optsText || '{}');
const events = [];
const t0 = Date.now();
const ws = new WebSocket(url, opts.protocols || [], { handshakeTimeout: 3000 });
const done = (why) => {
  console.log(JSON.stringify({ events, end: why, version: require('ws/package.json').version }));
  process.exit(0);
};
ws.on('open', () => {
  events.push({ type: 'open', protocol: ws.protocol, extensions: ws.extensions, t: Date.now() - t0 });
  for (const text of opts.send || []) ws.send(text);
});
ws.on('message', (data, isBinary) => {
  events.push(isBinary ? { type: 'message', binary: true, data_base64: Buffer.from(data).toString('base64') }
    : { type: 'message', binary: false, data: data.toString('utf8') });
});
ws.on('ping', (data) => events.push({ type: 'ping', data: data.toString('utf8') }));
ws.on('error', (err) => events.push({ type: 'error', message: String(err.message) }));
ws.on('unexpected-response', (req, res) => {
  events.push({ type: 'error', message: `unexpected response ${res.statusCode}` });
  done('unexpected-response');
});
ws.on('close', (code, reason) => {
  events.push({ type: 'close', code, reason: reason.toString('utf8') });
  done('close');
});
setTimeout(() => done('timeout'), opts.ms || 4000);
