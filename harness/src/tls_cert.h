/* tls_cert — the X.509 certificates the harness serves HTTPS with, made and read with
 * GnuTLS's X.509 API (never hand-written DER).
 *
 *   tls_cert_ca_new()    a fresh local certificate authority (ECDSA P-256, SHA-256)
 *   tls_cert_leaf_new()  a server certificate for a list of names (DNS names and IP
 *                        addresses), signed by a CA; or one of the deliberately wrong
 *                        certificates of enum tls_cert_flaw, which a conforming client
 *                        must refuse, each for one reason only
 *   tls_cert_load()      a certificate (with its chain) and its key brought as PEM files
 *                        (serve --cert/--key), checked to belong together
 *   tls_cert_load_ca()   a CA file (serve --ca): one or more PEM certificates
 *   tls_cert_write()     PEM text to a file (keys readable by the owner only)
 *
 * A struct tls_cert owns its parsed certificate, its key and their PEM text; it is
 * immutable once made and may be read from several threads. Errors come back as one
 * malloc'd line naming the file and what is wrong with it; the caller frees it. Nothing is
 * global: GnuTLS initialises itself when loaded.
 */
#ifndef HARNESS_TLS_CERT_H
#define HARNESS_TLS_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* What is wrong with a leaf on purpose. Every flawed leaf is otherwise a good one: the
 * same names, key usage and signature, so a client that refuses it refuses it for the one
 * reason named here. */
enum tls_cert_flaw {
    TLS_CERT_GOOD,          /* valid from a day ago for TLS_CERT_LEAF_DAYS, for the names */
    TLS_CERT_EXPIRED,       /* valid for 30 days, which ended a day ago */
    TLS_CERT_NOT_YET_VALID, /* valid from tomorrow */
    TLS_CERT_WRONG_NAME,    /* names only TLS_CERT_WRONG_NAME_DNS, whatever names asked */
    TLS_CERT_SELF_SIGNED,   /* signed by its own key, not by the CA (and not a CA itself) */
    TLS_CERT_UNTRUSTED_CA,  /* signed by a second CA made on the spot, which no client
                             * trusts; the chain served is the leaf, then that CA */
    TLS_CERT_N_FLAWS
};

/* The flaw's name as scenarios and the ready line spell it ("good", "expired",
 * "not-yet-valid", "wrong-name", "self-signed", "untrusted-ca"); tls_cert_flaw_parse()
 * the reverse (false: no such name). One table serves both. */
const char *tls_cert_flaw_name(enum tls_cert_flaw f);
bool tls_cert_flaw_parse(const char *name, enum tls_cert_flaw *out);

/* The only name in a TLS_CERT_WRONG_NAME leaf (the .invalid TLD of RFC 6761: it can never
 * be a name a client connects to). */
#define TLS_CERT_WRONG_NAME_DNS "wrong-name.invalid"
/* How long a good leaf and a CA are valid, counted from a day before `now` (the day back
 * covers clocks a little behind ours). Browsers accept at most 398 days from public CAs;
 * a local CA is exempt, but a short life costs nothing: serve makes them at every start. */
#define TLS_CERT_LEAF_DAYS 30
#define TLS_CERT_CA_DAYS 365

struct tls_cert;

/* A fresh CA named common_name (borrowed), valid around now. Never NULL: a failure of
 * GnuTLS to make a key or sign is fatal (it means a broken library, like out-of-memory). */
struct tls_cert *tls_cert_ca_new(const char *common_name, time_t now);

/* A leaf for the n names (borrowed; each a DNS name such as "a.localhost" or
 * "*.localhost", or an IPv4/IPv6 address such as "127.0.0.1" or "::1"), signed by ca
 * (borrowed; it must come from tls_cert_ca_new() or be a loaded CA with its key), with the
 * given flaw. The subject's common name is the first name. Returns NULL and sets *err when
 * a name is empty or longer than 253 bytes, n is 0, or ca cannot sign (no key, not a CA). */
struct tls_cert *tls_cert_leaf_new(const struct tls_cert *ca, const char *const *names, size_t n,
                                   enum tls_cert_flaw flaw, time_t now, char **err);

/* The certificate from cert_file (PEM; the first certificate is this one, any others its
 * chain, served after it) and its private key from key_file (PEM: PKCS#8, or PKCS#1/SEC1;
 * not encrypted), both borrowed paths. NULL and *err ("FILE: what is wrong") when a file
 * cannot be read, holds no PEM certificate/key, or the key is not the certificate's. */
struct tls_cert *tls_cert_load(const char *cert_file, const char *key_file, char **err);

/* The PEM text of ca_file (borrowed path), checked to hold at least one certificate, each
 * parseable: owned by the caller. NULL and *err as for tls_cert_load(). */
char *tls_cert_load_ca(const char *ca_file, char **err);

void tls_cert_free(struct tls_cert *c);

/* Borrowed, NUL-terminated, valid while c lives: the certificate and its chain in PEM
 * (what a server presents: MHD_OPTION_HTTPS_MEM_CERT), and the private key in PKCS#8 PEM
 * (MHD_OPTION_HTTPS_MEM_KEY). */
const char *tls_cert_pem(const struct tls_cert *c);
const char *tls_cert_key_pem(const struct tls_cert *c);

/* Is c a CA (basic constraints CA:TRUE)? Every struct tls_cert carries its key. */
bool tls_cert_is_ca(const struct tls_cert *c);

/* The SHA-256 of the certificate's SubjectPublicKeyInfo, in base64 (44 characters and a
 * NUL): what Chromium's --ignore-certificate-errors-spki-list pins (docs/tls.md). */
void tls_cert_spki_sha256(const struct tls_cert *c, char out[45]);

/* Write text to path (borrowed), replacing the file, with mode 0600 when private (a key)
 * and 0644 otherwise. false and *err ("PATH: strerror") on failure. */
bool tls_cert_write(const char *path, const char *text, bool private, char **err);

#endif
