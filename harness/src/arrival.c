/* arrival — when a request's bytes reached this machine (arrival.h). */
#include "arrival.h"

#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

uint64_t arrival_lag_us(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_last_data_recv) + sizeof ti.tcpi_last_data_recv)
        return 0;
    if (ti.tcpi_last_data_recv <= ARRIVAL_JIFFY_MAX_MS)
        return 0;
    return (uint64_t)(ti.tcpi_last_data_recv - ARRIVAL_JIFFY_MAX_MS) * 1000u;
}
