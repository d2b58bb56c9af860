/* tls_cert — X.509 certificates for the HTTPS origins, with GnuTLS (see tls_cert.h). */
#include "tls_cert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include "xalloc.h"

#define DAY (24 * 60 * 60)

struct tls_cert {
    gnutls_x509_crt_t crt;     /* the first certificate: the one presented */
    gnutls_x509_privkey_t key; /* its private key */
    char *cert_pem;            /* crt, then its chain */
    char *key_pem;             /* key, PKCS#8 */
};

static const char *const flaw_names[TLS_CERT_N_FLAWS] = {
    [TLS_CERT_GOOD] = "good",
    [TLS_CERT_EXPIRED] = "expired",
    [TLS_CERT_NOT_YET_VALID] = "not-yet-valid",
    [TLS_CERT_WRONG_NAME] = "wrong-name",
    [TLS_CERT_SELF_SIGNED] = "self-signed",
    [TLS_CERT_UNTRUSTED_CA] = "untrusted-ca",
};

const char *tls_cert_flaw_name(enum tls_cert_flaw f)
{
    return (unsigned)f < TLS_CERT_N_FLAWS ? flaw_names[f] : "?";
}

bool tls_cert_flaw_parse(const char *name, enum tls_cert_flaw *out)
{
    for (int i = 0; i < TLS_CERT_N_FLAWS; i++)
        if (strcmp(name, flaw_names[i]) == 0) {
            *out = (enum tls_cert_flaw)i;
            return true;
        }
    return false;
}

/* --- helpers --------------------------------------------------------------------------- */

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

/* GnuTLS failing to make or sign a certificate with parameters we chose is a broken
 * library, not bad input: fatal, as out-of-memory is. */
static void must(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "harness: GnuTLS: %s: %s\n", what, gnutls_strerror(rc));
        abort();
    }
}

/* A datum GnuTLS allocated, as an xalloc'd NUL-terminated string (the datum is freed). */
static char *datum_to_string(gnutls_datum_t *d)
{
    char *s = xstrndup((const char *)d->data, d->size);
    gnutls_free(d->data);
    d->data = NULL;
    return s;
}

static char *export_crt(gnutls_x509_crt_t crt)
{
    gnutls_datum_t d;
    must(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d), "export certificate");
    return datum_to_string(&d);
}

static char *export_key(gnutls_x509_privkey_t key)
{
    gnutls_datum_t d;
    must(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &d),
         "export key");
    return datum_to_string(&d);
}

static gnutls_x509_privkey_t new_key(void)
{
    gnutls_x509_privkey_t key;
    must(gnutls_x509_privkey_init(&key), "key init");
    must(gnutls_x509_privkey_generate2(
             key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0),
         "generate ECDSA P-256 key");
    return key;
}

/* A certificate for key with the common name, validity and a random positive serial; the
 * extensions and the signature are the caller's. */
static gnutls_x509_crt_t new_crt(gnutls_x509_privkey_t key, const char *cn, time_t from,
                                 time_t until)
{
    gnutls_x509_crt_t crt;
    must(gnutls_x509_crt_init(&crt), "certificate init");
    must(gnutls_x509_crt_set_version(crt, 3), "set version");
    unsigned char serial[16];
    must(gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial), "random serial");
    serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x40); /* positive, 16 bytes long */
    must(gnutls_x509_crt_set_serial(crt, serial, sizeof serial), "set serial");
    must(gnutls_x509_crt_set_activation_time(crt, from), "set activation time");
    must(gnutls_x509_crt_set_expiration_time(crt, until), "set expiration time");
    must(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)),
         "set common name");
    must(gnutls_x509_crt_set_key(crt, key), "set key");
    unsigned char id[64];
    size_t id_len = sizeof id;
    must(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &id_len), "key id");
    must(gnutls_x509_crt_set_subject_key_id(crt, id, id_len), "set subject key id");
    return crt;
}

/* Sign crt with issuer's key; issuer NULL: self-signed with self_key. */
static void sign(gnutls_x509_crt_t crt, const struct tls_cert *issuer,
                 gnutls_x509_privkey_t self_key)
{
    gnutls_privkey_t pk;
    must(gnutls_privkey_init(&pk), "privkey init");
    must(gnutls_privkey_import_x509(pk, issuer ? issuer->key : self_key, 0), "privkey import");
    if (issuer) {
        unsigned char id[64];
        size_t id_len = sizeof id;
        unsigned critical;
        if (gnutls_x509_crt_get_subject_key_id(issuer->crt, id, &id_len, &critical) >= 0)
            must(gnutls_x509_crt_set_authority_key_id(crt, id, id_len), "set authority key id");
    }
    must(gnutls_x509_crt_privkey_sign(crt, issuer ? issuer->crt : crt, pk, GNUTLS_DIG_SHA256, 0),
         "sign certificate");
    gnutls_privkey_deinit(pk);
}

