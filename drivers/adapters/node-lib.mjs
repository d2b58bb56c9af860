#!/usr/bin/env node
/*
 * node-lib.mjs — the adapter for Node libraries that implement a web API (docs/adapters.md).
 * One library per process, declared in drivers/clients.yaml (its `library`) and passed as
 * JSON by the driver (comet_harness/clients.py, library_argument):
 *
 *     node drivers/adapters/node-lib.mjs --library '{"name": "node-ws",
 *         "capabilities": ["websocket"], "npm": "ws", "root": "drivers",
 *         "global": "WebSocket", "export": "module", "lacks": []}'
 *
 *   name, capabilities  what `started` answers (the client's name, without any @VERSION)
 *   npm, root           the package, resolved from root/node_modules (drivers/ for the
 *                       pinned versions of drivers/package.json; a cache folder for
 *                       NAME@VERSION); its version is read from its package.json there
 *   builtin             instead of npm: the global is Node's own; its version is
 *                       process.versions[builtin] (node-fetch: undici)
 *   global              the web API global it provides: EventSource, WebSocket, fetch,
 *                       XMLHttpRequest
 *   export              the export shape: "module" (module.exports is the class),
 *                       "default" (its default export) or the name of the export
 *   lacks               [{key, in | not_in, reason}]: a run whose client part gives key
 *                       (with a value in / not in the list, when given) is answered
 *                       `unsupported` with reason ("{value}" is replaced by the value)
 *
 * The library is installed as that global, and the browsers' in-page runner
 * (browser/runner.js) does the run with cometRun(): the same listeners, the same rules of
 * the client part, the same observations as in a browser, so that a difference in verdict
 * is the library's. An EventSource whose error events carry `code` and `message` (the
 * eventsource package) has them in the "error" events (the runner's, for any client).
 *
 * Node has no page origin, so a run aimed at another origin (`origin: cross | alt`, a CORS
 * check in a browser) is unsupported for every library with a capability that has CORS
 * (all but websocket).
 *
 * Runs go on concurrently in this one process; each run's request or socket is stopped
 * when its run ends (the runner's cleanup).
 *
 * `--mutant no-pong` (a `ws` WebSocket; used only by the tests) makes a client that never
 * answers pings, `--mutant open-on-failure` (a `ws` WebSocket) one that fires open when its
 * handshake failed, `--mutant no-timeout` (an `xhr2` XMLHttpRequest) one that ignores its
 * timeout: the catalogue must catch them (drivers/tests/test_mutants.py).
 *
 * A client declaring `steps` runs client scripts (docs/scenarios.md, "Client scripts"):
 * each request step is checked as a single action would be (its capability, the lacks).
 */
import './tls-trust.mjs'; // first: the harness's CA and *.localhost (may re-run this command)
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { serve, runDeadline, clientAction, originLack, pageOnlyLack, scriptRequests } from './protocol.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const RUNNER_FILE = path.join(HERE, 'browser', 'runner.js');
const WITHOUT_CORS = new Set(['websocket']); // capabilities with no CORS check in a browser

// The deliberately broken clients of the tests: the class installed → the mutant's.
const MUTANTS = {
    'no-pong': (WS) => class extends WS {
        constructor(url, protocols) { super(url, protocols, { autoPong: false }); }
    },
    // reports a failed handshake as an open connection first (open, then error and close)
    'open-on-failure': (WS) => class extends WS {
        emit(name, ...args) {
            if (name === 'open') this.openFired = true;
            if (name === 'error' && !this.openFired) {
                this.openFired = true;
                super.emit('open');
            }
            return super.emit(name, ...args);
        }
    },
    // keeps the timeout attribute but sends every request without a timer (xhr2 internals)
    'no-timeout': (XHR) => class extends XHR {
        _sendHxxpRequest() {
            const kept = this.timeout;
            this.timeout = 0;
            try { return super._sendHxxpRequest(); } finally { this.timeout = kept; }
        }
    },
};

function usage(why) {
    process.stderr.write(`node-lib.mjs: ${why}\nusage: node-lib.mjs --library JSON [--mutant ${Object.keys(MUTANTS).join('|')}]\n`
        + '(the JSON is a client\'s `library` of drivers/clients.yaml with its name and capabilities:'
        + ' see the top of this file)\n');
    process.exit(2);
}

function option(name) {
    const at = process.argv.indexOf(name);
    return at >= 0 ? process.argv[at + 1] : undefined;
}

