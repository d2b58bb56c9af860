/*
 * runner.js — the in-page test runner shared by every browser adapter.
 *
 * A browser adapter (puppeteer.mjs for Chromium and Firefox, a WebDriver one for WebKit)
 * opens the harness page on the main origin, evaluates this file as a classic script and
 * then calls
 *
 *     await cometRun(client, deadlineMs)
 *
 * where `client` is the run message's client part ({"xhr": {...}}, {"fetch": {...}},
 * {"eventsource": {...}}, {"websocket": {...}}, {"jsonp": {...}} or {"image": {...}}, URLs
 * already absolute; outside a browser also {"http": {...}}, fetch() used as a plain HTTP
 * library) and deadlineMs is the run's deadline. It resolves with the run's
 * observations, in the shape docs/adapters.md describes (the same for every engine, so a
 * difference in verdict is the engine's, not the runner's). It never waits past the
 * deadline: when the deadline hits it resolves with what was observed so far plus
 * {"deadline": true}. It rejects only when the runner itself is at fault (a bad client
 * part, a bug here): the adapter answers that as an "error" message. An optional third
 * argument, an AbortSignal, lets the adapter end the run early (when it is stopping).
 *
 * Every event is recorded as {type, t, ...fields}, t being milliseconds since the action
 * started (performance.now(), fractional). Something the API under test throws
 * synchronously is recorded as {"exception": {name, message}} and ends the run. Uncaught
 * errors in the page during the run (a JSONP body that is not valid script, say) are
 * listed in "pageErrors".
 *
 * When the action has finished on its own (loadend, the fetch body read to its end, the
 * EventSource closed by close_after or failed, the WebSocket close event, the script or
 * image load/error), the runner waits SETTLE_MS more, so that a stray event fired after
 * the end is seen too and the state is the one the page sees once the last listener has
 * returned (after xhr.abort(), readyState is 0 again), then reads the final state. At the
 * deadline the state is read at once; events that the runner's own stopping causes (the
 * abort() of a request still in flight) are not recorded.
 *
 * Plain ES2020, no modules, no dependencies: it must run in any engine as it is. Outside a
 * browser it runs too, for the APIs that exist there: node-lib.mjs loads it into Node with
 * the eventsource package installed as the global EventSource, or ws, xhr2 or Node's own
 * fetch.
 */