static struct tls_cert *wrap(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, char *chain_pem)
{
    struct tls_cert *c = xcalloc(1, sizeof *c);
    c->crt = crt;
    c->key = key;
    c->cert_pem = chain_pem ? chain_pem : export_crt(crt);
    c->key_pem = export_key(key);
    return c;
}

/* --- making ---------------------------------------------------------------------------- */

struct tls_cert *tls_cert_ca_new(const char *common_name, time_t now)
{
    gnutls_x509_privkey_t key = new_key();
    gnutls_x509_crt_t crt = new_crt(key, common_name, now - DAY, now + TLS_CERT_CA_DAYS * DAY);
    must(gnutls_x509_crt_set_basic_constraints(crt, 1, 0), "set basic constraints");
    must(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN),
         "set key usage");
    sign(crt, NULL, key);
    return wrap(crt, key, NULL);
}

static void add_name(gnutls_x509_crt_t crt, const char *name)
{
    unsigned char ip[16];
    if (inet_pton(AF_INET, name, ip) == 1)
        must(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4,
                                                  GNUTLS_FSAN_APPEND),
             "add IPv4 name");
    else if (inet_pton(AF_INET6, name, ip) == 1)
        must(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16,
                                                  GNUTLS_FSAN_APPEND),
             "add IPv6 name");
    else
        must(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                                  (unsigned)strlen(name), GNUTLS_FSAN_APPEND),
             "add DNS name");
}

struct tls_cert *tls_cert_leaf_new(const struct tls_cert *ca, const char *const *names, size_t n,
                                   enum tls_cert_flaw flaw, time_t now, char **err)
{
    if (n == 0) {
        *err = xstrdup("a certificate needs at least one name");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!names[i][0] || strlen(names[i]) > 253) {
            *err = fmt("certificate name %zu is %s", i + 1, names[i][0] ? "too long" : "empty");
            return NULL;
        }
    if (!tls_cert_is_ca(ca)) {
        *err = xstrdup("the issuer of a certificate must be a CA (basic constraints CA:TRUE)");
        return NULL;
    }

    time_t from = now - DAY, until = now + TLS_CERT_LEAF_DAYS * DAY;
    if (flaw == TLS_CERT_EXPIRED) {
        from = now - 31 * DAY;
        until = now - DAY;
    } else if (flaw == TLS_CERT_NOT_YET_VALID) {
        from = now + DAY;
        until = now + 31 * DAY;
    }
    const char *wrong = TLS_CERT_WRONG_NAME_DNS;
    const char *const *use = flaw == TLS_CERT_WRONG_NAME ? &wrong : names;
    size_t n_use = flaw == TLS_CERT_WRONG_NAME ? 1 : n;

    gnutls_x509_privkey_t key = new_key();
    gnutls_x509_crt_t crt = new_crt(key, use[0], from, until);
    for (size_t i = 0; i < n_use; i++)
        add_name(crt, use[i]);
    must(gnutls_x509_crt_set_basic_constraints(crt, 0, -1), "set basic constraints");
    must(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), "set key usage");
    must(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0),
         "set extended key usage");

    char *chain = NULL;
    if (flaw == TLS_CERT_SELF_SIGNED) {
        sign(crt, NULL, key);
    } else if (flaw == TLS_CERT_UNTRUSTED_CA) {
        struct tls_cert *other = tls_cert_ca_new("Comet Harness untrusted CA", now);
        sign(crt, other, NULL);
        char *leaf = export_crt(crt);
        chain = fmt("%s%s", leaf, other->cert_pem);
        free(leaf);
        tls_cert_free(other);
    } else {
        sign(crt, ca, NULL);
    }
    return wrap(crt, key, chain);
}

/* --- loading --------------------------------------------------------------------------- */

