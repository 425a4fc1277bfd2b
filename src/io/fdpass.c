/*
 * Queues of passed file descriptors (contract in fdpass.h): parsing the
 * SCM_RIGHTS a recvmsg returned, handing fds out in arrival order,
 * duplicating the fds a queued write carries, building the cmsg of a send.
 * Every fd this file holds is closed exactly once: when handed to the
 * user, when sent, or when its queue is cleared with the stream.
 */
#include "fdpass.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static void closefds(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(fds[i]);
}

void corio__fdq_from_msg(corio__fdq *q, const struct msghdr *msg, uint64_t at, bool *lost)
{
    /* One recvmsg on a stream brings at most one SCM_RIGHTS message (the
     * kernel stops a read at the first skb carrying fds), but a truncated
     * control area may still hold it whole or in part: collect them all. */
    size_t n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            n += (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    bool ctrunc = (msg->msg_flags & MSG_CTRUNC) != 0;
    if (n == 0 && !ctrunc)
        return;
    corio__fdbatch *b = corio__malloc(sizeof *b + n * sizeof(int));
    size_t k = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c;
         c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t m = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        if (b)
            memcpy(b->fds + k, CMSG_DATA(c), m * sizeof(int));
        else {
            int tmp[CORIO__FDPASS_MAX];
            memcpy(tmp, CMSG_DATA(c), m * sizeof(int));
            closefds(tmp, m);
        }
        k += m;
    }
    if (!b) {
        *lost = true;
        return;
    }
    b->next = NULL;
    b->at = at;
    b->n = (unsigned)n;
    b->given = 0;
    b->ctrunc = ctrunc;
    b->reported = false;
    corio__fdq_append(q, b);
}

size_t corio__fdq_claim(corio__fdq *q, uint64_t consumed, int *fds, size_t cap, int *flags)
{
    size_t out = 0;
    while (q->head && q->head->at < consumed) {
        corio__fdbatch *b = q->head;
        if (b->given < b->n && out == cap)
            break;
        if (!b->reported) {
            b->reported = true;
            if (b->ctrunc && flags)
                *flags |= MSG_CTRUNC;
        }
        while (b->given < b->n && out < cap)
            fds[out++] = b->fds[b->given++];
        if (b->given == b->n)
            corio__fdq_pop(q);
    }
    return out;
}

uint64_t corio__fdq_limit(const corio__fdq *q, uint64_t consumed)
{
    const corio__fdbatch *b = q->head;
    while (b && b->at < consumed)
        b = b->next;
    if (b && b->at == consumed)
        b = b->next;
    return b ? b->at - consumed : UINT64_MAX;
}

corio__fdbatch *corio__fdbatch_dup(const int *fds, size_t n, uint64_t at, int *err)
{
    corio__fdbatch *b = corio__malloc(sizeof *b + n * sizeof(int));
    if (!b) {
        *err = -ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        b->fds[i] = fds[i] < 0 ? -1 : fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (b->fds[i] < 0) {
            *err = fds[i] < 0 || errno == EBADF ? -EBADF : -errno;
            closefds(b->fds, i);
            corio__free(b);
            return NULL;
        }
    }
    b->next = NULL;
    b->at = at;
    b->n = (unsigned)n;
    b->given = 0;
    b->ctrunc = b->reported = false;
    return b;
}

void corio__fdq_append(corio__fdq *q, corio__fdbatch *b)
{
    b->next = NULL;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
}

void corio__fdbatch_free(corio__fdbatch *b)
{
    closefds(b->fds + b->given, b->n - b->given);
    corio__free(b);
}

void corio__fdq_pop(corio__fdq *q)
{
    corio__fdbatch *b = q->head;
    if (!b)
        return;
    q->head = b->next;
    if (!q->head)
        q->tail = NULL;
    corio__fdbatch_free(b);
}

void corio__fdq_clear(corio__fdq *q)
{
    while (q->head)
        corio__fdq_pop(q);
}

size_t corio__fdpass_cmsg(corio__fdpass_ctl *ctl, const int *fds, size_t n)
{
    memset(ctl, 0, CMSG_SPACE(n * sizeof(int)));
    struct cmsghdr *c = &ctl->align;
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(n * sizeof(int));
    memcpy(CMSG_DATA(c), fds, n * sizeof(int));
    return CMSG_SPACE(n * sizeof(int));
}
