/*
 * Socket address text: "host:port" for IPv4, "[v6]:port" for IPv6 (so the
 * port is never ambiguous), the path for a Unix socket ("@name" for an
 * abstract one, "(unnamed)" for an unbound one).  Used for task names
 * ("conn 127.0.0.1:5555"), log lines and by applications.
 */
#include "../core/internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

char *corio_addr_format(const struct sockaddr *addr, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];
    if (!buf || cap == 0 || !addr) {
        if (buf && cap)
            buf[0] = '\0';
        errno = EINVAL;
        return NULL;
    }
    switch (addr->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(a->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)addr;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *a = (const struct sockaddr_un *)(const void *)addr;
        if (a->sun_path[0])
            snprintf(buf, cap, "%.*s", (int)sizeof a->sun_path, a->sun_path);
        else if (a->sun_path[1]) /* abstract, written as Go and systemd do */
            snprintf(buf, cap, "@%.*s", (int)sizeof a->sun_path - 1, a->sun_path + 1);
        else /* an unbound socket (a client's end): the address is empty */
            snprintf(buf, cap, "(unnamed)");
        break;
    }
    default:
        snprintf(buf, cap, "(family %d)", addr->sa_family);
        break;
    }
    return buf;
}