/* eslint-disable no-unused-vars */
async function cometRun(client, deadlineMs, signal) {
    'use strict';
    const SETTLE_MS = 25;
    const ACTIONS = {
        xhr: runXhr,
        fetch: runFetch,
        eventsource: runEventSource,
        websocket: runWebSocket,
        jsonp: runJsonp,
        image: runImage,
        http: runHttp,
    };

    if (client === null || typeof client !== 'object') throw new TypeError('client must be an object');
    const keys = Object.keys(client);
    if (keys.length !== 1) throw new TypeError('client must have exactly one action key, got ' + JSON.stringify(keys));
    const action = keys[0];
    const spec = client[action] || {};
    if (!ACTIONS[action]) throw new TypeError('unknown client action "' + action + '"');
    if (typeof spec.url !== 'string') throw new TypeError('client.' + action + '.url must be a string');

    const events = [];
    const obs = {};
    const t0 = performance.now();
    const now = () => Math.round((performance.now() - t0) * 1000) / 1000;

    let resolveRun;
    const finished = new Promise((resolve) => { resolveRun = resolve; });
    let ended = false;       // the action has finished (or the deadline hit)
    let frozen = false;      // no more events are recorded (the deadline hit, or cleanup runs)
    let resolved = false;
    let snapshot = () => {}; // reads the final state into obs (set by each action)
    let cleanup = () => {};  // stops what is still running (set by each action)
    let runnerError = null;  // a bug in the runner: reject

    // The record handed to the actions.
    const r = {
        event(type, fields) {
            if (frozen) return;
            events.push(Object.assign({ type: type, t: now() }, fields || {}));
        },
        // The API under test threw: record it and end the run.
        exception(e) {
            obs.exception = { name: errName(e), message: errMessage(e) };
            r.complete();
        },
        // The action finished on its own: settle, then take the final state and resolve.
        complete() {
            if (ended) return;
            ended = true;
            setTimeout(finish, SETTLE_MS);
        },
        // A failure of the runner itself.
        fail(e) {
            if (!runnerError) runnerError = e;
            resolveOnce();
        },
        set snapshot(fn) { snapshot = fn; },
        set cleanup(fn) { cleanup = fn; },
    };

    // Read the final state, stop what is left, resolve.
    function finish() {
        if (resolved) return;
        takeState();
        resolveOnce();
    }

    function takeState() {
        try { snapshot(); } catch (e) { if (!runnerError) runnerError = e; }
        // Events fired by our own stopping (an abort() at the deadline) are not the
        // client's: they are not recorded.
        const wasFrozen = frozen;
        frozen = true;
        try { cleanup(); } catch (e) { /* stopping is best effort */ }
        frozen = wasFrozen;
    }

    function resolveOnce() {
        if (resolved) return;
        resolved = true;
        resolveRun();
    }

    // Uncaught errors in the page while the run goes on.
    const pageErrors = [];
    const onPageError = (e) => {
        pageErrors.push({ message: String(e.message || (e.error && e.error.message) || 'error'), t: now() });
    };
    const onRejection = (e) => {
        pageErrors.push({ message: 'unhandled rejection: ' + errMessage(e.reason), t: now() });
    };
    // The page (absent when the runner is reused outside a browser, as by node-lib.mjs).
    const page = typeof window !== 'undefined' && window.addEventListener ? window : null;
    if (page) {
        page.addEventListener('error', onPageError);
        page.addEventListener('unhandledrejection', onRejection);
    }

    const deadlineTimer = setTimeout(() => {
        if (resolved) return;
        if (!ended) {
            ended = true;
            obs.deadline = true;
        }
        frozen = true; // what our stopping causes is not the client's doing
        finish();
    }, Math.max(0, ms(deadlineMs) || 10000));

    // The adapter may cancel the run (it is stopping): end now, as at the deadline.
    if (signal) {
        const cancel = () => {
            if (resolved) return;
            ended = true;
            frozen = true;
            finish();
        };
        if (signal.aborted) setTimeout(cancel, 0);
        else signal.addEventListener('abort', cancel);
    }

    try {
        ACTIONS[action](spec, r);
    } catch (e) {
        r.fail(e);
    }
    await finished;
    clearTimeout(deadlineTimer);
    if (page) {
        page.removeEventListener('error', onPageError);
        page.removeEventListener('unhandledrejection', onRejection);
    }
    if (runnerError) throw runnerError;

    const out = { events: events.slice() };
    Object.assign(out, obs);
    if (pageErrors.length) out.pageErrors = pageErrors;
    return jsonSafe(out);

    /* ------------------------------------------------------------------ xhr */

    function runXhr(s, r) {
        const XHR_EVENTS = ['loadstart', 'progress', 'load', 'error', 'abort', 'timeout', 'loadend'];
        const xhr = new XMLHttpRequest();
        const isAsync = s.async !== false;
        const abortSpec = s.abort || null;
        let abortCalled = false;

        const maybeAbort = (type) => {
            if (!abortSpec || abortCalled || abortSpec.on !== type) return;
            const want = abortSpec.ready_state !== undefined ? abortSpec.ready_state : abortSpec.readyState;
            if (want !== undefined && xhr.readyState !== want) return;
            abortCalled = true;
            xhr.abort();
        };

        xhr.addEventListener('readystatechange', () => {
            const f = { readyState: xhr.readyState };
            if (xhr.readyState === 3) {
                const len = textLength(xhr);
                if (len !== undefined) f.responseTextLength = len;
            }
            r.event('readystatechange', f);
            maybeAbort('readystatechange');
        });
        for (const type of XHR_EVENTS) {
            xhr.addEventListener(type, (e) => {
                r.event(type, progressFields(e));
                maybeAbort(type);
                if (type === 'loadend') r.complete();
            });
        }

        r.snapshot = () => {
            obs.readyState = xhr.readyState;
            obs.status = xhr.status;
            obs.statusText = xhr.statusText;
            obs.responseURL = xhr.responseURL;
            const all = xhr.getAllResponseHeaders();
            obs.allHeaders = all;
            obs.headers = parseHeaderBlock(all);
            const rt = xhr.responseType;
            if (rt === '' || rt === 'text') {
                obs.responseText = xhr.responseText;
            }
            if (rt === '' || rt === 'document') {
                obs.responseXML = documentSummary(xhr.responseXML);
            }
            if (rt === 'json') {
                obs.response = xhr.response;
            } else if (rt === 'arraybuffer') {
                obs.response = xhr.response ? { byteLength: xhr.response.byteLength } : null;
            } else if (rt === 'blob') {
                obs.response = xhr.response ? { byteLength: xhr.response.size, type: xhr.response.type } : null;
            } else if (rt === 'document') {
                obs.response = documentSummary(xhr.response);
            }
        };
        r.cleanup = () => {
            // Stop a request still in flight (deadline); a finished one is left alone.
            if (xhr.readyState !== 0 && xhr.readyState !== 4) xhr.abort();
        };

        try {
            xhr.open(s.method || 'GET', s.url, isAsync);
            if (s.timeout !== undefined) xhr.timeout = ms(s.timeout);
            if (s.with_credentials !== undefined) xhr.withCredentials = !!s.with_credentials;
            if (s.response_type !== undefined) xhr.responseType = s.response_type;
            if (s.override_mime_type !== undefined) xhr.overrideMimeType(s.override_mime_type);
            for (const [name, value] of headerPairs(s.headers)) xhr.setRequestHeader(name, value);
        } catch (e) {
            r.exception(e);
            return;
        }
        if (s.upload_progress) {
            for (const type of XHR_EVENTS) {
                xhr.upload.addEventListener(type, (e) => {
                    r.event('upload.' + type, progressFields(e));
                    maybeAbort('upload.' + type);
                });
            }
        }
        const body = requestBody(s);
        try {
            if (body === undefined) xhr.send();
            else xhr.send(body);
        } catch (e) {
            r.exception(e);
            return;
        }
        if (abortSpec && abortSpec.after !== undefined) {
            setTimeout(() => {
                if (!abortCalled && !ended) {
                    abortCalled = true;
                    xhr.abort();
                }
            }, ms(abortSpec.after));
        }
        if (!isAsync) r.complete();
    }

    function progressFields(e) {
        return { loaded: e.loaded, total: e.total, lengthComputable: e.lengthComputable };
    }

    function textLength(xhr) {
        try {
            return xhr.responseText.length;
        } catch (e) {
            return undefined; // responseType is neither "" nor "text"
        }
    }

    function documentSummary(doc) {
        if (!doc) return null;
        const root = doc.documentElement;
        return { root: root ? root.localName : null };
    }

    /* ---------------------------------------------------------------- fetch */

    /*
     * http: fetch() as a plain HTTP library (Node's fetch; browsers do not declare it).
     * The observations are the http capability's: "chunk" events only when s.stream, and
     * `timeout` is what a fetch user writes, AbortSignal.timeout(ms) — a deadline on the
     * whole call, headers and body (the fetch fails with a TimeoutError).
     */
    function runHttp(s, r) {
        runFetch(s, r, { chunks: !!s.stream, timeout: s.timeout });
    }

    function runFetch(s, r, http) {
        const ctrl = new AbortController();
        const chunks = http ? http.chunks : true;
        let response = null;
        let text = '';
        const init = { method: s.method || 'GET', signal: ctrl.signal };
        const pairs = headerPairs(s.headers);
        if (pairs.length) init.headers = pairs;
        const body = requestBody(s);
        if (body !== undefined) init.body = body;
        for (const key of ['mode', 'credentials', 'redirect', 'cache', 'referrerPolicy']) {
            if (s[key] !== undefined) init[key] = s[key];
        }
        if (s.referrer_policy !== undefined) init.referrerPolicy = s.referrer_policy;

        r.snapshot = () => {
            if (!response) return;
            obs.status = response.status;
            obs.statusText = response.statusText;
            obs.headers = headersObject(response.headers);
            obs.responseURL = response.url;
            obs.responseText = text;
            if (http) return; // the http capability's final state stops here
            obs.type = response.type;
            obs.redirected = response.redirected;
        };
        r.cleanup = () => ctrl.abort();

        if (s.abort && s.abort.after !== undefined) {
            setTimeout(() => ctrl.abort(), ms(s.abort.after));
        }
        if (http && http.timeout !== undefined && http.timeout !== null) {
            const limit = AbortSignal.timeout(ms(http.timeout));
            limit.addEventListener('abort', () => ctrl.abort(limit.reason));
        }

        let promise;
        try {
            promise = fetch(s.url, init);
        } catch (e) {
            r.exception(e);
            return;
        }
        (async () => {
            try {
                response = await promise;
            } catch (e) {
                r.event('error', { name: errName(e), message: errMessage(e) });
                r.complete();
                return;
            }
            if (ended) return;
            r.event('response', { status: response.status });
            if (response.body) {
                const reader = response.body.getReader();
                const decoder = new TextDecoder();
                try {
                    for (;;) {
                        const { done, value } = await reader.read();
                        if (done) break;
                        if (ended) return;
                        const piece = decoder.decode(value, { stream: true });
                        text += piece;
                        if (chunks) r.event('chunk', { length: value.byteLength, text: piece });
                    }
                    text += decoder.decode();
                } catch (e) {
                    if (ended) return;
                    r.event('error', { name: errName(e), message: errMessage(e) });
                    r.complete();
                    return;
                }
            }
            if (ended) return;
            r.event('done');
            r.complete();
        })().catch((e) => r.fail(e));
    }

    /* ---------------------------------------------------------- eventsource */

    function runEventSource(s, r) {
        const closeAfter = s.close_after || {};
        let es;
        let messages = 0;
        let count = 0;

        r.snapshot = () => {
            if (!es) return;
            obs.readyState = es.readyState;
            obs.url = es.url;
            obs.withCredentials = es.withCredentials;
        };
        r.cleanup = () => { if (es) es.close(); };

        try {
            es = s.with_credentials !== undefined
                ? new EventSource(s.url, { withCredentials: !!s.with_credentials })
                : new EventSource(s.url);
        } catch (e) {
            r.exception(e);
            return;
        }

        const counted = (isMessage) => {
            count += 1;
            if (isMessage) messages += 1;
            if ((closeAfter.messages !== undefined && messages >= closeAfter.messages) ||
                (closeAfter.events !== undefined && count >= closeAfter.events)) {
                es.close();
                r.complete();
            }
        };
        const onMessage = (e) => {
            if (ended) {
                // Delivered after close(): a stray event, recorded but not counted.
                r.event('message', messageFields(e));
                return;
            }
            r.event('message', messageFields(e));
            counted(true);
        };
        es.addEventListener('open', () => {
            r.event('open', { readyState: es.readyState });
            if (!ended) counted(false);
        });
        es.addEventListener('error', (e) => {
            const f = { readyState: es.readyState };
            // Non-browser EventSources may tell why (the eventsource package: code, message).
            if (typeof e.code === 'number') f.code = e.code;
            if (typeof e.message === 'string' && e.message) f.message = e.message;
            r.event('error', f);
            if (ended) return;
            if (es.readyState === 2) r.complete(); // the EventSource gave up
            else counted(false);
        });
        es.addEventListener('message', onMessage);
        const seen = new Set(['message', 'open', 'error']);
        for (const type of s.event_types || []) {
            if (seen.has(type)) continue;
            seen.add(type);
            es.addEventListener(type, onMessage);
        }
        if (closeAfter.ms !== undefined) {
            setTimeout(() => {
                if (ended) return;
                es.close();
                r.complete();
            }, ms(closeAfter.ms));
        }
    }

    function messageFields(e) {
        return { event: e.type, data: e.data, lastEventId: e.lastEventId, origin: e.origin };
    }

    /* ------------------------------------------------------------ websocket */

    function runWebSocket(s, r) {
        let ws;
        let messages = 0;
        let messageWaiters = [];

        r.snapshot = () => {
            if (!ws) return;
            obs.readyState = ws.readyState;
            obs.protocol = ws.protocol;
            obs.extensions = ws.extensions;
            obs.binaryType = ws.binaryType;
            obs.url = ws.url;
        };
        r.cleanup = () => { if (ws && ws.readyState < 2) ws.close(); };

        try {
            ws = s.protocols !== undefined ? new WebSocket(s.url, s.protocols) : new WebSocket(s.url);
            ws.binaryType = s.binary_type || 'arraybuffer';
        } catch (e) {
            r.exception(e);
            return;
        }
        const wakeWaiters = () => {
            const still = [];
            for (const w of messageWaiters) {
                if (messages >= w.n || ws.readyState >= 2) w.resolve();
                else still.push(w);
            }
            messageWaiters = still;
        };
        const waitMessages = (n) => new Promise((resolve) => {
            messageWaiters.push({ n: n, resolve: resolve });
            wakeWaiters();
        });

        ws.addEventListener('open', () => {
            r.event('open', { protocol: ws.protocol, extensions: ws.extensions });
            runScript().catch((e) => r.fail(e));
        });
        ws.addEventListener('message', (e) => {
            if (typeof e.data === 'string') {
                r.event('message', { data: e.data, binary: false });
            } else if (e.data instanceof ArrayBuffer) {
                r.event('message', { data_base64: bytesToBase64(new Uint8Array(e.data)), binary: true });
            } else {
                // binaryType "blob": report the size only (reading it is asynchronous).
                r.event('message', { binary: true, size: e.data.size });
            }
            messages += 1;
            wakeWaiters();
        });
        ws.addEventListener('error', () => r.event('error'));
        ws.addEventListener('close', (e) => {
            r.event('close', { code: e.code, reason: e.reason, wasClean: e.wasClean });
            wakeWaiters();
            r.complete();
        });

        async function runScript() {
            const steps = (s.send || []).slice();
            if (s.close) steps.push({ close: s.close });
            for (const raw of steps) {
                if (ended || ws.readyState >= 2) return;
                const step = typeof raw === 'string' ? { text: raw } : raw;
                if (step.wait !== undefined) await sleep(ms(step.wait));
                if (step.wait_messages !== undefined) await waitMessages(Number(step.wait_messages));
                if (ended || ws.readyState >= 2) return;
                try {
                    if (step.text !== undefined) ws.send(String(step.text));
                    if (step.binary_base64 !== undefined) ws.send(base64ToBytes(step.binary_base64).buffer);
                    if (step.binary !== undefined) ws.send(new TextEncoder().encode(String(step.binary)).buffer);
                    if (step.close !== undefined && step.close !== false) {
                        const c = step.close === true ? {} : step.close;
                        if (c.code === undefined) ws.close();
                        else if (c.reason === undefined) ws.close(c.code);
                        else ws.close(c.code, c.reason);
                    }
                } catch (e) {
                    r.exception(e);
                    return;
                }
            }
        }
    }

    /* ---------------------------------------------------------------- jsonp */

    function runJsonp(s, r) {
        const path = String(s.callback || 'callback').split('.');
        let holder = window;
        for (const part of path.slice(0, -1)) {
            if (holder[part] === undefined || holder[part] === null) holder[part] = {};
            holder = holder[part];
        }
        const last = path[path.length - 1];
        holder[last] = function () {
            r.event('callback', { args: jsonSafe(Array.prototype.slice.call(arguments)) });
        };
        const script = document.createElement('script');
        if (s.cross_origin !== undefined) script.crossOrigin = s.cross_origin;
        if (s.charset !== undefined) script.charset = s.charset;
        script.addEventListener('load', () => { r.event('load'); r.complete(); });
        script.addEventListener('error', () => { r.event('error'); r.complete(); });
        script.src = s.url;
        document.head.appendChild(script);
    }

    /* ---------------------------------------------------------------- image */

    function runImage(s, r) {
        const img = new Image();
        if (s.cross_origin !== undefined) img.crossOrigin = s.cross_origin;
        img.addEventListener('load', () => {
            r.event('load', { naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight });
            r.complete();
        });
        img.addEventListener('error', () => { r.event('error'); r.complete(); });
        r.cleanup = () => { if (!img.complete) img.src = ''; };
        img.src = s.url;
    }

    /* -------------------------------------------------------------- helpers */

    // Headers as the scenario gives them: a mapping, or a list of one-entry mappings.
    function headerPairs(h) {
        const out = [];
        if (!h) return out;
        const list = Array.isArray(h) ? h : [h];
        for (const entry of list) {
            if (Array.isArray(entry)) { out.push([String(entry[0]), String(entry[1])]); continue; }
            for (const name of Object.keys(entry)) out.push([name, String(entry[name])]);
        }
        return out;
    }

    // The request body: text (body), FormData (form) or bytes (body_base64).
    function requestBody(s) {
        if (s.form !== undefined && s.form !== null) {
            const fd = new FormData();
            for (const name of Object.keys(s.form)) fd.append(name, String(s.form[name]));
            return fd;
        }
        if (s.body_base64 !== undefined) return base64ToBytes(s.body_base64);
        if (s.body !== undefined && s.body !== null) return String(s.body);
        return undefined;
    }

    // getAllResponseHeaders() text → {lower-case name: value}, duplicates joined ", ".
    function parseHeaderBlock(text) {
        const out = {};
        for (const line of String(text || '').split(/\r?\n/)) {
            const i = line.indexOf(':');
            if (i <= 0) continue;
            const name = line.slice(0, i).trim().toLowerCase();
            const value = line.slice(i + 1).trim();
            out[name] = name in out ? out[name] + ', ' + value : value;
        }
        return out;
    }

    function headersObject(headers) {
        const out = {};
        headers.forEach((value, name) => {
            const n = name.toLowerCase();
            out[n] = n in out ? out[n] + ', ' + value : value;
        });
        return out;
    }

    function base64ToBytes(b64) {
        const bin = atob(String(b64));
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        return bytes;
    }

    function bytesToBase64(bytes) {
        let bin = '';
        for (let i = 0; i < bytes.length; i += 0x8000) {
            bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
        }
        return btoa(bin);
    }

    function sleep(delay) {
        return new Promise((resolve) => setTimeout(resolve, delay));
    }

    // A duration in milliseconds: a number, or a string as the scenario format writes
    // them ("500", "500ms", "1.5s"). The driver sends numbers; strings are accepted too.
    function ms(v) {
        if (typeof v === 'number') return v;
        const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)?\s*$/.exec(String(v));
        if (!m) throw new TypeError('not a duration: ' + JSON.stringify(v));
        return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
    }

    function errName(e) {
        if (e && typeof e === 'object' && e.name) return String(e.name);
        return 'Error';
    }

    function errMessage(e) {
        if (e && typeof e === 'object' && 'message' in e) return String(e.message);
        return String(e);
    }

    // A JSON value for anything (undefined → null, cycles and functions → strings).
    function jsonSafe(v) {
        try {
            const text = JSON.stringify(v);
            return text === undefined ? null : JSON.parse(text);
        } catch (e) {
            return String(v);
        }
    }
}

if (typeof globalThis !== 'undefined') globalThis.cometRun = cometRun;
