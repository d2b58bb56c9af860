/* test_tls_cert — the CA and leaves of tls_cert, checked with GnuTLS's own verifier: a good
 * leaf verifies against the CA for each of its names, and each deliberately wrong leaf fails
 * for its one reason (the same check with that reason waived passes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
/* cmocka needs the headers above first */
#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include "tls_cert.h"

static const char *const NAMES[] = {"localhost", "a.localhost", "b.localhost", "127.0.0.1", "::1"};
#define N_NAMES (sizeof NAMES / sizeof NAMES[0])

static gnutls_x509_crt_t *parse(const char *pem, unsigned *n)
{
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    gnutls_x509_crt_t *list = NULL;
    assert_int_equal(gnutls_x509_crt_list_import2(&list, n, &d, GNUTLS_X509_FMT_PEM, 0), 0);
    return list;
}

static void free_list(gnutls_x509_crt_t *list, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
}

/* The verification status of chain_pem against the trust anchors in ca_pem, for hostname
 * (NULL: no name check), with extra verify flags. */
static unsigned verify(const char *chain_pem, const char *ca_pem, const char *hostname,
                       unsigned flags)
{
    gnutls_x509_trust_list_t tl;
    assert_int_equal(gnutls_x509_trust_list_init(&tl, 0), 0);
    gnutls_datum_t ca = {(unsigned char *)ca_pem, (unsigned)strlen(ca_pem)};
    assert_true(gnutls_x509_trust_list_add_trust_mem(tl, &ca, NULL, GNUTLS_X509_FMT_PEM, 0, 0) > 0);
    unsigned n = 0;
    gnutls_x509_crt_t *chain = parse(chain_pem, &n);
    gnutls_typed_vdata_st data[2] = {
        {GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER, 0},
        {GNUTLS_DT_DNS_HOSTNAME, (unsigned char *)hostname, 0},
    };
    unsigned status = ~0u;
    assert_int_equal(gnutls_x509_trust_list_verify_crt2(tl, chain, n, data, hostname ? 2 : 1, flags,
                                                        &status, NULL),
                     0);
    free_list(chain, n);
    gnutls_x509_trust_list_deinit(tl, 1);
    return status;
}

static bool has_ip(const char *pem, const char *text)
{
    unsigned char ip[16];
    unsigned len = strchr(text, ':') ? 16 : 4;
    assert_int_equal(inet_pton(len == 16 ? AF_INET6 : AF_INET, text, ip), 1);
    unsigned n = 0;
    gnutls_x509_crt_t *l = parse(pem, &n);
    bool ok = gnutls_x509_crt_check_ip(l[0], ip, len, 0);
    free_list(l, n);
    return ok;
}

static struct tls_cert *leaf(const struct tls_cert *ca, enum tls_cert_flaw flaw)
{
    char *err = NULL;
    struct tls_cert *c = tls_cert_leaf_new(ca, NAMES, N_NAMES, flaw, time(NULL), &err);
    assert_non_null(c);
    assert_null(err);
    return c;
}

static void test_ca(void **state)
{
    (void)state;
    struct tls_cert *ca = tls_cert_ca_new("Comet Harness test CA", time(NULL));
    assert_true(tls_cert_is_ca(ca));
    assert_non_null(strstr(tls_cert_pem(ca), "-----BEGIN CERTIFICATE-----"));
    assert_non_null(strstr(tls_cert_key_pem(ca), "-----BEGIN PRIVATE KEY-----"));
    /* a trust anchor verifies as itself */
    assert_int_equal(verify(tls_cert_pem(ca), tls_cert_pem(ca), NULL, 0), 0);
    unsigned n = 0;
    gnutls_x509_crt_t *l = parse(tls_cert_pem(ca), &n);
    assert_int_equal(n, 1);
    unsigned bits = 0;
    assert_int_equal(gnutls_x509_crt_get_pk_algorithm(l[0], &bits), GNUTLS_PK_ECDSA);
    assert_int_equal(bits, 256);
    unsigned usage = 0;
    assert_true(gnutls_x509_crt_get_key_usage(l[0], &usage, NULL) >= 0);
    assert_true(usage & GNUTLS_KEY_KEY_CERT_SIGN);
    free_list(l, n);
    tls_cert_free(ca);
}

