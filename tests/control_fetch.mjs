// A page on a scenario origin trying the control API, in headless Chromium: the cross-site
// attempts of issue 14 (a text/plain "simple" POST, the same with no-cors, a request with
// the token header, a GET), each run by fetch() in the page. Prints one JSON line:
// {"results": [{"name", "ok", "status", "type", "error"}]}.
//   node tests/control_fetch.mjs PAGE_URL CONTROL_URL TOKEN
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
const require = createRequire(new URL('../drivers/package.json', import.meta.url));
const puppeteer = require('puppeteer-core');

const [pageUrl, control, token] = process.argv.slice(2);
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'comet-ctl-chromium-'));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/lib/chromium/chromium',
  headless: true,
  userDataDir,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--no-proxy-server',
    '--disable-background-networking'],
});
try {
  const page = await browser.newPage();
  await page.goto(pageUrl, { waitUntil: 'load', timeout: 15000 });
  const results = await page.evaluate(async (control, token) => {
    const yaml = 'id: evil.load\ntitle: t\nspec: https://x.org/\nclient:\n  http: {url: /}\n';
    const body = JSON.stringify({ yaml, id: 'from-a-page' });
    const tries = [
      ['simple-post', control + '/_harness/instances',
        { method: 'POST', body, headers: { 'Content-Type': 'text/plain' } }],
      ['no-cors-post', control + '/_harness/instances',
        { method: 'POST', body, mode: 'no-cors', headers: { 'Content-Type': 'text/plain' } }],
      ['token-header', control + '/_harness/instances',
        { method: 'POST', body, headers: { 'Content-Type': 'application/json', 'X-Harness-Token': token } }],
      ['get-instances', control + '/_harness/instances', {}],
      ['get-health', control + '/_harness/health', {}],
    ];
    const out = [];
    for (const [name, url, init] of tries) {
      try {
        const r = await fetch(url, init);
        let text = null;
        try { text = await r.text(); } catch (e) { text = null; }
        out.push({ name, ok: true, status: r.status, type: r.type, text });
      } catch (e) {
        out.push({ name, ok: false, error: String(e) });
      }
    }
    return out;
  }, control, token);
  console.log(JSON.stringify({ results }));
} finally {
  await browser.close();
  fs.rmSync(userDataDir, { recursive: true, force: true, maxRetries: 3 });
}
