/* arrival — when a request's bytes reached this machine (arrival.h). */
#include "arrival.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

static unsigned jiffy_ms = ARRIVAL_JIFFY_MAX_MS;

/* A coarse clock ticks once a jiffy: its resolution is the kernel's 1/HZ. TCP_INFO's
 * milliseconds are whole jiffies, rounded up when a jiffy is not a whole number of them
 * (HZ=300): one more then. */
static void jiffy_init(void)
{
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0 || res.tv_sec != 0 || res.tv_nsec <= 0)
        return;
    unsigned long ns = (unsigned long)res.tv_nsec;
    unsigned ms = (unsigned)((ns + 999999) / 1000000) + (ns % 1000000 ? 1 : 0);
    if (ms < ARRIVAL_JIFFY_MAX_MS)
        jiffy_ms = ms;
}

unsigned arrival_jiffy_ms(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, jiffy_init);
    return jiffy_ms;
}

uint64_t arrival_lag_us(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_last_data_recv) + sizeof ti.tcpi_last_data_recv)
        return 0;
    unsigned j = arrival_jiffy_ms();
    if (ti.tcpi_last_data_recv <= j)
        return 0;
    return (uint64_t)(ti.tcpi_last_data_recv - j) * 1000u;
}
