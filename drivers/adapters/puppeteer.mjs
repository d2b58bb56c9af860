#!/usr/bin/env node
/*
 * puppeteer.mjs — the browser adapter for Chromium and Firefox (docs/adapters.md).
 *
 *     node drivers/adapters/puppeteer.mjs --browser chromium|firefox [--executable PATH]
 *
 * Drives the Debian browsers through puppeteer-core (which never downloads one): Chromium
 * over the DevTools protocol, Firefox ESR over WebDriver BiDi. One browser is launched per
 * adapter process (at "start", or at the first run) and reused; it is launched again if it
 * died. A run's page shows the run's "page" URL (the harness's blank page on the main
 * origin) with the shared in-page runner (browser/runner.js) injected, and
 * cometRun(client, deadline) gives the observations. Runs with different ids go on
 * concurrently, each in a browser context (and page) of its own.
 *
 * Making a context and its page is most of a short run's time (Chromium: about half a
 * second, Firefox: a second, more on a loaded machine), so a page outlives its run: once
 * the run has answered, its page goes to about:blank (which ends everything the run left
 * going), the context's cookies are deleted (and Chromium's HTTP cache emptied), the harness
 * page is loaded again with the runner, and the page waits there as the spare that the next
 * run takes. Firefox's WebDriver BiDi has no command that empties a context's cache; that
 * cache cannot serve one run what another fetched, because every request of a run has a
 * path under its own instance (/s/INSTANCE/…). A page whose run stopped answering is not
 * kept: its context is closed, and a fresh spare is made. A spare is used only if it is
 * still visible when its run starts (a hidden page may have its timers throttled);
 * otherwise the run makes its own page.
 *
 * The page's console messages, uncaught errors and failed requests are logged to stderr,
 * prefixed with the run id, for the driver to show when a test fails.
 *
 * TLS (docs/adapters.md, "TLS"; docs/tls.md): with COMET_TLS_CA=/path/ca.pem in the
 * environment, the browser trusts that CA through its own certificate store, made for the
 * launch with NSS's certutil — Chromium: a private HOME whose .pki/nssdb holds the CA;
 * Firefox: cert9.db in the profile puppeteer is given — and nothing else: no switch that
 * ignores certificate errors, no pinned key. Both resolve *.localhost themselves.
 *
 * A run never hangs: the runner resolves at the deadline, and if the page itself stops
 * answering (a synchronous XHR to a server that never replies blocks the page) the adapter
 * gives up PAGE_GRACE_MS after the deadline and answers {"deadline": true,
 * "pageUnresponsive": true} with no events.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import { serve, log, runDeadline, clientAction, scriptRequests } from './protocol.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RUNNER_SOURCE = fs.readFileSync(path.join(HERE, 'browser', 'runner.js'), 'utf8');
const PUPPETEER_VERSION = JSON.parse(
    fs.readFileSync(path.join(HERE, '..', 'node_modules', 'puppeteer-core', 'package.json'), 'utf8'),
).version;

const CAPABILITIES = ['xhr', 'fetch', 'eventsource', 'websocket', 'jsonp', 'image', 'steps'];
const PAGE_GRACE_MS = 3000;     // after the deadline, before the page is given up on
const NAVIGATION_TIMEOUT_MS = 15000;
const LAUNCH_TIMEOUT_MS = 60000;

const TLS_CA = process.env.COMET_TLS_CA || null;
// The harness's "insecure" origin (harness/src/origins.h, ORIGIN_INSECURE_HOST): a name on
// loopback that is not potentially trustworthy, for mixed content. Mapped by each browser's
// own resolver setting; *.localhost needs nothing.
export const INSECURE_HOST = 'insecure.test';
const CA_NICKNAME = 'Comet Harness CA';

/* An NSS certificate database in dir (made if need be) holding the harness's CA as a
 * trusted issuer of server certificates (C,,): what both browsers read their trust from. */
