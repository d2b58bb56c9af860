/*
 * protocol.mjs — the adapter side of the adapter protocol (docs/adapters.md), for the
 * adapters written for Node (puppeteer.mjs, node-lib.mjs).
 *
 *     import { serve } from './protocol.mjs';
 *     serve({
 *         async start() { return { name, version, implementation, capabilities }; },
 *         async run(msg) { return { type: 'result', observations } },   // or unsupported
 *         async stop() { ... release everything ... },
 *     });
 *
 * serve() reads newline-delimited JSON messages from stdin and writes the answers to
 * stdout, one JSON object a line. Runs are handled concurrently: each "run" is answered
 * when it finishes, in whatever order. Whatever a handler throws is answered as
 * {"type":"error"} for that id; the process never dies on a bad message or a bad run. On
 * "stop" it calls stop(), answers the runs still in flight with an error, writes
 * "stopped" and exits 0; on end of stdin it does the same without writing anything.
 *
 * stdout belongs to the protocol: console.log and friends are sent to stderr, so that a
 * library printing something cannot break the stream.
 */

export const PROTOCOL_VERSION = 1;

const STOP_GRACE_MS = 3000; // how long stop waits for runs still in flight

// Keep stdout for protocol messages only.
for (const name of ['log', 'info', 'debug']) {
    console[name] = (...args) => console.error(...args);
}

export function log(...args) {
    process.stderr.write(args.map(String).join(' ') + '\n');
}

function write(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function errorMessage(id, err) {
    const msg = { id, type: 'error', message: String((err && err.message) || err) };
    if (err && err.stack) msg.stack = String(err.stack);
    return msg;
}

export function serve(handlers) {
    const inflight = new Map(); // id → promise of the run's answer
    let stopping = false;

    process.on('uncaughtException', (err) => log('adapter: uncaught exception:', err && err.stack || err));
    process.on('unhandledRejection', (err) => log('adapter: unhandled rejection:', err && err.stack || err));
    // A driver that went away: writing to a closed pipe must not kill us noisily.
    process.stdout.on('error', (err) => {
        if (err.code === 'EPIPE') shutdown(null);
    });

    async function shutdown(id) {
        if (stopping) return;
        stopping = true;
        try {
            await handlers.stop();
        } catch (err) {
            log('adapter: stop failed:', err && err.stack || err);
        }
        // Runs still in flight: give them a moment to answer (their browser or connection
        // is gone, so they fail fast), then answer for them.
        const pending = [...inflight.keys()];
        if (pending.length) {
            await Promise.race([
                Promise.allSettled([...inflight.values()]),
                new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS)),
            ]);
            for (const runId of inflight.keys()) {
                write({ id: runId, type: 'error', message: 'the adapter was stopped before the run finished' });
            }
            inflight.clear();
        }
        if (id !== null) write({ id, type: 'stopped' });
        process.stdout.write('', () => process.exit(0));
    }

    async function handle(msg) {
        const id = msg.id === undefined ? null : msg.id;
        switch (msg.type) {
            case 'start': {
                try {
                    const info = await handlers.start();
                    write(Object.assign({ id, type: 'started', protocol: PROTOCOL_VERSION }, info));
                } catch (err) {
                    write(errorMessage(id, err));
                }
                return;
            }
            case 'run': {
                if (stopping) {
                    write({ id, type: 'error', message: 'the adapter is stopping' });
                    return;
                }
                const p = (async () => {
                    let answer;
                    try {
                        answer = await handlers.run(msg);
                    } catch (err) {
                        answer = errorMessage(id, err);
                    }
                    if (inflight.has(id)) {
                        inflight.delete(id);
                        write(Object.assign({ id }, answer));
                    }
                })();
                inflight.set(id, p);
                return;
            }
            case 'stop':
                await shutdown(id);
                return;
            default:
                write({ id, type: 'error', message: `unknown message type ${JSON.stringify(msg.type)}` });
        }
    }

    let buffer = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (data) => {
        buffer += data;
        let nl;
        while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, nl).trim();
            buffer = buffer.slice(nl + 1);
            if (!line) continue;
            let msg;
            try {
                msg = JSON.parse(line);
            } catch (err) {
                write({ id: null, type: 'error', message: `not a JSON line: ${err.message}` });
                continue;
            }
            if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
                write({ id: null, type: 'error', message: 'a message must be a JSON object' });
                continue;
            }
            handle(msg).catch((err) => write(errorMessage(msg.id === undefined ? null : msg.id, err)));
        }
    });
    process.stdin.on('end', () => shutdown(null));
}

/* The run's deadline: deadline_ms from the driver, else the action's own deadline, else 10 s. */
export function runDeadline(msg) {
    if (typeof msg.deadline_ms === 'number' && msg.deadline_ms > 0) return msg.deadline_ms;
    if (msg.client && Array.isArray(msg.client.steps)) {
        return typeof msg.client.deadline === 'number' && msg.client.deadline > 0 ? msg.client.deadline : 10000;
    }
    const action = msg.client && Object.values(msg.client)[0];
    const d = action && action.deadline;
    if (typeof d === 'number' && d > 0) return d;
    return 10000;
}

/* The single action key of a client part, checked; "steps" for a client script. */
export function clientAction(msg) {
    const client = msg.client;
    if (client === null || typeof client !== 'object' || Array.isArray(client)) {
        throw new Error('run.client must be an object');
    }
    if (Array.isArray(client.steps)) return 'steps';
    const keys = Object.keys(client);
    if (keys.length !== 1) throw new Error(`run.client must have exactly one action key, got ${JSON.stringify(keys)}`);
    return keys[0];
}

/*
 * Why a run aimed at another origin is unsupported outside a browser, or null: a request
 * to the "cross" or "alt" origin is a CORS check only where there is a page origin (Node
 * sends no Origin and checks nothing), so a Node client cannot run those scenarios.
 */
// The origins a page on main would call same-origin or whose point is not CORS: main in
// either scheme, and the https origins of the deliberately wrong certificates.
const NOT_CROSS = /^(main|main_tls|main_http|cert_[a-z_]+)$/;

// Origins that mean something only to a page: mixed content (the "insecure" origin).
export function pageOnlyLack(spec) {
    if (spec.origin === 'insecure') {
        return 'Node has no page: a request to the "insecure" origin is like any other (mixed content is a page\'s rule)';
    }
    return null;
}

export function originLack(spec) {
    if (spec.origin !== undefined && !NOT_CROSS.test(spec.origin)) {
        return `Node has no page origin: a request to the "${spec.origin}" origin is not cross-origin here (no CORS)`;
    }
    return null;
}

const STEP_ACTIONS = ['xhr', 'fetch', 'eventsource', 'websocket', 'jsonp', 'image', 'http'];

/*
 * The request steps of a client script as [action, spec] pairs (docs/scenarios.md, "Client
 * scripts"): an adapter that runs scripts checks each against its capabilities and what
 * it lacks, as it would a single action.
 */
export function scriptRequests(client) {
    const out = [];
    for (const step of client.steps || []) {
        const action = step && typeof step === 'object' ? Object.keys(step).find((k) => STEP_ACTIONS.includes(k)) : undefined;
        if (action) out.push([action, step[action]]);
    }
    return out;
}