static void test_good_leaf(void **state)
{
    (void)state;
    struct tls_cert *ca = tls_cert_ca_new("Comet Harness test CA", time(NULL));
    struct tls_cert *c = leaf(ca, TLS_CERT_GOOD);
    assert_false(tls_cert_is_ca(c));
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(verify(tls_cert_pem(c), tls_cert_pem(ca), NAMES[i], 0), 0);
    assert_true(has_ip(tls_cert_pem(c), "127.0.0.1"));
    assert_true(has_ip(tls_cert_pem(c), "::1"));
    assert_false(has_ip(tls_cert_pem(c), "127.0.0.2"));
    /* a name it does not carry */
    assert_int_equal(verify(tls_cert_pem(c), tls_cert_pem(ca), "c.localhost", 0),
                     GNUTLS_CERT_INVALID | GNUTLS_CERT_UNEXPECTED_OWNER);
    /* the chain is the leaf alone; its validity is about now */
    unsigned n = 0;
    gnutls_x509_crt_t *l = parse(tls_cert_pem(c), &n);
    assert_int_equal(n, 1);
    time_t now = time(NULL);
    assert_true(gnutls_x509_crt_get_activation_time(l[0]) <= now - 3600);
    assert_true(gnutls_x509_crt_get_expiration_time(l[0]) >=
                now + (TLS_CERT_LEAF_DAYS - 1) * 86400);
    char cn[64];
    size_t cn_len = sizeof cn;
    assert_int_equal(
        gnutls_x509_crt_get_dn_by_oid(l[0], GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_len), 0);
    assert_string_equal(cn, "localhost");
    free_list(l, n);
    /* another CA does not vouch for it */
    struct tls_cert *other = tls_cert_ca_new("another CA", time(NULL));
    assert_int_equal(verify(tls_cert_pem(c), tls_cert_pem(other), "localhost", 0),
                     GNUTLS_CERT_INVALID | GNUTLS_CERT_SIGNER_NOT_FOUND);
    tls_cert_free(other);
    tls_cert_free(c);
    tls_cert_free(ca);
}

static void test_wildcard(void **state)
{
    (void)state;
    struct tls_cert *ca = tls_cert_ca_new("Comet Harness test CA", time(NULL));
    const char *names[] = {"*.example.test"};
    char *err = NULL;
    struct tls_cert *c = tls_cert_leaf_new(ca, names, 1, TLS_CERT_GOOD, time(NULL), &err);
    assert_non_null(c);
    assert_int_equal(verify(tls_cert_pem(c), tls_cert_pem(ca), "a.example.test", 0), 0);
    assert_int_not_equal(verify(tls_cert_pem(c), tls_cert_pem(ca), "a.b.example.test", 0), 0);
    tls_cert_free(c);
    tls_cert_free(ca);
}

