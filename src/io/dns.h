/*
 * Name resolution that never blocks the loop: numeric addresses are parsed
 * inline, names are looked up with getaddrinfo on the thread pool's slow
 * class (which can never take every worker, so lookups stuck on a dead DNS
 * server cannot starve file work).
 */
#ifndef CORIO_DNS_H
#define CORIO_DNS_H

#include "../core/internal.h"

#include <netdb.h>

/* Resolve host:port into a getaddrinfo list in *out (the caller frees it
 * with corio__resolve_free).  host NULL or "" gives the wildcard address with
 * AI_PASSIVE in flags (else loopback), like getaddrinfo.  socktype is
 * SOCK_STREAM, SOCK_DGRAM or 0 for any; flags are extra AI_* hints
 * (AI_PASSIVE, AI_ADDRCONFIG...).  A numeric host (IPv4, IPv6, with or
 * without a %scope) never suspends; a name suspends the calling task
 * (which must be a task) while a pool worker runs getaddrinfo.
 * Returns 0, -ENOENT (unknown host or no address of the wanted kind),
 * -EAGAIN (temporary resolver failure), -ENOMEM, -EINVAL (bad hints),
 * -ECANCELED / -CORIO_EDEADLINE (the task was interrupted: the lookup's result is
 * freed when it finishes), or another -errno.  Under the sim backend
 * (corio/sim.h) names are the simulated hosts' and "localhost", resolved
 * in memory to one IPv4 address without suspending. */
int corio__resolve(const char *host, uint16_t port, int socktype, int flags, struct addrinfo **out);

/* Free a list from corio__resolve (NULL: nothing).  Use it, not
 * freeaddrinfo: under the sim backend the list is corio's own. */
void corio__resolve_free(struct addrinfo *res);

/* getaddrinfo's EAI_* code as a -errno value (the mapping above). */
int corio__gai_error(int eai, int saved_errno);

#endif