/* The whole file, NUL-terminated, or NULL and *err. */
static char *read_file(const char *path, size_t *len, char **err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = fmt("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f);
    int e = errno;
    fclose(f);
    if (bad) {
        free(buf);
        *err = fmt("%s: %s", path, strerror(e));
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Every certificate of a PEM text (*n of them, n >= 1), or NULL and *err. */
static gnutls_x509_crt_t *parse_crts(const char *path, const char *text, size_t len, unsigned *n,
                                     char **err)
{
    if (!strstr(text, "-----BEGIN CERTIFICATE-----")) {
        *err = fmt("%s: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file", path);
        return NULL;
    }
    gnutls_datum_t d = {(unsigned char *)text, (unsigned)len};
    gnutls_x509_crt_t *list = NULL;
    int rc = gnutls_x509_crt_list_import2(&list, n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0) {
        *err = fmt("%s: not a valid PEM certificate: %s", path, gnutls_strerror(rc));
        return NULL;
    }
    return list;
}

static void free_crts(gnutls_x509_crt_t *list, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
}

struct tls_cert *tls_cert_load(const char *cert_file, const char *key_file, char **err)
{
    size_t cert_len, key_len;
    char *cert_text = read_file(cert_file, &cert_len, err);
    if (!cert_text)
        return NULL;
    unsigned n = 0;
    gnutls_x509_crt_t *list = parse_crts(cert_file, cert_text, cert_len, &n, err);
    if (!list) {
        free(cert_text);
        return NULL;
    }
    char *key_text = read_file(key_file, &key_len, err);
    if (!key_text) {
        free_crts(list, n);
        free(cert_text);
        return NULL;
    }
    gnutls_x509_privkey_t key;
    must(gnutls_x509_privkey_init(&key), "key init");
    gnutls_datum_t kd = {(unsigned char *)key_text, (unsigned)key_len};
    int rc = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN);
    free(key_text);
    if (rc < 0) {
        *err = rc == GNUTLS_E_DECRYPTION_FAILED
                   ? fmt("%s: the key is encrypted; give it unencrypted", key_file)
                   : fmt("%s: not a valid unencrypted PEM private key: %s", key_file,
                         gnutls_strerror(rc));
        gnutls_x509_privkey_deinit(key);
        free_crts(list, n);
        free(cert_text);
        return NULL;
    }
    unsigned char a[64], b[64];
    size_t a_len = sizeof a, b_len = sizeof b;
    if (gnutls_x509_crt_get_key_id(list[0], GNUTLS_KEYID_USE_SHA256, a, &a_len) < 0 ||
        gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &b_len) < 0 ||
        a_len != b_len || memcmp(a, b, a_len) != 0) {
        *err =
            fmt("%s: this key is not the key of the first certificate in %s", key_file, cert_file);
        gnutls_x509_privkey_deinit(key);
        free_crts(list, n);
        free(cert_text);
        return NULL;
    }
    gnutls_x509_crt_t first = list[0];
    list[0] = NULL;
    for (unsigned i = 1; i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
    return wrap(first, key, cert_text);
}

char *tls_cert_load_ca(const char *ca_file, char **err)
{
    size_t len;
    char *text = read_file(ca_file, &len, err);
    if (!text)
        return NULL;
    unsigned n = 0;
    gnutls_x509_crt_t *list = parse_crts(ca_file, text, len, &n, err);
    if (!list) {
        free(text);
        return NULL;
    }
    free_crts(list, n);
    return text;
}

/* --- reading --------------------------------------------------------------------------- */

void tls_cert_free(struct tls_cert *c)
{
    if (!c)
        return;
    gnutls_x509_crt_deinit(c->crt);
    gnutls_x509_privkey_deinit(c->key);
    free(c->cert_pem);
    free(c->key_pem);
    free(c);
}

const char *tls_cert_pem(const struct tls_cert *c)
{
    return c->cert_pem;
}

const char *tls_cert_key_pem(const struct tls_cert *c)
{
    return c->key_pem;
}

bool tls_cert_is_ca(const struct tls_cert *c)
{
    unsigned critical = 0;
    return gnutls_x509_crt_get_basic_constraints(c->crt, &critical, NULL, NULL) == 1;
}

void tls_cert_spki_sha256(const struct tls_cert *c, char out[45])
{
    gnutls_pubkey_t pub;
    must(gnutls_pubkey_init(&pub), "pubkey init");
    must(gnutls_pubkey_import_x509(pub, c->crt, 0), "pubkey import");
    gnutls_datum_t der;
    must(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der), "export SPKI");
    unsigned char hash[32];
    must(gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, hash), "hash SPKI");
    gnutls_free(der.data);
    gnutls_pubkey_deinit(pub);
    gnutls_datum_t raw = {hash, sizeof hash}, b64;
    must(gnutls_base64_encode2(&raw, &b64), "base64");
    size_t len = b64.size < 44 ? b64.size : 44;
    memcpy(out, b64.data, len);
    out[len] = '\0';
    gnutls_free(b64.data);
}

bool tls_cert_write(const char *path, const char *text, bool private, char **err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, private ? 0600 : 0644);
    if (fd < 0) {
        *err = fmt("%s: %s", path, strerror(errno));
        return false;
    }
    if (private && fchmod(fd, 0600) != 0) {
        *err = fmt("%s: %s", path, strerror(errno));
        close(fd);
        return false;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            *err = fmt("%s: %s", path, strerror(errno));
            close(fd);
            return false;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        *err = fmt("%s: %s", path, strerror(errno));
        return false;
    }
    return true;
}