/* Each flaw: fails with exactly its reason; passes with that reason waived. */
static void test_flaws(void **state)
{
    (void)state;
    struct tls_cert *ca = tls_cert_ca_new("Comet Harness test CA", time(NULL));
    const char *ca_pem = tls_cert_pem(ca);
    const unsigned bad = GNUTLS_CERT_INVALID;

    struct tls_cert *c = leaf(ca, TLS_CERT_EXPIRED);
    assert_int_equal(verify(tls_cert_pem(c), ca_pem, "a.localhost", 0), bad | GNUTLS_CERT_EXPIRED);
    assert_int_equal(
        verify(tls_cert_pem(c), ca_pem, "a.localhost", GNUTLS_VERIFY_DISABLE_TIME_CHECKS), 0);
    tls_cert_free(c);

    c = leaf(ca, TLS_CERT_NOT_YET_VALID);
    assert_int_equal(verify(tls_cert_pem(c), ca_pem, "a.localhost", 0),
                     bad | GNUTLS_CERT_NOT_ACTIVATED);
    assert_int_equal(
        verify(tls_cert_pem(c), ca_pem, "a.localhost", GNUTLS_VERIFY_DISABLE_TIME_CHECKS), 0);
    tls_cert_free(c);

    c = leaf(ca, TLS_CERT_WRONG_NAME);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(verify(tls_cert_pem(c), ca_pem, NAMES[i], 0),
                         bad | GNUTLS_CERT_UNEXPECTED_OWNER);
    assert_false(has_ip(tls_cert_pem(c), "127.0.0.1"));
    assert_int_equal(verify(tls_cert_pem(c), ca_pem, TLS_CERT_WRONG_NAME_DNS, 0), 0);
    tls_cert_free(c);

    c = leaf(ca, TLS_CERT_SELF_SIGNED);
    assert_false(tls_cert_is_ca(c));
    assert_int_equal(verify(tls_cert_pem(c), ca_pem, "a.localhost", 0),
                     bad | GNUTLS_CERT_SIGNER_NOT_FOUND);
    /* trusted as itself (pinned), it is otherwise a sound certificate */
    assert_int_equal(verify(tls_cert_pem(c), tls_cert_pem(c), "a.localhost", 0), 0);
    tls_cert_free(c);

    c = leaf(ca, TLS_CERT_UNTRUSTED_CA);
    unsigned n = 0;
    gnutls_x509_crt_t *l = parse(tls_cert_pem(c), &n);
    assert_int_equal(n, 2); /* the leaf, then the CA nobody trusts */
    gnutls_datum_t other;
    assert_int_equal(gnutls_x509_crt_export2(l[1], GNUTLS_X509_FMT_PEM, &other), 0);
    free_list(l, n);
    assert_int_equal(verify(tls_cert_pem(c), ca_pem, "a.localhost", 0),
                     bad | GNUTLS_CERT_SIGNER_NOT_FOUND);
    char *other_pem = strndup((const char *)other.data, other.size);
    gnutls_free(other.data);
    assert_int_equal(verify(tls_cert_pem(c), other_pem, "a.localhost", 0), 0);
    free(other_pem);
    tls_cert_free(c);

    tls_cert_free(ca);
}

static void test_flaw_names(void **state)
{
    (void)state;
    for (int i = 0; i < TLS_CERT_N_FLAWS; i++) {
        enum tls_cert_flaw f;
        assert_true(tls_cert_flaw_parse(tls_cert_flaw_name((enum tls_cert_flaw)i), &f));
        assert_int_equal(f, i);
    }
    enum tls_cert_flaw f;
    assert_false(tls_cert_flaw_parse("expird", &f));
    assert_string_equal(tls_cert_flaw_name(TLS_CERT_UNTRUSTED_CA), "untrusted-ca");
}

static void test_bad_leaf_requests(void **state)
{
    (void)state;
    struct tls_cert *ca = tls_cert_ca_new("Comet Harness test CA", time(NULL));
    char *err = NULL;
    assert_null(tls_cert_leaf_new(ca, NAMES, 0, TLS_CERT_GOOD, time(NULL), &err));
    assert_non_null(strstr(err, "at least one name"));
    free(err);
    err = NULL;
    const char *empty[] = {"a.localhost", ""};
    assert_null(tls_cert_leaf_new(ca, empty, 2, TLS_CERT_GOOD, time(NULL), &err));
    assert_string_equal(err, "certificate name 2 is empty");
    free(err);
    err = NULL;
    struct tls_cert *c = leaf(ca, TLS_CERT_GOOD);
    assert_null(tls_cert_leaf_new(c, NAMES, 1, TLS_CERT_GOOD, time(NULL), &err));
    assert_non_null(strstr(err, "must be a CA"));
    free(err);
    tls_cert_free(c);
    tls_cert_free(ca);
}

/* --- files ----------------------------------------------------------------------------- */

static char dir[] = "/tmp/test_tls_cert.XXXXXX";