function nssTrust(dir) {
    fs.mkdirSync(dir, { recursive: true });
    const db = `sql:${dir}`;
    if (!fs.existsSync(path.join(dir, 'cert9.db'))) {
        execFileSync('certutil', ['-N', '-d', db, '--empty-password'], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
    execFileSync('certutil', ['-A', '-d', db, '-n', CA_NICKNAME, '-t', 'C,,', '-i', TLS_CA],
        { stdio: ['ignore', 'ignore', 'pipe'] });
}

/* Remove a launch's folder once the browser process has exited (not at disconnection,
 * when the browser may still be writing to it). */
function removeAfterExit(browser, dir, what) {
    const proc = browser.process();
    const remove = () => {
        try {
            fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
        } catch (err) {
            log(`${what}: could not remove ${dir}: ${err.message}`);
        }
    };
    if (proc && proc.exitCode === null) proc.once('exit', remove);
    else remove();
}

const BROWSERS = {
    chromium: {
        executable: '/usr/lib/chromium/chromium',
        async launch(executablePath) {
            // One folder per launch: the profile, and (with a CA) the HOME whose
            // .pki/nssdb Chromium reads its trust from.
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comet-chromium-'));
            const userDataDir = TLS_CA ? path.join(dir, 'profile') : dir;
            // Every run is in a fresh browser context, which Chromium makes off the record,
            // and off the record it blocks third-party cookies (cookie_controls_mode 2,
            // "in Incognito"): a page in a normal window does not. Mode 0 keeps the web's
            // default, so that SameSite=None cookies across sites behave as on the web.
            fs.mkdirSync(path.join(userDataDir, 'Default'), { recursive: true });
            fs.writeFileSync(path.join(userDataDir, 'Default', 'Preferences'),
                JSON.stringify({ profile: { cookie_controls_mode: 0 } }));
            const env = { ...process.env };
            if (TLS_CA) {
                nssTrust(path.join(dir, '.pki', 'nssdb'));
                env.HOME = dir;
            }
            const browser = await puppeteer.launch({
                executablePath,
                headless: true,
                userDataDir,
                env,
                timeout: LAUNCH_TIMEOUT_MS,
                args: [
                    '--no-sandbox', // we run as root
                    '--disable-gpu',
                    '--disable-quic',
                    '--no-first-run',
                    '--disable-background-networking',
                    '--disable-component-update',
                    '--disable-sync',
                    '--no-proxy-server', // the harness is on loopback: ignore proxy settings
                    `--host-resolver-rules=MAP ${INSECURE_HOST} 127.0.0.1`,
                ],
            });
            removeAfterExit(browser, dir, 'chromium');
            return browser;
        },
    },
    firefox: {
        executable: '/usr/bin/firefox-esr',
        async launch(executablePath) {
            // Without a CA, puppeteer makes (and removes) a fresh profile of its own; with
            // one, the profile is ours, its cert9.db holding the CA (puppeteer writes its
            // preferences into it all the same), removed when Firefox has exited.
            const userDataDir = TLS_CA ? fs.mkdtempSync(path.join(os.tmpdir(), 'comet-firefox-')) : undefined;
            if (TLS_CA) nssTrust(userDataDir);
            const browser = await puppeteer.launch({
                browser: 'firefox',
                userDataDir,
                protocol: 'webDriverBiDi',
                executablePath,
                headless: true,
                timeout: LAUNCH_TIMEOUT_MS,
                extraPrefsFirefox: {
                    'network.http.http3.enable': false,
                    'network.proxy.type': 0, // direct: the harness is on loopback
                    'network.dns.localDomains': INSECURE_HOST, // resolved to loopback
                    'app.update.enabled': false,
                    'browser.shell.checkDefaultBrowser': false,
                },
            });
            if (userDataDir) removeAfterExit(browser, userDataDir, 'firefox');
            return browser;
        },
    },
};

/*
 * --mutant NAME (used only by drivers/tests/test_mutants.py): the browser's API broken on
 * purpose in the page, before the runner runs, so that the catalogue must catch it.
 *   no-invalid-state: XMLHttpRequest swallows the InvalidStateError its methods and
 *   setters throw (setRequestHeader or send() after send(), overrideMimeType or
 *   responseType while loading or done, withCredentials after send()).
 */
const MUTANTS = {
    'no-invalid-state': `(() => {
        const P = XMLHttpRequest.prototype;
        const quiet = (e) => { if (!e || e.name !== 'InvalidStateError') throw e; };
        for (const m of ['setRequestHeader', 'overrideMimeType', 'send']) {
            const f = P[m];
            P[m] = function (...args) { try { return f.apply(this, args); } catch (e) { quiet(e); } };
        }
        for (const prop of ['responseType', 'withCredentials']) {
            const d = Object.getOwnPropertyDescriptor(P, prop);
            Object.defineProperty(P, prop, { configurable: true, enumerable: d.enumerable, get: d.get,
                set(v) { try { d.set.call(this, v); } catch (e) { quiet(e); } } });
        }
    })()`,
};

function parseArgs(argv) {
    const opts = { browser: null, executable: null, mutant: null };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--browser') opts.browser = value();
        else if (a.startsWith('--browser=')) opts.browser = a.slice(10);
        else if (a === '--executable') opts.executable = value();
        else if (a.startsWith('--executable=')) opts.executable = a.slice(13);
        else if (a === '--mutant') opts.mutant = value();
        else throw new Error(`unknown argument ${a}`);
    }
    if (!BROWSERS[opts.browser]) throw new Error('usage: puppeteer.mjs --browser chromium|firefox [--executable PATH]');
    if (opts.mutant !== null && !MUTANTS[opts.mutant]) throw new Error(`unknown mutant ${opts.mutant}`);
    opts.executable = opts.executable || BROWSERS[opts.browser].executable;
    return opts;
}

let opts;
try {
    opts = parseArgs(process.argv.slice(2));
} catch (err) {
    log(err.message);
    process.exit(2);
}

let browser = null;
let launching = null;

/* The browser, launched on first use and again if it died. */
async function getBrowser() {
    if (browser && browser.connected) return browser;
    if (!launching) {
        launching = (async () => {
            const t0 = Date.now();
            const b = await BROWSERS[opts.browser].launch(opts.executable);
            b.on('disconnected', () => {
                if (browser === b) browser = null;
                log(`${opts.browser}: browser disconnected`);
            });
            log(`${opts.browser}: launched ${await b.version()} in ${Date.now() - t0} ms`);
            browser = b;
            return b;
        })();
        launching.then(() => { launching = null; }, () => { launching = null; });
    }
    return launching;
}

/* "Chrome/156.0.8078.79", "HeadlessChrome/…", "firefox/153.7.0" → the number. */
function versionNumber(product) {
    const slash = product.lastIndexOf('/');
    return slash >= 0 ? product.slice(slash + 1) : product;
}

function withTimeout(promise, ms) {
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(TIMED_OUT), ms); });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
const TIMED_OUT = Symbol('timed out');
const TAB_TIMEOUT_MS = 5000; // a new tab Firefox has not made by then: a window instead

