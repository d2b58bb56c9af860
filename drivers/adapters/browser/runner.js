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
    const script = Array.isArray(client.steps) ? client.steps : null;
    let action = null;
    if (script) {
        checkScript(script);
    } else {
        const keys = Object.keys(client);
        if (keys.length !== 1) throw new TypeError('client must have exactly one action key, got ' + JSON.stringify(keys));
        action = keys[0];
        if (!ACTIONS[action]) throw new TypeError('unknown client action "' + action + '"');
        if (typeof (client[action] || {}).url !== 'string') throw new TypeError('client.' + action + '.url must be a string');
    }

    const events = [];
    const obs = {};
    const unobserved = new Set();
    const t0 = performance.now();
    const now = () => Math.round((performance.now() - t0) * 1000) / 1000;
    const epochT0 = Date.now() - (performance.now() - t0);

    let resolveRun;
    const finished = new Promise((resolve) => { resolveRun = resolve; });
    let ended = false;       // the run has finished (or the deadline hit)
    let frozen = false;      // no more events are recorded (the deadline hit, or cleanup runs)
    let resolved = false;
    let runnerError = null;  // a bug in the runner: reject
    const records = [];      // one per request step (one in all for a single action)
    const byId = {};         // step id → record
    const handlers = {};     // step id → the do steps bound to its events (on)
    let scriptDone = !script;

    /*
     * The record of one request (the single action, or one request step of a script): its
     * events (tagged with the step's id in a script), its final state (obs), its object
     * (for do steps and on), and its end. In a single action, an exception or the end of
     * the request ends the run; in a script, the run ends when the script is over and every
     * request has ended.
     */
    function newRecord(id, stepObs) {
        const rec = {
            id: id,
            obs: stepObs,
            done: false,
            object: null,            // the XMLHttpRequest, EventSource, WebSocket, element
            abort: null,             // fetch: abort() through its AbortController
            snapshotFn: () => {},
            cleanupFn: () => {},
            waiters: [],
            seen: {},                // event type → how many so far (on.nth)
            event(type, fields, domEvent) {
                if (frozen) return;
                const e = { type: type, t: now() };
                if (id !== null) e.step = id;
                if (domEvent) Object.assign(e, domFields(domEvent));
                Object.assign(e, fields || {});
                events.push(e);
                dispatch(rec, e);
            },
            // The API under test threw: record it and end this request.
            exception(err) {
                stepObs.exception = { name: errName(err), message: errMessage(err) };
                if (id !== null) rec.event('exception', { name: errName(err), message: errMessage(err) });
                rec.complete();
            },
            // The request finished on its own.
            complete() {
                if (rec.done) return;
                rec.done = true;
                checkEnd();
            },
            fail(e) {
                if (!runnerError) runnerError = e;
                resolveOnce();
            },
            set snapshot(fn) { rec.snapshotFn = fn; },
            set cleanup(fn) { rec.cleanupFn = fn; },
            get ended() { return ended || rec.done; },
        };
        records.push(rec);
        if (id !== null) byId[id] = rec;
        return rec;
    }

    // The interface, bubbles and cancelable of a DOM event (what the engine reports).
    function domFields(e) {
        const out = {};
        const ctor = e && e.constructor && e.constructor.name;
        const tag = Object.prototype.toString.call(e).slice(8, -1);
        out.interface = ctor && ctor !== 'Object' ? ctor : tag;
        for (const f of ['bubbles', 'cancelable']) {
            if (typeof e[f] === 'boolean') out[f] = e[f];
            else unobserved.add(f);
        }
        return out;
    }

    // The run is over when every request has ended and the script (if any) has run.
    function checkEnd() {
        if (ended || !scriptDone) return;
        if (records.some((x) => !x.done)) return;
        ended = true;
        setTimeout(finish, SETTLE_MS);
    }

    // Read the final state, stop what is left, resolve.
    function finish() {
        if (resolved) return;
        takeState();
        resolveOnce();
    }

    function takeState() {
        for (const rec of records) {
            try { rec.snapshotFn(); } catch (e) { if (!runnerError) runnerError = e; }
        }
        // Events fired by our own stopping (an abort() at the deadline) are not the
        // client's: they are not recorded.
        const wasFrozen = frozen;
        frozen = true;
        for (const rec of records) {
            try { rec.cleanupFn(); } catch (e) { /* stopping is best effort */ }
        }
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

    if (script) {
        obs.steps = {};
        runScript(script).catch((e) => { if (!runnerError) runnerError = e; resolveOnce(); });
    } else {
        const r = newRecord(null, obs);
        try {
            ACTIONS[action](client[action] || {}, r);
        } catch (e) {
            r.fail(e);
        }
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
    out.clock = { epoch_ms: Math.round(epochT0 * 1000) / 1000 };
    if (unobserved.size) out.unobserved = Array.from(unobserved).sort();
    if (pageErrors.length) out.pageErrors = pageErrors;
    return jsonSafe(out);

    /* ------------------------------------------------------------ scripts */

    // A step's id: its own, or step-N (N from 1), as the loader names it.
    function stepId(step, i) {
        return typeof step.id === 'string' ? step.id : 'step-' + (i + 1);
    }

    function stepAction(step) {
        for (const key of Object.keys(step)) if (ACTIONS[key]) return key;
        return null;
    }

    function checkScript(steps) {
        steps.forEach((step, i) => {
            if (step === null || typeof step !== 'object') throw new TypeError('client.steps[' + i + '] must be an object');
            const a = stepAction(step);
            if (a && typeof (step[a] || {}).url !== 'string') throw new TypeError('client.steps[' + i + '].' + a + '.url must be a string');
        });
    }

    /*
     * A client script: steps run in order. A request step starts its request (send() is
     * called) and the script goes on; wait pauses; wait_for pauses until an event of a step
     * (or journal entries, through the instance's journal wait); do acts on a step's object.
     * Do steps with `on` are bound before anything runs: they run inside the listener of
     * their event, when the step's object fires it.
     */
    async function runScript(steps) {
        steps.forEach((step, i) => {
            if (step.do !== undefined && step.on) {
                const target = step.on.step;
                (handlers[target] = handlers[target] || []).push({ step: step, id: stepId(step, i), count: 0, fired: false });
            }
        });
        for (let i = 0; i < steps.length; i++) {
            if (ended) return;
            const step = steps[i];
            const id = stepId(step, i);
            const a = stepAction(step);
            if (a) {
                const stepObs = {};
                obs.steps[id] = stepObs;
                const rec = newRecord(id, stepObs);
                rec.action = a;
                try {
                    ACTIONS[a](step[a], rec);
                } catch (e) {
                    rec.fail(e);
                    return;
                }
            } else if (step.wait !== undefined) {
                await sleep(ms(step.wait));
            } else if (step.wait_for !== undefined) {
                const ok = await waitFor(step.wait_for);
                if (!ok && !ended) record(id, 'wait_timeout', {});
            } else if (step.do !== undefined && !step.on) {
                doStep(step, id, byId[step.step]);
            }
        }
        scriptDone = true;
        checkEnd();
    }

    // An event of the script itself (a do step's exception or return value, a wait that
    // timed out).
    function record(id, type, fields) {
        if (frozen) return;
        events.push(Object.assign({ type: type, t: now(), step: id }, fields));
    }

    function eventMatches(rec, e, cond) {
        if (e.type !== cond.event) return false;
        if (cond.readyState !== undefined) {
            const rs = e.readyState !== undefined ? e.readyState : rec.object && rec.object.readyState;
            if (rs !== cond.readyState) return false;
        }
        return true;
    }

    // After every event of a request: the waits it satisfies, the do steps bound to it.
    function dispatch(rec, e) {
        const still = [];
        for (const w of rec.waiters) {
            if (eventMatches(rec, e, w.cond) && ++w.count >= (w.cond.nth || 1)) w.resolve(true);
            else still.push(w);
        }
        rec.waiters = still;
        for (const h of handlers[rec.id] || []) {
            if (h.fired || !eventMatches(rec, e, h.step.on)) continue;
            h.count += 1;
            if (h.count < (h.step.on.nth || 1)) continue;
            h.fired = true;
            doStep(h.step, h.id, byId[h.step.step !== undefined ? h.step.step : h.step.on.step]);
        }
    }

    function waitFor(w) {
        const limit = w.timeout !== undefined ? ms(w.timeout) : null;
        let wait;
        if (w.event) {
            const rec = byId[w.event.step];
            if (!rec) throw new TypeError('wait_for: no request step "' + w.event.step + '" has run');
            const past = events.filter((e) => e.step === rec.id && eventMatches(rec, e, w.event)).length;
            if (past >= (w.event.nth || 1)) return Promise.resolve(true);
            wait = new Promise((resolve) => {
                rec.waiters.push({ cond: w.event, count: past, resolve: resolve });
            });
        } else {
            wait = journalWait(w.journal, limit);
        }
        if (limit === null) return wait;
        return Promise.race([wait, sleep(limit).then(() => false)]);
    }

    // The instance's own journal wait, /s/ID/_harness/wait on its main origin (the driver
    // gives its URL; docs/control-api.md, "Waiting for the journal"): held until the
    // journal has the entries; 200 then, 408 at the timeout.
    async function journalWait(j, limit) {
        const sep = j.url.indexOf('?') >= 0 ? '&' : '?';
        const timeout = Math.max(1, Math.round(limit !== null ? limit : ms(deadlineMs) || 10000));
        try {
            const res = await fetch(j.url + sep + 'timeout=' + timeout);
            return res.status === 200;
        } catch (e) {
            return false;
        }
    }

    // A do step: an action on a request's object, now or inside one of its listeners.
    function doStep(step, id, rec) {
        if (!rec || frozen) return;
        const d = step.do;
        const obj = rec.object;
        const target = { target: rec.id };
        try {
            if (d === 'abort') {
                if (rec.abort) rec.abort();
                else obj.abort();
            } else if (d === 'close') {
                obj.close();
                if (rec.action === 'eventsource') rec.complete();
            } else if (d === 'send') {
                obj.send();
            } else if (d.call !== undefined) {
                const value = obj[d.call].apply(obj, d.args || []);
                if (value !== undefined) record(id, 'return', Object.assign({ method: d.call, value: jsonSafe(value) }, target));
            } else if (d.set !== undefined) {
                obj[d.set] = d.value;
            } else if (d.send !== undefined) {
                obj.send(typeof d.send === 'string' ? d.send : JSON.stringify(d.send));
            } else if (d.close !== undefined) {
                const c = d.close || {};
                if (c.code === undefined) obj.close();
                else if (c.reason === undefined) obj.close(c.code);
                else obj.close(c.code, c.reason);
                if (rec.action === 'eventsource') rec.complete();
            }
        } catch (e) {
            record(id, 'exception', Object.assign({ name: errName(e), message: errMessage(e) }, target));
        }
    }

    /* ------------------------------------------------------------------ xhr */

    function runXhr(s, r) {
        const XHR_EVENTS = ['loadstart', 'progress', 'load', 'error', 'abort', 'timeout', 'loadend'];
        const xhr = new XMLHttpRequest();
        r.object = xhr;
        r.obs.initialReadyState = xhr.readyState;
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

        xhr.addEventListener('readystatechange', (e) => {
            const f = { readyState: xhr.readyState };
            if (xhr.readyState === 3) {
                const len = textLength(xhr);
                if (len !== undefined) f.responseTextLength = len;
            }
            r.event('readystatechange', f, e);
            maybeAbort('readystatechange');
        });
        for (const type of XHR_EVENTS) {
            xhr.addEventListener(type, (e) => {
                r.event(type, progressFields(e), e);
                maybeAbort(type);
                if (type === 'loadend') r.complete();
            });
        }

        r.snapshot = () => {
            r.obs.readyState = xhr.readyState;
            r.obs.status = xhr.status;
            r.obs.statusText = xhr.statusText;
            r.obs.responseURL = xhr.responseURL;
            const all = xhr.getAllResponseHeaders();
            r.obs.allHeaders = all;
            r.obs.headers = parseHeaderBlock(all);
            const rt = xhr.responseType;
            if (rt === '' || rt === 'text') {
                r.obs.responseText = xhr.responseText;
            }
            if (rt === '' || rt === 'document') {
                r.obs.responseXML = documentSummary(xhr.responseXML);
            }
            if (rt === 'json') {
                r.obs.response = xhr.response;
            } else if (rt === 'arraybuffer') {
                r.obs.response = xhr.response ? { byteLength: xhr.response.byteLength } : null;
            } else if (rt === 'blob') {
                r.obs.response = xhr.response ? { byteLength: xhr.response.size, type: xhr.response.type } : null;
            } else if (rt === 'document') {
                r.obs.response = documentSummary(xhr.response);
            }
            if (s.get_headers) {
                r.obs.getResponseHeader = {};
                for (const name of s.get_headers) r.obs.getResponseHeader[name] = xhr.getResponseHeader(name);
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
                    r.event('upload.' + type, progressFields(e), e);
                    maybeAbort('upload.' + type);
                });
            }
        }
        const body = requestBody(s);
        if (s.send === false) {
            // open() only: a do step may send() later; until then nothing is in flight
            // (a request that never starts ends with the script).
            r.done = true;
            xhr.addEventListener('loadstart', () => { r.done = false; });
            checkEnd();
            return;
        }
        try {
            if (body === undefined) xhr.send();
            else xhr.send(body);
        } catch (e) {
            r.exception(e);
            return;
        }
        if (abortSpec && abortSpec.after !== undefined) {
            setTimeout(() => {
                if (!abortCalled && !r.ended) {
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
        const out = { root: root ? root.localName : null };
        if (typeof doc.contentType === 'string') out.contentType = doc.contentType;
        return out;
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
            r.obs.status = response.status;
            r.obs.statusText = response.statusText;
            r.obs.headers = headersObject(response.headers);
            r.obs.responseURL = response.url;
            r.obs.responseText = text;
            if (http) return; // the http capability's final state stops here
            r.obs.type = response.type;
            r.obs.redirected = response.redirected;
        };
        r.cleanup = () => ctrl.abort();
        r.abort = () => ctrl.abort();

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
            if (r.ended) return;
            r.event('response', { status: response.status });
            if (response.body) {
                const reader = response.body.getReader();
                const decoder = new TextDecoder();
                try {
                    for (;;) {
                        const { done, value } = await reader.read();
                        if (done) break;
                        if (r.ended) return;
                        const piece = decoder.decode(value, { stream: true });
                        text += piece;
                        if (chunks) r.event('chunk', { length: value.byteLength, text: piece });
                    }
                    text += decoder.decode();
                } catch (e) {
                    if (r.ended) return;
                    r.event('error', { name: errName(e), message: errMessage(e) });
                    r.complete();
                    return;
                }
            }
            if (r.ended) return;
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
            r.obs.readyState = es.readyState;
            r.obs.url = es.url;
            r.obs.withCredentials = es.withCredentials;
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
        r.object = es;
        r.obs.initialReadyState = es.readyState;

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
            if (r.ended) {
                // Delivered after close(): a stray event, recorded but not counted.
                r.event('message', messageFields(e), e);
                return;
            }
            r.event('message', messageFields(e), e);
            counted(true);
        };
        es.addEventListener('open', (e) => {
            r.event('open', { readyState: es.readyState }, e);
            if (!r.ended) counted(false);
        });
        es.addEventListener('error', (e) => {
            const f = { readyState: es.readyState };
            // Non-browser EventSources may tell why (the eventsource package: code, message).
            if (typeof e.code === 'number') f.code = e.code;
            if (typeof e.message === 'string' && e.message) f.message = e.message;
            // An error event that is a MessageEvent (a stream's "event: error"): its data.
            if (typeof e.data === 'string') {
                f.data = e.data;
                if (typeof e.lastEventId === 'string') f.lastEventId = e.lastEventId;
                if (typeof e.origin === 'string') f.origin = e.origin;
            }
            r.event('error', f, e);
            if (r.ended) return;
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
                if (r.ended) return;
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
            r.obs.readyState = ws.readyState;
            r.obs.protocol = ws.protocol;
            r.obs.extensions = ws.extensions;
            r.obs.binaryType = ws.binaryType;
            r.obs.url = ws.url;
        };
        r.cleanup = () => { if (ws && ws.readyState < 2) ws.close(); };

        try {
            ws = s.protocols !== undefined ? new WebSocket(s.url, s.protocols) : new WebSocket(s.url);
            r.object = ws;
            r.obs.initialReadyState = ws.readyState;
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

        ws.addEventListener('open', (e) => {
            r.event('open', { protocol: ws.protocol, extensions: ws.extensions }, e);
            runSendSteps().catch((e) => r.fail(e));
        });
        ws.addEventListener('message', (e) => {
            if (typeof e.data === 'string') {
                r.event('message', { data: e.data, binary: false }, e);
            } else if (e.data instanceof ArrayBuffer) {
                r.event('message', { data_base64: bytesToBase64(new Uint8Array(e.data)), binary: true }, e);
            } else {
                // binaryType "blob": report the size only (reading it is asynchronous).
                r.event('message', { binary: true, size: e.data.size }, e);
            }
            messages += 1;
            wakeWaiters();
        });
        ws.addEventListener('error', (e) => r.event('error', {}, e));
        ws.addEventListener('close', (e) => {
            r.event('close', { code: e.code, reason: e.reason, wasClean: e.wasClean }, e);
            wakeWaiters();
            r.complete();
        });

        async function runSendSteps() {
            const steps = (s.send || []).slice();
            if (s.close) steps.push({ close: s.close });
            for (const raw of steps) {
                if (r.ended || ws.readyState >= 2) return;
                const step = typeof raw === 'string' ? { text: raw } : raw;
                if (step.wait !== undefined) await sleep(ms(step.wait));
                if (step.wait_messages !== undefined) await waitMessages(Number(step.wait_messages));
                if (r.ended || ws.readyState >= 2) return;
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
        r.object = script;
        script.addEventListener('load', (e) => { r.event('load', {}, e); r.complete(); });
        script.addEventListener('error', (e) => { r.event('error', {}, e); r.complete(); });
        script.src = s.url;
        document.head.appendChild(script);
    }

    /* ---------------------------------------------------------------- image */

    function runImage(s, r) {
        const img = new Image();
        r.object = img;
        if (s.cross_origin !== undefined) img.crossOrigin = s.cross_origin;
        img.addEventListener('load', (e) => {
            r.event('load', { naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight }, e);
            r.complete();
        });
        img.addEventListener('error', (e) => { r.event('error', {}, e); r.complete(); });
        r.snapshot = () => {
            r.obs.complete = img.complete;
            r.obs.naturalWidth = img.naturalWidth;
            r.obs.naturalHeight = img.naturalHeight;
        };
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
