/*
 * File descriptors passed over Unix stream sockets (SCM_RIGHTS), as
 * queues of batches tied to byte offsets in the stream: on the receiving
 * side the fds that arrived with one recvmsg, tied to the offset of its
 * first byte; on the sending side duplicates of the fds a write attached
 * to bytes still queued, tied to the offset of their first byte.  The
 * stream (src/io/stream.c) owns two such queues and decides when a batch
 * is claimed or sent; this file only keeps them and speaks cmsg.
 */
#ifndef CORIO_IO_FDPASS_H
#define CORIO_IO_FDPASS_H

#include "../core/internal.h"

#include <stdint.h>
#include <sys/socket.h>

/* The kernel's SCM_MAX_FD: most fds one sendmsg may carry. */
#define CORIO__FDPASS_MAX 253

/* Control buffer for one batch of the largest size. */
#define CORIO__FDPASS_CTL CMSG_SPACE(CORIO__FDPASS_MAX * sizeof(int))
typedef union corio__fdpass_ctl {
    char buf[CORIO__FDPASS_CTL];
    struct cmsghdr align;
} corio__fdpass_ctl;

typedef struct corio__fdbatch {
    struct corio__fdbatch *next;
    uint64_t at;    /* stream offset of the first byte the fds go with */
    unsigned n;     /* fds in the batch */
    unsigned given; /* fds already handed out (receive side) */
    bool ctrunc;    /* the kernel dropped fds of this batch (MSG_CTRUNC) */
    bool reported;  /* ctrunc was told to the user */
    int fds[];
} corio__fdbatch;

typedef struct corio__fdq {
    corio__fdbatch *head, *tail;
} corio__fdq;

/* Queue the fds (and MSG_CTRUNC) that a recvmsg whose first byte is at
 * stream offset `at` brought.  Never fails: without memory for the batch
 * the fds are closed and *lost set, to be reported as MSG_CTRUNC. */
void corio__fdq_from_msg(corio__fdq *q, const struct msghdr *msg, uint64_t at, bool *lost);

/* Hand out, in order, up to cap fds of batches whose first byte is below
 * `consumed` (a batch is handed out from its first fd, across calls if cap
 * is short).  *flags (may be NULL) gets MSG_CTRUNC when a batch reached
 * for the first time lost fds.  Returns the number stored in fds. */
size_t corio__fdq_claim(corio__fdq *q, uint64_t consumed, int *fds, size_t cap, int *flags);

/* How many bytes from stream offset `consumed` one read may take without
 * reaching a second batch: a read starting at a batch's first byte may
 * take that batch's bytes, never the next batch's.  UINT64_MAX when no
 * batch limits it. */
uint64_t corio__fdq_limit(const corio__fdq *q, uint64_t consumed);

/* A batch holding duplicates (close-on-exec) of fds[0..n), for stream
 * offset at.  NULL with *err set (-EBADF for an fd that is not open,
 * -EMFILE, -ENOMEM), nothing left open. */
corio__fdbatch *corio__fdbatch_dup(const int *fds, size_t n, uint64_t at, int *err);

void corio__fdq_append(corio__fdq *q, corio__fdbatch *b);

/* Close the fds of b not handed out yet, free b. */
void corio__fdbatch_free(corio__fdbatch *b);

/* Remove and free the head batch (sent, or given out). */
void corio__fdq_pop(corio__fdq *q);

/* Close every fd not handed out and free every batch. */
void corio__fdq_clear(corio__fdq *q);

/* Write an SCM_RIGHTS message for fds[0..n) (n <= CORIO__FDPASS_MAX) into
 * ctl; returns its length for msg_controllen. */
size_t corio__fdpass_cmsg(corio__fdpass_ctl *ctl, const int *fds, size_t n);

#endif
