#!/usr/bin/env node
/*
 * node-lib.mjs — the adapters for Node libraries that implement a web API
 * (docs/adapters.md). One library per process, chosen on the command line:
 *
 *     node drivers/adapters/node-lib.mjs --lib eventsource  # node-eventsource: the `eventsource` package
 *     node drivers/adapters/node-lib.mjs --lib ws      # node-ws:    the `ws` package as WebSocket
 *     node drivers/adapters/node-lib.mjs --lib fetch   # node-fetch: Node's built-in fetch (undici)
 *     node drivers/adapters/node-lib.mjs --lib xhr2    # node-xhr2:  the `xhr2` package as XMLHttpRequest
 *
 * Each library is installed as the global the browsers' in-page runner (browser/runner.js)
 * uses — EventSource, WebSocket, fetch, XMLHttpRequest — and the runner's cometRun() does
 * the run: the same listeners, the same rules of the client part, the same observations as
 * in a browser, so that a difference in verdict is the library's. One capability each
 * (fetch: two, see below). The eventsource package's error events carry a `code` (the HTTP
 * status, when there is one) and a `message`; the runner adds them to the "error" events.
 *
 * What a library lacks is answered `unsupported` before anything is sent (see LIBS[].lacks):
 * Node has no page origin, so a run aimed at another origin (`origin: cross | alt`, a CORS
 * check in a browser) is unsupported for every library, and one with credentials (cookies:
 * no cookie jar) for fetch and xhr2; xhr2 has no synchronous mode, no FormData bodies and no "blob" or
 * "document" responses.
 *
 * Runs go on concurrently in this one process; each run's request or socket is stopped
 * when its run ends (the runner's cleanup).
 *
 * `--mutant no-pong` (with --lib ws, used only by the tests) makes a client that never
 * answers pings, `--mutant open-on-failure` (ws) one that fires open when its handshake
 * failed, `--mutant no-timeout` (with --lib xhr2) an XMLHttpRequest that ignores
 * its timeout: the catalogue must catch both (drivers/tests/test_mutants.py).
 *
 * node-fetch also declares `http`: fetch() used as a plain HTTP library (runner.js
 * runHttp; the timeout is AbortSignal.timeout, a deadline on the whole call).
 */
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { serve, runDeadline, clientAction, originLack, scriptRequests } from './protocol.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RUNNER_FILE = path.join(HERE, 'browser', 'runner.js');
const require = createRequire(path.join(HERE, '..', 'package.json'));

function pkgVersion(name) {
    // The package's own package.json (not exported by every package: read the file).
    const main = require.resolve(name);
    let dir = path.dirname(main);
    while (!fs.existsSync(path.join(dir, 'package.json')) || path.basename(dir) === 'lib') {
        dir = path.dirname(dir);
    }
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
}