/* The page's messages go to stderr tagged with its run (a spare's tag changes when a run
 * takes it). */
function watchPage(page, id) {
    const tag = () => `[run ${page.cometRunId === undefined ? id : page.cometRunId}]`;
    page.on('console', (m) => log(`${tag()} console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log(`${tag()} page error: ${e && e.message || e}`));
    page.on('requestfailed', (req) => {
        const failure = req.failure();
        log(`${tag()} request failed: ${req.method()} ${req.url()} ${failure ? failure.errorText : ''}`);
    });
}

let inflight = 0; // runs going on in this adapter

/* A fresh context whose page shows the run's harness page with the runner loaded.
 * Firefox hides the tabs that are not in front and throttles a hidden page's timers to one a
 * second, so a page must stay in front while its run goes on. When no other run goes on (a
 * spare: when none goes on at all), the page is a new tab in front of the one window: Firefox
 * makes one in 130-145 ms against 240-260 ms for a window (and a tab made in the background
 * waits a throttled second). When runs go on at once, each page has a window of its own. */
async function newPage(pageUrl, id, { forSpare = false } = {}) {
    const b = await getBrowser();
    const context = await b.createBrowserContext();
    try {
        const tab = inflight <= (forSpare ? 0 : 1);
        // Firefox can fail a new tab, or not answer at all, while the tab in front is being
        // closed (the last run's context, closing in the background: "BrowsingContext does
        // no longer exist"); a window does not depend on it
        let page = tab ? await withTimeout(context.newPage({ type: 'tab' }).catch(() => null), TAB_TIMEOUT_MS) : null;
        if (!page || page === TIMED_OUT) page = await context.newPage({ type: 'window' });
        watchPage(page, id);
        const got = { context, page, url: null, runs: 0 };
        await load(got, pageUrl, id);
        return got;
    } catch (err) {
        closeInBackground(context);
        throw err;
    }
}

/* Show the harness page at pageUrl in got.page, the runner loaded: a new document, so
 * nothing of a former run's page is left (its requests, sockets and timers end with it). */
async function load(got, pageUrl, id) {
    const response = await got.page.goto(pageUrl, { waitUntil: 'load', timeout: NAVIGATION_TIMEOUT_MS });
    if (response && !response.ok()) {
        throw new Error(`the harness page ${pageUrl} answered ${response.status()}`);
    }
    if (opts.mutant) await got.page.evaluate(MUTANTS[opts.mutant]);
    const visibility = await got.page.evaluate(RUNNER_SOURCE + '\n;document.visibilityState');
    if (visibility !== 'visible') log(`[run ${id}] warning: the page is ${visibility} (timers may be throttled)`);
    got.url = pageUrl;
}

/* What a run leaves in its context that the next run could see, removed: every cookie of
 * the context (partitioned ones too) and, in Chromium, its HTTP cache. Firefox's WebDriver
 * BiDi has no command that empties a context's cache; a run's requests all have paths
 * under its own instance (/s/INSTANCE/…), so no other run asks for what it cached (the
 * harness page aside, the same for every run). */
async function forget(got) {
    if (opts.browser === 'chromium') {
        if (!got.cdp) got.cdp = await got.page.createCDPSession();
        await got.cdp.send('Network.clearBrowserCookies');
        await got.cdp.send('Network.clearBrowserCache');
        return;
    }
    const user = got.context.userContext;
    await user.browser.session.send('storage.deleteCookies', {
        partition: { type: 'storageKey', userContext: user.id },
    });
}

/* A page whose run has ended, made ready for the next run: its document replaced (which
 * ends whatever the run left going), its cookies and cache forgotten. Making a context and a
 * page is most of a short run's time (Firefox: 130-260 ms quiet, most of a second with
 * runs beside it); this is one navigation. */
async function reuse(got, pageUrl, id) {
    await got.page.goto('about:blank', { waitUntil: 'load', timeout: NAVIGATION_TIMEOUT_MS });
    await forget(got);
    await load(got, pageUrl, id);
    return got;
}

let spare = null;  // { ready: promise of a page }: the next run's page
let spares = 0;
let stopping = false;

function makeSpare(pageUrl) {
    const ready = newPage(pageUrl, `spare ${++spares}`, { forSpare: true });
    ready.catch(() => {});  // a spare that failed is not used: its run makes its own page
    spare = { ready };
}

/* The page of a run that has ended becomes the spare, ready for the next run, unless
 * another page already is (runs went on at once). */
function keepAsSpare(got, pageUrl, id) {
    if (spare || stopping) {
        closeInBackground(got.context);
        return;
    }
    got.runs++;
    const ready = reuse(got, pageUrl, id).catch((err) => {
        log(`[run ${id}] its page could not be made ready again (${err && err.message || err})`);
        closeInBackground(got.context);
        throw err;
    });
    ready.catch(() => {});
    spare = { ready };
}

function dropSpare() {
    const s = spare;
    spare = null;
    if (s) s.ready.then(({ context }) => closeInBackground(context), () => {});
}

/* The run's page: the spare when it is made and still visible (loaded again if the run's
 * page URL is another); else a new one. */
async function pageFor(pageUrl, id) {
    const s = spare;
    spare = null;
    if (s) {
        try {
            const got = await s.ready;
            if (got.url !== pageUrl) await load(got, pageUrl, id);
            if (await got.page.evaluate('document.visibilityState') === 'visible') {
                got.page.cometRunId = id;
                return got;
            }
            closeInBackground(got.context);
        } catch (err) {
            log(`[run ${id}] the spare page failed (${err && err.message || err}): making one`);
        }
    }
    return newPage(pageUrl, id);
}

const closing = new Set(); // contexts being closed in the background

function closeInBackground(context) {
    const p = withTimeout(context.close().catch(() => {}), 10000).then(() => closing.delete(p));
    closing.add(p);
}

async function runOne(msg) {
    const action = clientAction(msg);
    const actions = action === 'steps' ? ['steps', ...scriptRequests(msg.client).map(([a]) => a)] : [action];
    for (const a of actions) {
        if (!CAPABILITIES.includes(a)) {
            return { type: 'unsupported', reason: `${opts.browser} adapter has no "${a}" capability` };
        }
    }
    if (typeof msg.page !== 'string') throw new Error('run.page must be the harness page URL');
    const deadline = runDeadline(msg);
    const t0 = Date.now();
    inflight++;
    let got;
    try {
        got = await pageFor(msg.page, msg.id);
    } catch (err) {
        inflight--;
        throw err;
    }
    let unresponsive = true;
    try {
        log(`[run ${msg.id}] ${msg.scenario}: page ready in ${Date.now() - t0} ms (${got.runs ? `used ${got.runs} times before` : 'new'})`);
        const json = await withTimeout(
            got.page.evaluate(
                async (client, deadlineMs) => JSON.stringify(await cometRun(client, deadlineMs)), // eslint-disable-line no-undef
                msg.client,
                deadline,
            ),
            deadline + PAGE_GRACE_MS,
        );
        if (json === TIMED_OUT) {
            log(`[run ${msg.id}] the page did not answer ${PAGE_GRACE_MS} ms after the deadline`);
            return { type: 'result', observations: { events: [], deadline: true, pageUnresponsive: true } };
        }
        unresponsive = false;
        return { type: 'result', observations: JSON.parse(json) };
    } finally {
        // The runner has already stopped what it started; making the page ready for the
        // next run (or closing its context: a page that stopped answering, or one more
        // than a spare) need not delay the answer.
        inflight--;
        if (unresponsive) closeInBackground(got.context);
        else keepAsSpare(got, msg.page, msg.id);
        if (!spare && !stopping && unresponsive) {
            setImmediate(() => { if (!spare && !stopping) makeSpare(msg.page); });
        }
    }
}

serve({
    async start() {
        const b = await getBrowser();
        return {
            name: opts.browser,
            version: versionNumber(await b.version()),
            implementation: `puppeteer-core ${PUPPETEER_VERSION}`,
            capabilities: CAPABILITIES,
            details: {
                product: await b.version(),
                userAgent: await b.userAgent(),
                executable: opts.executable,
                node: process.version,
            },
        };
    },
    run: runOne,
    async stop() {
        stopping = true;
        if (launching) await launching.catch(() => {});
        dropSpare();
        await Promise.allSettled([...closing]);
        const b = browser;
        browser = null;
        if (!b) return;
        const closed = await withTimeout(b.close().catch(() => {}), 10000);
        if (closed === TIMED_OUT) {
            const proc = b.process();
            if (proc) proc.kill('SIGKILL');
        }
    },
});
