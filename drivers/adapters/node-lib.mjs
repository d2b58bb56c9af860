#!/usr/bin/env node
/*
 * node-lib.mjs — adapters for Node libraries that implement a web API, run through the
 * browsers' in-page runner (browser/runner.js) unchanged (docs/adapters.md):
 *
 *     node drivers/adapters/node-lib.mjs --lib ws      # the `ws` package as WebSocket
 *     node drivers/adapters/node-lib.mjs --lib fetch   # Node's own fetch (undici)
 *     node drivers/adapters/node-lib.mjs --lib xhr2    # the `xhr2` package as XMLHttpRequest
 *
 * `--mutant no-pong` (with --lib ws, used only by the tests) makes a client that never
 * answers pings, which the catalogue must catch.
 *
 * Each installs its library as the global the runner uses (WebSocket, fetch,
 * XMLHttpRequest), so the listeners, the rules of the client part and the observations are
 * the browsers' own, and a difference in verdict is the library's. One capability each.
 * Runs go on concurrently.
 */
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { serve, runDeadline, clientAction } from './protocol.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RUNNER_FILE = path.join(HERE, 'browser', 'runner.js');
const require = createRequire(path.join(HERE, '..', 'package.json'));
const lib = process.argv[process.argv.indexOf('--lib') + 1];

function pkgVersion(name) {
    return require(`${name}/package.json`).version;
}

const LIBS = {
    ws: () => {
        const WS = require('ws');
        // --mutant no-pong (tests only): a client that never answers pings
        globalThis.WebSocket = process.argv.includes('no-pong')
            ? class extends WS { constructor(url, protocols) { super(url, protocols, { autoPong: false }); } }
            : WS;
        const v = pkgVersion('ws');
        return { name: 'node-ws', capability: 'websocket', version: v, implementation: `ws ${v}` };
    },
    fetch: () => {
        const v = process.versions.undici;
        return { name: 'node-fetch', capability: 'fetch', version: v,
                 implementation: `Node ${process.version} built-in fetch (undici ${v})` };
    },
    xhr2: () => {
        globalThis.XMLHttpRequest = require('xhr2');
        const v = pkgVersion('xhr2');
        return { name: 'node-xhr2', capability: 'xhr', version: v, implementation: `xhr2 ${v}` };
    },
};
if (!LIBS[lib]) {
    console.error(`node-lib.mjs: --lib must be one of ${Object.keys(LIBS).join(', ')}`);
    process.exit(2);
}
const info = LIBS[lib]();
vm.runInThisContext(fs.readFileSync(RUNNER_FILE, 'utf8'), { filename: RUNNER_FILE });
const cometRun = globalThis.cometRun;
const running = new Set();

serve({
    async start() {
        return { name: info.name, version: info.version,
                 implementation: `${info.implementation} on Node ${process.version}`,
                 capabilities: [info.capability], details: { node: process.version } };
    },
    async run(msg) {
        const action = clientAction(msg);
        if (action !== info.capability) {
            return { type: 'unsupported', reason: `${info.name} has no "${action}" capability` };
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
        for (const ctrl of running) ctrl.abort();
    },
});
