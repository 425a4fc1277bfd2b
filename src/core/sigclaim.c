/*
 * Who owns each signal number, process-wide: one table shared by every
 * part of corio that installs a handler (the task dump's signal,
 * src/core/introspect.c, and signal watches and handlers, src/io/signal.c),
 * so that two of them, on one loop or on loops in different threads, never
 * both take a signal and then restore each other's handlers in the wrong
 * order.  The second to ask gets a refusal (-EBUSY for the caller).
 */
#include "internal.h"

#include <signal.h>

static _Atomic(const void *) claims[NSIG];

bool corio__signal_claim(int signo, const void *owner)
{
    if (signo <= 0 || signo >= NSIG || !owner)
        return false;
    const void *none = NULL;
    return atomic_compare_exchange_strong(&claims[signo], &none, owner);
}

void corio__signal_unclaim(int signo)
{
    if (signo > 0 && signo < NSIG)
        atomic_store(&claims[signo], NULL);
}