const LIBS = {
    eventsource: {
        name: 'node-eventsource',
        capability: 'eventsource',
        install() {
            globalThis.EventSource = require('eventsource').EventSource;
            const v = pkgVersion('eventsource');
            return { version: v, implementation: `eventsource ${v}` };
        },
        lacks: originLack,
    },
    ws: {
        name: 'node-ws',
        capability: 'websocket',
        install() {
            const WS = require('ws');
            // --mutant no-pong (tests only): a client that never answers pings
            globalThis.WebSocket = process.argv.includes('no-pong')
                ? class extends WS { constructor(url, protocols) { super(url, protocols, { autoPong: false }); } }
                : WS;
            // --mutant open-on-failure (tests only): a client that reports a failed
            // handshake as an open connection first (open, then error and close)
            if (process.argv.includes('open-on-failure')) {
                globalThis.WebSocket = class extends WS {
                    emit(name, ...args) {
                        if (name === 'open') this.openFired = true;
                        if (name === 'error' && !this.openFired) {
                            this.openFired = true;
                            super.emit('open');
                        }
                        return super.emit(name, ...args);
                    }
                };
            }
            const v = pkgVersion('ws');
            return { version: v, implementation: `ws ${v}` };
        },
        lacks(s) {
            if (s.binary_type !== undefined && !['arraybuffer', 'blob'].includes(s.binary_type)) {
                return `ws has no binaryType "${s.binary_type}"`;
            }
            return null;
        },
    },
    fetch: {
        name: 'node-fetch',
        capability: 'fetch',
        also: ['http'], // fetch() as the plain HTTP library Node programs use
        install() {
            if (typeof fetch !== 'function') throw new Error('this Node has no built-in fetch');
            const v = process.versions.undici;
            return { version: v, implementation: `built-in fetch (undici ${v})` };
        },
        lacks(s) {
            const o = originLack(s);
            if (o) return o;
            if (s.credentials !== undefined && s.credentials !== 'omit') {
                return 'Node\'s fetch keeps no cookies (credentials)';
            }
            if (s.mode !== undefined && s.mode !== 'cors') return `Node's fetch has no mode "${s.mode}" (no page origin)`;
            return null;
        },
    },
    xhr2: {
        name: 'node-xhr2',
        capability: 'xhr',
        install() {
            const XHR2 = require('xhr2');
            // --mutant no-timeout (tests only): an XMLHttpRequest that ignores its timeout
            // attribute (it keeps the value, but sends every request without a timer)
            globalThis.XMLHttpRequest = process.argv.includes('no-timeout')
                ? class extends XHR2 {
                    _sendHxxpRequest() {
                        const kept = this.timeout;
                        this.timeout = 0;
                        try { return super._sendHxxpRequest(); } finally { this.timeout = kept; }
                    }
                }
                : XHR2;
            const v = pkgVersion('xhr2');
            return { version: v, implementation: `xhr2 ${v}` };
        },
        lacks(s) {
            const o = originLack(s);
            if (o) return o;
            if (s.async === false) return 'xhr2 has no synchronous requests ("Synchronous XHR processing not implemented")';
            if (s.form !== undefined && s.form !== null) return 'xhr2 cannot send a FormData body';
            if (s.response_type === 'blob' || s.response_type === 'document') {
                return `xhr2 has no responseType "${s.response_type}"`;
            }
            if (s.with_credentials) return 'xhr2 keeps no cookies (withCredentials)';
            return null;
        },
    },
};

const at = process.argv.indexOf('--lib');
const lib = LIBS[at >= 0 ? process.argv[at + 1] : undefined];
if (!lib) {
    process.stderr.write(`usage: node-lib.mjs --lib ${Object.keys(LIBS).join('|')}\n`);
    process.exit(2);
}
const info = lib.install();
vm.runInThisContext(fs.readFileSync(RUNNER_FILE, 'utf8'), { filename: RUNNER_FILE });
const cometRun = globalThis.cometRun;
const running = new Set(); // the AbortControllers of the runs in flight

serve({
    async start() {
        return {
            name: lib.name,
            version: info.version,
            implementation: `${info.implementation} on Node ${process.version}`,
            capabilities: [lib.capability, ...(lib.also || []), 'steps'],
            details: { node: process.version, undici: process.versions.undici },
        };
    },
    async run(msg) {
        const action = clientAction(msg);
        // a client script (steps): each request step as a single action would be
        const requests = action === 'steps' ? scriptRequests(msg.client) : [[action, msg.client[action]]];
        for (const [a, spec] of requests) {
            if (a !== lib.capability && !(lib.also || []).includes(a)) {
                return { type: 'unsupported', reason: `${lib.name} has no "${a}" capability` };
            }
            if (spec === null || typeof spec !== 'object' || typeof spec.url !== 'string') {
                throw new Error(`client.${a}.url must be a string`);
            }
            const lack = lib.lacks(spec);
            if (lack) return { type: 'unsupported', reason: lack };
        }
        const ctrl = new AbortController();
        running.add(ctrl);
        try {
            const observations = await cometRun(msg.client, runDeadline(msg), ctrl.signal);
            if (ctrl.signal.aborted) throw new Error('the adapter was stopped before the run finished');
            return { type: 'result', observations };
        } finally {
            running.delete(ctrl);
        }
    },
    async stop() {
        // End the runs in flight (each stops its request or socket); they answer "error".
        for (const ctrl of running) ctrl.abort();
    },
});
