/*
 * tls-trust.mjs — what a Node adapter needs to reach the harness's https origins
 * (docs/adapters.md, "TLS"; docs/tls.md): imported first, before any library.
 *
 * - The CA: the driver starts every adapter with COMET_TLS_CA=/path/ca.pem. Node adds
 *   extra CAs to its store only from NODE_EXTRA_CA_CERTS, read when the process starts
 *   (fetch/undici, https, ws, eventsource and xhr2 all use that store, and none skips
 *   verification). So when COMET_TLS_CA is set and NODE_EXTRA_CA_CERTS is not that file,
 *   this module runs the same command again with it set, waits for it (stdin, stdout and
 *   stderr are shared) and exits with its status: the adapter that answers is the child.
 * - The names: glibc here does not resolve *.localhost (RFC 6761 reserves it for
 *   loopback; browsers and curl answer it themselves). dns.lookup, through which net and
 *   tls connect, answers names under .localhost with 127.0.0.1; the name itself still goes
 *   out as Host and SNI and is checked against the certificate.
 */
import dns from 'node:dns';
import { spawnSync } from 'node:child_process';

export const TLS_CA_ENV = 'COMET_TLS_CA';

const ca = process.env[TLS_CA_ENV];
if (ca && process.env.NODE_EXTRA_CA_CERTS !== ca) {
    const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
        stdio: 'inherit',
        env: { ...process.env, NODE_EXTRA_CA_CERTS: ca },
    });
    if (child.error) {
        process.stderr.write(`tls-trust: cannot start node again with NODE_EXTRA_CA_CERTS: ${child.error}\n`);
        process.exit(70);
    }
    process.exit(child.status === null ? 128 + 9 : child.status);
}

export function isLocalhostName(host) {
    return typeof host === 'string' && /\.localhost\.?$/i.test(host);
}

const originalLookup = dns.lookup;
dns.lookup = function lookup(hostname, ...rest) {
    return originalLookup.call(this, isLocalhostName(hostname) ? '127.0.0.1' : hostname, ...rest);
};
