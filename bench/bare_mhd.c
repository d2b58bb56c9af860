/* bare_mhd — libmicrohttpd alone, as the harness runs it, serving the 13-byte body: the
 * ceiling make bench compares the harness with (what is out of MHD's reach is out of ours).
 *
 *   bare_mhd [--pool BYTES] [--threads N]
 *
 * Listens on an ephemeral loopback port and prints it on stdout as {"port": N}; runs until
 * stdin closes. The same daemon flags as the harness (internal polling thread, poll(),
 * suspend/resume allowed), the same per-connection pool (MHD_OPTION_CONNECTION_MEMORY_LIMIT)
 * and one response built at start, shared by every request (MHD_RESPMEM_PERSISTENT), queued
 * on the access handler's second call (on the first, MHD 0.9.75 would close the connection).
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char BODY[] = "hello, world\n";
static struct MHD_Response *hello;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    static int first_call;
    if (!*con_cls) { /* the headers only: the body (none here) follows */
        *con_cls = &first_call;
        return MHD_YES;
    }
    *upload_size = 0;
    return MHD_queue_response(conn, MHD_HTTP_OK, hello);
}

int main(int argc, char **argv)
{
    size_t pool = 4096;
    unsigned threads = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--pool"))
            pool = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--threads"))
            threads = (unsigned)strtoul(argv[i + 1], NULL, 10);
    }
    hello = MHD_create_response_from_buffer(sizeof BODY - 1, (void *)BODY, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(hello, "Content-Type", "text/plain");
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC;
    struct MHD_Daemon *d =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         pool, MHD_OPTION_CONNECTION_LIMIT, 20000u, MHD_OPTION_LISTEN_BACKLOG_SIZE,
                         4096u, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bare_mhd: MHD_start_daemon failed\n");
        return 1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("{\"port\": %u}\n", di ? di->port : 0);
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {
    }
    MHD_stop_daemon(d);
    MHD_destroy_response(hello);
    return 0;
}