let decl;
try {
    decl = JSON.parse(option('--library'));
} catch (err) {
    usage(option('--library') === undefined ? 'no --library' : `--library is not JSON: ${err.message}`);
}
for (const key of ['name', 'global']) {
    if (typeof decl[key] !== 'string' || !decl[key]) usage(`--library needs a string "${key}"`);
}
if (!Array.isArray(decl.capabilities) || !decl.capabilities.length) usage('--library needs "capabilities"');
if (!decl.npm === !decl.builtin) usage('--library needs one of "npm" and "builtin"');
const mutant = option('--mutant');
if (mutant !== undefined && !MUTANTS[mutant]) usage(`no mutant "${mutant}"`);

/* Installs the library as its global; returns {version, implementation, details}. */
function install() {
    if (decl.builtin) {
        if (globalThis[decl.global] === undefined) throw new Error(`this Node has no built-in ${decl.global}`);
        const v = process.versions[decl.builtin];
        if (!v) throw new Error(`this Node has no ${decl.builtin} (process.versions)`);
        if (mutant) globalThis[decl.global] = MUTANTS[mutant](globalThis[decl.global]);
        return { version: v, implementation: `built-in ${decl.global} (${decl.builtin} ${v})`, details: {} };
    }
    const root = path.resolve(ROOT, decl.root || 'drivers');
    const require = createRequire(path.join(root, 'node-lib.js'));
    const dir = path.join(root, 'node_modules', decl.npm);
    // The package's own package.json (not exported by every package: read the file).
    const version = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
    const mod = require(decl.npm);
    const shape = decl.export || 'module';
    const value = shape === 'module' ? mod : mod && mod[shape];
    if (typeof value !== 'function') {
        const keys = mod && typeof mod === 'object' ? Object.keys(mod).slice(0, 12).join(', ') : typeof mod;
        throw new Error(`${decl.npm} ${version}: its export "${shape}" is not a class (the module has: ${keys}); `
            + 'declare its export shape in drivers/clients.yaml (library.export, library.versions)');
    }
    globalThis[decl.global] = mutant ? MUTANTS[mutant](value) : value;
    const what = shape === 'module' || shape === 'default' ? '' : ` (its ${shape})`;
    return { version, implementation: `${decl.npm} ${version}${what}`, details: { module: dir } };
}

/* Why a run's client part is unsupported, or null (the declared lacks, then the origin). */
function lacks(action, spec) {
    const page = pageOnlyLack(spec); // mixed content: a page's rule
    if (page) return page;
    if (!WITHOUT_CORS.has(action)) {
        const o = originLack(spec);
        if (o) return o;
    }
    for (const rule of decl.lacks || []) {
        const value = spec[rule.key];
        if (value === undefined || value === null) continue;
        if (rule.in && !rule.in.includes(value)) continue;
        if (rule.not_in && rule.not_in.includes(value)) continue;
        return rule.reason.replaceAll('{value}', String(value));
    }
    return null;
}

let info = null; // the install's answer, or its failure (answered at start and at each run)
let failure = null;
try {
    info = install();
} catch (err) {
    failure = err;
}
vm.runInThisContext(fs.readFileSync(RUNNER_FILE, 'utf8'), { filename: RUNNER_FILE });
const cometRun = globalThis.cometRun;
const running = new Set(); // the AbortControllers of the runs in flight

serve({
    async start() {
        if (failure) throw failure;
        return {
            name: decl.name,
            version: info.version,
            implementation: `${info.implementation} on Node ${process.version}`,
            capabilities: decl.capabilities,
            details: Object.assign({ node: process.version, undici: process.versions.undici }, info.details),
        };
    },
    async run(msg) {
        if (failure) throw failure;
        const action = clientAction(msg);
        if (!decl.capabilities.includes(action)) {
            return { type: 'unsupported', reason: `${decl.name} has no "${action}" capability` };
        }
        // a client script (steps): each request step as a single action would be
        const requests = action === 'steps' ? scriptRequests(msg.client) : [[action, msg.client[action]]];
        for (const [a, spec] of requests) {
            if (!decl.capabilities.includes(a)) {
                return { type: 'unsupported', reason: `${decl.name} has no "${a}" capability` };
            }
            if (spec === null || typeof spec !== 'object' || typeof spec.url !== 'string') {
                throw new Error(`client.${a}.url must be a string`);
            }
            const lack = lacks(a, spec);
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
