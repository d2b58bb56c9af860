#!/usr/bin/env node
/*
 * node-eventsource.mjs — the adapter for the `eventsource` npm package (4.x) on Node
 * (docs/adapters.md). Capability: eventsource.
 *
 *     node drivers/adapters/node-eventsource.mjs
 *
 * The package implements the WHATWG EventSource interface on top of Node's fetch, so the
 * adapter reuses the browsers' in-page runner (browser/runner.js) as it is: the package's
 * EventSource class is installed as the global EventSource and the runner's cometRun()
 * does the run — the same listeners, the same close_after rules, the same observations as
 * in a browser. The package's error events carry a `code` (the HTTP status, when there is
 * one) and a `message`; the runner adds them to the "error" events.
 *
 * A run aimed at the cross or alt origin (the sse.cors.* scenarios) is answered
 * unsupported: Node has no page origin, so there is no CORS check to observe.
 *
 * Runs go on concurrently in this one process; each EventSource is closed when its run
 * ends.
 */
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { serve, runDeadline, clientAction, originLack } from './protocol.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RUNNER_FILE = path.join(HERE, 'browser', 'runner.js');
const PACKAGE_VERSION = JSON.parse(
    fs.readFileSync(path.join(HERE, '..', 'node_modules', 'eventsource', 'package.json'), 'utf8'),
).version;

globalThis.EventSource = EventSource;
vm.runInThisContext(fs.readFileSync(RUNNER_FILE, 'utf8'), { filename: RUNNER_FILE });
const cometRun = globalThis.cometRun;
const running = new Set(); // the AbortControllers of the runs in flight

serve({
    async start() {
        return {
            name: 'node-eventsource',
            version: PACKAGE_VERSION,
            implementation: `eventsource ${PACKAGE_VERSION} on Node ${process.version}`,
            capabilities: ['eventsource'],
            details: { node: process.version },
        };
    },
    async run(msg) {
        const action = clientAction(msg);
        if (action !== 'eventsource') {
            return { type: 'unsupported', reason: `node-eventsource has no "${action}" capability` };
        }
        const lack = originLack(msg.client.eventsource || {});
        if (lack) return { type: 'unsupported', reason: lack };
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
        // End the runs in flight (each closes its EventSource); they answer "error".
        for (const ctrl of running) ctrl.abort();
    },
});