static char *path(const char *name)
{
    static char buf[4][256];
    static int i;
    char *p = buf[i++ % 4];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static void put(const char *name, const char *text, bool private)
{
    char *err = NULL;
    assert_true(tls_cert_write(path(name), text, private, &err));
    assert_null(err);
}

static void expect_load_error(const char *cert, const char *key, const char *want)
{
    char *err = NULL;
    assert_null(tls_cert_load(path(cert), path(key), &err));
    assert_non_null(err);
    if (!strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    free(err);
}

static void test_write_and_load(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    struct tls_cert *ca = tls_cert_ca_new("Comet Harness test CA", time(NULL));
    struct tls_cert *c = leaf(ca, TLS_CERT_GOOD);
    struct tls_cert *u = leaf(ca, TLS_CERT_UNTRUSTED_CA);
    put("ca.pem", tls_cert_pem(ca), false);
    put("ca.key", tls_cert_key_pem(ca), true);
    put("leaf.pem", tls_cert_pem(c), false);
    put("leaf.key", tls_cert_key_pem(c), true);
    put("chain.pem", tls_cert_pem(u), false);
    put("chain.key", tls_cert_key_pem(u), true);
    put("junk.pem", "hello\n", false);
    put("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", false);

    struct stat st;
    assert_int_equal(stat(path("leaf.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(path("leaf.pem"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    char *err = NULL;
    struct tls_cert *back = tls_cert_load(path("leaf.pem"), path("leaf.key"), &err);
    assert_non_null(back);
    assert_string_equal(tls_cert_pem(back), tls_cert_pem(c));
    char a[45], b[45];
    tls_cert_spki_sha256(back, a);
    tls_cert_spki_sha256(c, b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 44);
    tls_cert_free(back);

    /* a chain is served whole */
    back = tls_cert_load(path("chain.pem"), path("chain.key"), &err);
    assert_non_null(back);
    assert_string_equal(tls_cert_pem(back), tls_cert_pem(u));
    tls_cert_free(back);

    /* a loaded CA with its key signs leaves */
    back = tls_cert_load(path("ca.pem"), path("ca.key"), &err);
    assert_non_null(back);
    assert_true(tls_cert_is_ca(back));
    struct tls_cert *l2 = leaf(back, TLS_CERT_GOOD);
    assert_int_equal(verify(tls_cert_pem(l2), tls_cert_pem(ca), "b.localhost", 0), 0);
    tls_cert_free(l2);
    tls_cert_free(back);

    char *ca_text = tls_cert_load_ca(path("ca.pem"), &err);
    assert_non_null(ca_text);
    assert_string_equal(ca_text, tls_cert_pem(ca));
    free(ca_text);

    expect_load_error("leaf.pem", "ca.key",
                      "ca.key: this key is not the key of the first certificate");
    expect_load_error("missing.pem", "leaf.key", "missing.pem: No such file or directory");
    expect_load_error("leaf.pem", "missing.key", "missing.key: No such file or directory");
    expect_load_error("junk.pem", "leaf.key", "junk.pem: no PEM certificate");
    expect_load_error("broken.pem", "leaf.key", "broken.pem: not a valid PEM certificate");
    expect_load_error("leaf.pem", "junk.pem", "junk.pem: not a valid unencrypted PEM private key");
    assert_null(tls_cert_load_ca(path("junk.pem"), &err));
    assert_non_null(strstr(err, "junk.pem: no PEM certificate"));
    free(err);

    assert_false(tls_cert_write("/nonexistent-dir/x.pem", "x", false, &err));
    assert_string_equal(err, "/nonexistent-dir/x.pem: No such file or directory");
    free(err);

    const char *files[] = {"ca.pem",    "ca.key",    "leaf.pem", "leaf.key",
                           "chain.pem", "chain.key", "junk.pem", "broken.pem"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(path(files[i]));
    rmdir(dir);
    tls_cert_free(u);
    tls_cert_free(c);
    tls_cert_free(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca),
        cmocka_unit_test(test_good_leaf),
        cmocka_unit_test(test_wildcard),
        cmocka_unit_test(test_flaws),
        cmocka_unit_test(test_flaw_names),
        cmocka_unit_test(test_bad_leaf_requests),
        cmocka_unit_test(test_write_and_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
