/*
 * The sim backend's disks: each host's file system in memory (contract in
 * sim.h), behind virtual fds, with the durability of a real disk.
 *
 * A host's disk is a tree of nodes (files and directories) made on first
 * use.  Every node keeps two states: the current one (what the running
 * program sees) and the durable one (what a power cut leaves).
 *  - Data: a file's durable content is its content as of its last
 *    successful fsync or fdatasync; the writes since (and truncations) are
 *    kept in a log.  When the host crashes, each file goes back to its
 *    durable content plus a random prefix (drawn from the seed) of that
 *    log: what was not fsynced may be lost, in whole or in part, but never
 *    out of order.  A log that grows past LOG_MAX entries or bytes has its
 *    oldest entries written back (made durable), as a kernel writes dirty
 *    pages back on its own.
 *  - Names (the durability rule for metadata): creating, renaming or
 *    unlinking a name becomes durable when the node itself is fsynced, or
 *    when the directory the name was made in or removed from is fsynced.
 *    fsync(file) makes the file's current name durable (and drops its
 *    old durable name, so a rename is all or nothing); fsync(dir) makes
 *    every change of the entries in that directory durable.  fdatasync
 *    counts as fsync here.  A crash forgets every name change not made
 *    durable that way, and a node whose durable path no longer reaches "/"
 *    is lost with it.
 * After a crash every file the host had open is dead (each call on it
 * fails with EIO), and while the host is crashing every disk call of its
 * tasks fails with EIO.
 *
 * Operations take effect when they are submitted and complete after a
 * small latency drawn from the seed (0 with every fault off), through an
 * event: other tasks run meanwhile, and completions come only from polls.
 * Faults (disk_eio, disk_enospc, disk_short) are drawn per operation; a
 * per-host capacity (DEFAULT_CAPACITY) gives ENOSPC deterministically.
 *
 * Paths are absolute or relative to "/" (a host has no other working
 * directory); there are no links, and permissions are those of the file's
 * owner (mode & 0600), with a umask of 022.  Names are looked up by a scan
 * of the host's nodes in creation order: simulated disks hold few files,
 * and order, not speed, is what replay needs.
 */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CAPACITY (1ull << 30) /* bytes of file data per host */
#define MAX_FILE_SIZE (1ull << 40)    /* beyond it a write fails with EFBIG */
#define LOG_MAX 256                   /* unsynced writes kept per file ... */
#define LOG_MAX_BYTES (8u << 20)      /* ... and their bytes, before the oldest are written back */
#define UMASK 022
#define ROOT_INO 2

typedef struct wlog {
    struct wlog *next;
    uint64_t off; /* write: where; truncate: the new size */
    size_t len;
    bool trunc;
    char bytes[];
} wlog;

typedef struct dnode {
    corio__list link; /* in the disk's nodes, in creation order */
    uint64_t ino;
    bool dir, root;
    mode_t perm;
    unsigned opens;        /* open file descriptions */
    unsigned dkids;        /* nodes whose durable name is in this directory */
    struct dnode *parent;  /* current name: NULL when unlinked (or the root) */
    struct dnode *dparent; /* durable name: NULL when none */
    char name[NAME_MAX + 1], dname[NAME_MAX + 1];
    char *data, *ddata; /* current and durable content */
    size_t size, cap, dsize, dcap;
    wlog *log, *log_tail; /* writes since the last fsync, oldest first */
    size_t nlog, log_bytes;
    struct timespec mtime, ctime;
} dnode;

typedef struct disk {
    corio__list nodes; /* every node, in creation order */
    corio__list files; /* open file descriptions */
    dnode *root;
    unsigned host;
    uint64_t next_ino, used, capacity;
} disk;

typedef struct ofile {
    corio__list link; /* in the disk's files */
    disk *d;
    dnode *n; /* NULL once dead */
    int flags;
    uint64_t pos;
    bool dead; /* the host crashed since it was opened */
} ofile;

static const corio__sim_fd_ops file_ops;

/* ------------------------------------------------------------------ */
/* Nodes                                                               */
/* ------------------------------------------------------------------ */

static void stamp(struct timespec *ts) { (void)corio__simsys_realtime(ts); }

static dnode *node_new(disk *d, bool dir, mode_t perm)
{
    dnode *n = corio__calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->ino = d->next_ino++;
    n->dir = dir;
    n->perm = perm & 07777;
    stamp(&n->mtime);
    n->ctime = n->mtime;
    corio__list_push_back(&d->nodes, &n->link);
    return n;
}

static void log_free(dnode *n)
{
    for (wlog *e = n->log, *next; e; e = next) {
        next = e->next;
        corio__free(e);
    }
    n->log = n->log_tail = NULL;
    n->nlog = n->log_bytes = 0;
}

static void node_free(disk *d, dnode *n)
{
    corio__list_remove(&n->link);
    d->used -= n->size;
    log_free(n);
    corio__free(n->data);
    corio__free(n->ddata);
    corio__free(n);
}

static bool node_freeable(const dnode *n)
{
    return !n->root && !n->parent && !n->dparent && !n->opens && !n->dkids;
}

/* Free every node nothing refers to any more (a name, a durable name, an
 * open file, a durable child), until none is left. */
static void gc(disk *d)
{
    bool again = true;
    while (again) {
        again = false;
        for (corio__list *l = d->nodes.next, *next; l != &d->nodes; l = next) {
            next = l->next;
            dnode *n = CORIO__CONTAINER_OF(l, dnode, link);
            if (node_freeable(n)) {
                node_free(d, n);
                again = true;
            }
        }
    }
}

static dnode *lookup(disk *d, const dnode *dir, const char *name)
{
    for (corio__list *l = d->nodes.next; l != &d->nodes; l = l->next) {
        dnode *n = CORIO__CONTAINER_OF(l, dnode, link);
        if (n->parent == dir && !n->root && !strcmp(n->name, name))
            return n;
    }
    return NULL;
}

static bool has_children(disk *d, const dnode *dir)
{
    for (corio__list *l = d->nodes.next; l != &d->nodes; l = l->next)
        if (CORIO__CONTAINER_OF(l, dnode, link)->parent == dir)
            return true;
    return false;
}

/* Give n the durable name (p, name), or none (p NULL); a node that held
 * that durable name before loses it (it was replaced). */
static void set_durable(disk *d, dnode *n, dnode *p, const char *name)
{
    if (p && n->dparent == p && !strcmp(n->dname, name))
        return;
    if (p) {
        for (corio__list *l = d->nodes.next; l != &d->nodes; l = l->next) {
            dnode *m = CORIO__CONTAINER_OF(l, dnode, link);
            if (m != n && m->dparent == p && !strcmp(m->dname, name)) {
                m->dparent->dkids--;
                m->dparent = NULL;
            }
        }
    }
    if (n->dparent)
        n->dparent->dkids--;
    n->dparent = p;
    if (p) {
        p->dkids++;
        snprintf(n->dname, sizeof n->dname, "%s", name);
    }
}

/* ------------------------------------------------------------------ */
/* Disks                                                               */
/* ------------------------------------------------------------------ */

static disk *disk_of(corio__sim_host *h)
{
    if (h->disk)
        return h->disk;
    disk *d = corio__calloc(1, sizeof *d);
    if (!d)
        return NULL;
    corio__list_init(&d->nodes);
    corio__list_init(&d->files);
    d->host = h->id;
    d->capacity = DEFAULT_CAPACITY;
    d->next_ino = ROOT_INO;
    d->root = node_new(d, true, 0755);
    if (!d->root) {
        corio__free(d);
        return NULL;
    }
    d->root->root = true;
    h->disk = d;
    return d;
}

int corio__sim_disk_capacity(corio__sim *w, corio__sim_host *h, uint64_t bytes)
{
    (void)w;
    disk *d = disk_of(h);
    if (!d)
        return -ENOMEM;
    d->capacity = bytes;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Paths                                                               */
/* ------------------------------------------------------------------ */

typedef struct walk {
    dnode *parent; /* the directory holding the last name; NULL when the path ends at "/", "." or ".." */
    dnode *node;   /* what the path names; NULL if that name does not exist */
    bool slash;    /* the path ends in '/' */
    char name[NAME_MAX + 1];
} walk;

static int resolve(disk *d, const char *path, walk *wk)
{
    if (!*path)
        return -ENOENT;
    if (strnlen(path, PATH_MAX) >= PATH_MAX)
        return -ENAMETOOLONG;
    wk->parent = NULL;
    wk->node = d->root;
    wk->slash = false;
    wk->name[0] = 0;
    const char *p = path;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, "/");
        if (n > NAME_MAX)
            return -ENAMETOOLONG;
        dnode *dir = wk->node;
        if (!dir)
            return -ENOENT;
        if (!dir->dir)
            return -ENOTDIR;
        if (n == 1 && p[0] == '.') {
            wk->parent = NULL;
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            wk->parent = NULL;
            wk->node = dir->parent ? dir->parent : dir;
        } else {
            wk->parent = dir;
            memcpy(wk->name, p, n);
            wk->name[n] = 0;
            wk->node = lookup(d, dir, wk->name);
        }
        p += n;
        const char *rest = p;
        while (*rest == '/')
            rest++;
        if (!*rest) {
            wk->slash = *p == '/';
            break;
        }
    }
    if (wk->slash && wk->node && !wk->node->dir)
        return -ENOTDIR;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

static bool grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c = c > SIZE_MAX / 2 ? need : c * 2;
    char *b = corio__realloc(*buf, c);
    if (!b)
        return false;
    *buf = b;
    *cap = c;
    return true;
}

/* Apply one logged change to a content (buf, size). */
static bool apply(char **buf, size_t *size, size_t *cap, const wlog *e)
{
    if (e->trunc) {
        if (e->off > *size) {
            if (!grow(buf, cap, e->off))
                return false;
            memset(*buf + *size, 0, e->off - *size);
        }
        *size = e->off;
        return true;
    }
    size_t end = e->off + e->len;
    if (!grow(buf, cap, end))
        return false;
    if (e->off > *size)
        memset(*buf + *size, 0, e->off - *size);
    memcpy(*buf + e->off, e->bytes, e->len);
    if (end > *size)
        *size = end;
    return true;
}

/* Record a change for the crash model; a full log writes its oldest
 * entries back.  On no memory the change is made durable at once (the
 * crash model loses a choice, never data the program was told is safe). */
static void log_add(dnode *n, uint64_t off, const void *bytes, size_t len, bool trunc)
{
    wlog *e = corio__malloc(sizeof *e + len);
    if (!e) {
        if (grow(&n->ddata, &n->dcap, n->size)) {
            memcpy(n->ddata, n->data, n->size);
            n->dsize = n->size;
            log_free(n);
        }
        return;
    }
    e->next = NULL;
    e->off = off;
    e->len = len;
    e->trunc = trunc;
    if (len)
        memcpy(e->bytes, bytes, len);
    if (n->log_tail)
        n->log_tail->next = e;
    else
        n->log = e;
    n->log_tail = e;
    n->nlog++;
    n->log_bytes += len;
    while (n->nlog > LOG_MAX || (n->log_bytes > LOG_MAX_BYTES && n->nlog > 1)) {
        wlog *old = n->log;
        if (!apply(&n->ddata, &n->dsize, &n->dcap, old))
            break;
        n->log = old->next;
        if (!n->log)
            n->log_tail = NULL;
        n->nlog--;
        n->log_bytes -= old->len;
        corio__free(old);
    }
}

/* Write len bytes at off into n's current content, within the disk's
 * capacity.  Returns bytes written (short when the disk fills) or -errno. */
static ssize_t node_write(disk *d, dnode *n, const void *buf, size_t len, uint64_t off)
{
    if (!len)
        return 0;
    if (off >= MAX_FILE_SIZE)
        return -EFBIG;
    if (len > MAX_FILE_SIZE - off)
        len = (size_t)(MAX_FILE_SIZE - off);
    uint64_t end = off + len;
    if (end > n->size) {
        uint64_t room = d->capacity > d->used ? d->capacity - d->used : 0;
        if (end - n->size > room) {
            if (off >= n->size + room)
                return -ENOSPC;
            len = (size_t)(n->size + room - off);
            end = off + len;
        }
    }
    if (!grow(&n->data, &n->cap, (size_t)end))
        return -ENOMEM;
    if (off > n->size)
        memset(n->data + n->size, 0, (size_t)off - n->size);
    memcpy(n->data + off, buf, len);
    if (end > n->size) {
        d->used += end - n->size;
        n->size = (size_t)end;
    }
    stamp(&n->mtime);
    log_add(n, off, buf, len, false);
    return (ssize_t)len;
}

static int node_truncate(disk *d, dnode *n, uint64_t size)
{
    if (size == n->size)
        return 0;
    if (size > n->size) {
        if (size - n->size > (d->capacity > d->used ? d->capacity - d->used : 0))
            return -ENOSPC;
        if (!grow(&n->data, &n->cap, (size_t)size))
            return -ENOMEM;
        memset(n->data + n->size, 0, (size_t)size - n->size);
        d->used += size - n->size;
    } else {
        d->used -= n->size - size;
    }
    n->size = (size_t)size;
    stamp(&n->mtime);
    log_add(n, size, NULL, 0, true);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Faults, latency, checks                                             */
/* ------------------------------------------------------------------ */

static bool faults_off(const corio_sim_faults *f)
{
    return !(f->short_io > 0 || f->reset > 0 || f->stall > 0 || f->dgram_loss > 0 || f->dgram_dup > 0 ||
             f->dgram_reorder > 0 || f->disk_eio > 0 || f->disk_enospc > 0 || f->disk_short > 0 ||
             f->jitter > 0 || f->latency_max_us > 0);
}

/* How long an operation takes: up to 50 us, an fsync up to 500 us; 0 with
 * every fault off (paused time stays exact). */
static uint64_t latency(corio__sim *w, bool sync)
{
    if (faults_off(corio__sim_faults(w)))
        return 0;
    return corio__sim_below(w, (sync ? 500u : 50u) * 1000u + 1);
}

/* The write faults: -EIO, -ENOSPC, or *len cut short (at least 1 byte). */
static int write_faults(corio__sim *w, size_t *len)
{
    const corio_sim_faults *f = corio__sim_faults(w);
    if (!*len)
        return 0;
    if (corio__sim_fault(w, f->disk_eio, "disk write eio", *len))
        return -EIO;
    if (corio__sim_fault(w, f->disk_enospc, "disk write enospc", *len))
        return -ENOSPC;
    if (*len > 1 && corio__sim_fault(w, f->disk_short, "disk write short", *len))
        *len = 1 + (size_t)corio__sim_below(w, *len - 1);
    return 0;
}

static bool host_crashing(corio__sim *w) { return corio__sim_host_now(w)->crashing; }

/* The open file behind a live fd of ours, checked for use: 0, or -EBADF /
 * -EIO (dead after a crash, or the caller's host is crashing). */
static int file_check(corio__sim *w, ofile *of)
{
    if (of->dead || !of->n || host_crashing(w))
        return -EIO;
    return 0;
}

static ofile *file_of(corio__sim *w, int fd, corio__sim_fd **fp)
{
    corio__sim_fd *f = corio__sim_fd_get(w, fd);
    if (fp)
        *fp = f;
    return f && f->ops == &file_ops ? f->obj : NULL;
}

static bool appending(corio__sim *w, int fd, const ofile *of)
{
    corio__sim_fd *f = corio__sim_fd_get(w, fd);
    return f ? (f->status_flags & O_APPEND) != 0 : (of->flags & O_APPEND) != 0;
}

/* ------------------------------------------------------------------ */
/* The operations, shared by the ops and the simulated calls           */
/* ------------------------------------------------------------------ */

/* Put a disk event in the trace, its text naming the path(s): "create
 * /db/log" reads better in a failure's last events than a bare number. */
static void trace_path(corio__sim *w, const char *what, const char *path, const char *path2, uint64_t a,
                       uint64_t b)
{
    char text[128];
    if (snprintf(text, sizeof text, "%s %s%s%s", what, path, path2 ? " -> " : "", path2 ? path2 : "") < 0)
        text[0] = 0; /* (a long path is cut: the trace keeps 120 bytes anyway) */
    corio__sim_trace(w, CORIO__SIM_EV_DISK, text, a, b);
}

/* Read or write through of: iov of cnt buffers at off (< 0: the file
 * position, which moves).  Returns bytes or -errno. */
static ssize_t file_rw(corio__sim *w, ofile *of, bool is_write, bool append, const struct iovec *iov,
                       size_t cnt, int64_t off)
{
    int r = file_check(w, of);
    if (r)
        return r;
    int acc = of->flags & O_ACCMODE;
    dnode *n = of->n;
    if (is_write ? acc == O_RDONLY : acc == O_WRONLY)
        return -EBADF;
    if (n->dir)
        return is_write ? -EBADF : -EISDIR;
    size_t total = 0;
    for (size_t i = 0; i < cnt; i++) {
        size_t room = CORIO__MAX_RW - total;
        total += iov[i].iov_len < room ? iov[i].iov_len : room;
    }
    uint64_t at = off >= 0 ? (uint64_t)off : of->pos;
    size_t done = 0;
    if (is_write) {
        if (append)
            at = n->size;
        if ((r = write_faults(w, &total)))
            return r;
        for (size_t i = 0; i < cnt && done < total; i++) {
            size_t want = iov[i].iov_len < total - done ? iov[i].iov_len : total - done;
            ssize_t k = node_write(of->d, n, iov[i].iov_base, want, at + done);
            if (k < 0) {
                if (!done)
                    return k;
                break;
            }
            done += (size_t)k;
            if ((size_t)k < want)
                break;
        }
    } else {
        if (total && corio__sim_fault(w, corio__sim_faults(w)->disk_eio, "disk read eio", total))
            return -EIO;
        for (size_t i = 0; i < cnt && done < total && at + done < n->size; i++) {
            size_t want = iov[i].iov_len < total - done ? iov[i].iov_len : total - done;
            size_t have = n->size - (size_t)(at + done);
            size_t k = want < have ? want : have;
            memcpy(iov[i].iov_base, n->data + at + done, k);
            done += k;
        }
    }
    if (off < 0)
        of->pos = at + done;
    return (ssize_t)done;
}

static int do_fsync(corio__sim *w, ofile *of)
{
    int r = file_check(w, of);
    if (r)
        return r;
    dnode *n = of->n;
    disk *d = of->d;
    if (corio__sim_fault(w, corio__sim_faults(w)->disk_eio, "disk fsync eio", n->ino))
        return -EIO; /* nothing became durable */
    if (!grow(&n->ddata, &n->dcap, n->size))
        return -ENOMEM;
    if (n->size)
        memcpy(n->ddata, n->data, n->size);
    n->dsize = n->size;
    log_free(n);
    if (!n->root)
        set_durable(d, n, n->parent, n->name);
    if (n->dir) {
        for (corio__list *l = d->nodes.next; l != &d->nodes; l = l->next) {
            dnode *m = CORIO__CONTAINER_OF(l, dnode, link);
            if (!m->root && (m->parent == n || m->dparent == n))
                set_durable(d, m, m->parent, m->name);
        }
    }
    trace_path(w, "fsync", n->root ? "/" : n->name, NULL, n->ino, n->size);
    gc(d);
    return 0;
}

static void fill_stat(const disk *d, const dnode *n, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_dev = d->host + 1;
    st->st_ino = n->ino;
    st->st_mode = (n->dir ? S_IFDIR : S_IFREG) | n->perm;
    st->st_nlink = n->dir ? 2 : (n->parent || n->root ? 1 : 0);
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_size = (off_t)n->size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
    st->st_atim = n->mtime;
    st->st_mtim = n->mtime;
    st->st_ctim = n->ctime;
}

static void fill_statx(const disk *d, const dnode *n, struct statx *x)
{
    struct stat st;
    fill_stat(d, n, &st);
    memset(x, 0, sizeof *x);
    x->stx_mask = STATX_BASIC_STATS;
    x->stx_blksize = (uint32_t)st.st_blksize;
    x->stx_nlink = (uint32_t)st.st_nlink;
    x->stx_uid = st.st_uid;
    x->stx_gid = st.st_gid;
    x->stx_mode = (uint16_t)st.st_mode;
    x->stx_ino = st.st_ino;
    x->stx_size = (uint64_t)st.st_size;
    x->stx_blocks = (uint64_t)st.st_blocks;
    x->stx_atime.tv_sec = st.st_atim.tv_sec;
    x->stx_atime.tv_nsec = (uint32_t)st.st_atim.tv_nsec;
    x->stx_mtime.tv_sec = st.st_mtim.tv_sec;
    x->stx_mtime.tv_nsec = (uint32_t)st.st_mtim.tv_nsec;
    x->stx_ctime.tv_sec = st.st_ctim.tv_sec;
    x->stx_ctime.tv_nsec = (uint32_t)st.st_ctim.tv_nsec;
    x->stx_dev_minor = (uint32_t)st.st_dev;
}

/* The calling task's disk, checked for use: NULL with *err set. */
static disk *path_disk(corio__sim *w, int *err)
{
    corio__sim_host *h = corio__sim_host_now(w);
    if (h->crashing) {
        *err = -EIO;
        return NULL;
    }
    disk *d = disk_of(h);
    *err = d ? 0 : -ENOMEM;
    return d;
}

static int do_open(corio__sim *w, const char *path, int flags, mode_t mode)
{
    int r;
    disk *d = path_disk(w, &r);
    if (!d)
        return r;
    int acc = flags & O_ACCMODE;
    if (acc == O_ACCMODE)
        return -EINVAL;
    if ((flags & __O_TMPFILE) == __O_TMPFILE)
        return -EOPNOTSUPP;
    if ((flags & (O_CREAT | O_DIRECTORY)) == (O_CREAT | O_DIRECTORY))
        return -EINVAL;
    walk wk;
    if ((r = resolve(d, path, &wk)))
        return r;
    bool writing = acc != O_RDONLY, created = false;
    dnode *n = wk.node;
    if (!n) {
        if (!(flags & O_CREAT))
            return -ENOENT;
        if (wk.slash)
            return -EISDIR;
        if (!(wk.parent->perm & 0200))
            return -EACCES;
        if (!(n = node_new(d, false, mode & ~(mode_t)UMASK)))
            return -ENOMEM;
        n->parent = wk.parent;
        snprintf(n->name, sizeof n->name, "%s", wk.name);
        created = true;
    } else {
        if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
            return -EEXIST;
        if (n->dir && (writing || (flags & (O_CREAT | O_TRUNC))))
            return -EISDIR;
        if (!n->dir && (flags & O_DIRECTORY))
            return -ENOTDIR;
        if ((writing && !(n->perm & 0200)) || (acc != O_WRONLY && !(n->perm & 0400)))
            return -EACCES;
    }
    ofile *of = corio__calloc(1, sizeof *of);
    int fd = of ? corio__sim_fd_new(w, &file_ops, of, flags & (O_ACCMODE | O_APPEND | O_NONBLOCK)) : -ENOMEM;
    if (fd < 0) {
        corio__free(of);
        if (created) {
            n->parent = NULL;
            gc(d);
        }
        return fd;
    }
    of->d = d;
    of->n = n;
    of->flags = flags;
    n->opens++;
    corio__list_push_back(&d->files, &of->link);
    if (created)
        trace_path(w, "create", path, NULL, n->ino, 0);
    if ((flags & O_TRUNC) && !n->dir && n->size) {
        trace_path(w, "truncate", path, NULL, n->ino, n->size);
        (void)node_truncate(d, n, 0);
    }
    return fd;
}

static int do_mkdir(corio__sim *w, const char *path, mode_t mode)
{
    int r;
    disk *d = path_disk(w, &r);
    if (!d)
        return r;
    walk wk;
    if ((r = resolve(d, path, &wk)))
        return r == -ENOTDIR && wk.slash ? -EEXIST : r; /* "file/": it exists */
    if (wk.node || !wk.parent)
        return -EEXIST;
    if (!(wk.parent->perm & 0200))
        return -EACCES;
    dnode *n = node_new(d, true, mode & ~(mode_t)UMASK);
    if (!n)
        return -ENOMEM;
    n->parent = wk.parent;
    snprintf(n->name, sizeof n->name, "%s", wk.name);
    trace_path(w, "mkdir", path, NULL, n->ino, 0);
    return 0;
}

static int do_unlink(corio__sim *w, const char *path, bool rmdir)
{
    int r;
    disk *d = path_disk(w, &r);
    if (!d)
        return r;
    walk wk;
    if ((r = resolve(d, path, &wk)))
        return r;
    dnode *n = wk.node;
    if (!n)
        return -ENOENT;
    if (!wk.parent) /* "/", "." or ".." */
        return rmdir ? (n->root ? -EBUSY : -EINVAL) : -EISDIR;
    if (rmdir) {
        if (!n->dir)
            return -ENOTDIR;
        if (has_children(d, n))
            return -ENOTEMPTY;
    } else if (n->dir) {
        return -EISDIR;
    }
    if (!(wk.parent->perm & 0200))
        return -EACCES;
    n->parent = NULL;
    stamp(&n->ctime);
    trace_path(w, rmdir ? "rmdir" : "unlink", path, NULL, n->ino, n->size);
    gc(d);
    return 0;
}

static int do_rename(corio__sim *w, const char *from, const char *to)
{
    int r;
    disk *d = path_disk(w, &r);
    if (!d)
        return r;
    walk a, b;
    if ((r = resolve(d, from, &a)))
        return r;
    if (!a.node)
        return -ENOENT;
    if ((r = resolve(d, to, &b)))
        return r;
    if (!a.parent || !b.parent)
        return -EBUSY;
    if (!b.node && b.slash && !a.node->dir)
        return -ENOTDIR;
    dnode *src = a.node, *dst = b.node;
    if (src == dst)
        return 0;
    if (src->dir) {
        for (dnode *p = b.parent; p; p = p->parent)
            if (p == src)
                return -EINVAL; /* into itself */
        if (dst && !dst->dir)
            return -ENOTDIR;
        if (dst && has_children(d, dst))
            return -ENOTEMPTY;
    } else if (dst && dst->dir) {
        return -EISDIR;
    }
    if (!(a.parent->perm & 0200) || !(b.parent->perm & 0200))
        return -EACCES;
    if (dst) {
        dst->parent = NULL;
        stamp(&dst->ctime);
    }
    src->parent = b.parent;
    snprintf(src->name, sizeof src->name, "%s", b.name);
    stamp(&src->ctime);
    trace_path(w, "rename", from, to, src->ino, dst ? dst->ino : 0);
    gc(d);
    return 0;
}

static int do_statx(corio__sim *w, const char *path, struct statx *x)
{
    int r;
    disk *d = path_disk(w, &r);
    if (!d)
        return r;
    walk wk;
    if ((r = resolve(d, path, &wk)))
        return r;
    if (!wk.node)
        return -ENOENT;
    fill_statx(d, wk.node, x);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Completions                                                         */
/* ------------------------------------------------------------------ */

static void complete_ev(corio__sim *w, void *arg, uint64_t a)
{
    corio__sim_complete(w, arg, (int32_t)(uint32_t)a);
}

/* Finish op with res after the drawn latency (from an event, in a poll). */
static int finish(corio__sim *w, corio__op *op, int32_t res, bool sync)
{
    if (corio__sim_at(w, latency(w, sync), complete_ev, op, (uint32_t)res) < 0) {
        op->res = -ENOMEM;
        return 1;
    }
    return 0;
}

int corio__sim_disk_submit_path(corio__sim *w, corio__op *op)
{
    const char *path = op->buf;
    int32_t res;
    switch (op->kind) {
    case CORIO__OP_OPENAT:
        res = path ? do_open(w, path, op->flags, (mode_t)op->len) : -EFAULT;
        break;
    case CORIO__OP_STATX:
        if (!path || !op->stx)
            res = -EFAULT;
        else
            res = do_statx(w, *path || !(op->flags & AT_EMPTY_PATH) ? path : "/", op->stx);
        break;
    case CORIO__OP_UNLINKAT:
        res = path ? do_unlink(w, path, op->flags & AT_REMOVEDIR) : -EFAULT;
        break;
    case CORIO__OP_RENAMEAT:
        res = path && op->path2 ? do_rename(w, path, op->path2) : -EFAULT;
        break;
    case CORIO__OP_MKDIRAT:
        res = path ? do_mkdir(w, path, (mode_t)op->len) : -EFAULT;
        break;
    default:
        res = -EOPNOTSUPP;
        break;
    }
    return finish(w, op, res, false);
}

/* ------------------------------------------------------------------ */
/* The fd ops                                                          */
/* ------------------------------------------------------------------ */

static int file_submit(corio__sim *w, void *obj, corio__op *op)
{
    ofile *of = obj;
    int32_t res;
    bool sync = false;
    switch (op->kind) {
    case CORIO__OP_READ:
    case CORIO__OP_WRITE:
    case CORIO__OP_READV:
    case CORIO__OP_WRITEV: {
        bool vec = op->kind == CORIO__OP_READV || op->kind == CORIO__OP_WRITEV;
        bool wr = op->kind == CORIO__OP_WRITE || op->kind == CORIO__OP_WRITEV;
        struct iovec one = {op->buf, op->len};
        if (op->len && !op->buf) {
            res = -EFAULT;
            break;
        }
        ssize_t n = file_rw(w, of, wr, wr && appending(w, op->fd, of), vec ? op->buf : &one,
                            vec ? op->len : 1, op->off);
        res = (int32_t)n;
        break;
    }
    case CORIO__OP_FSYNC:
        res = do_fsync(w, of);
        sync = true;
        break;
    case CORIO__OP_STATX: {
        const char *path = op->buf;
        if (!op->stx || !path)
            res = -EFAULT;
        else if (*path || !(op->flags & AT_EMPTY_PATH))
            res = -EOPNOTSUPP; /* paths relative to a directory fd: corio makes none */
        else if ((res = file_check(w, of)) == 0)
            fill_statx(of->d, of->n, op->stx);
        break;
    }
    case CORIO__OP_CLOSE:
        res = corio__simsys_close(op->fd) < 0 ? -errno : 0;
        break;
    case CORIO__OP_POLL:
        /* a regular file is always ready, as poll(2) says */
        res = op->flags & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);
        break;
    case CORIO__OP_RECV:
    case CORIO__OP_SEND:
    case CORIO__OP_SENDMSG:
    case CORIO__OP_RECVMSG:
    case CORIO__OP_ACCEPT:
    case CORIO__OP_CONNECT:
        res = -ENOTSOCK;
        break;
    default:
        res = -EOPNOTSUPP;
        break;
    }
    return finish(w, op, res, sync);
}

static void file_cancel(corio__sim *w, void *obj, corio__op *op)
{
    /* Disk operations took effect when submitted and their completion is
     * already scheduled, a few microseconds of virtual time away: the
     * caller gets the real result (corio__op_run's rule for an op that
     * finished anyway). */
    (void)w, (void)obj, (void)op;
}

static int file_close(corio__sim *w, void *obj)
{
    ofile *of = obj;
    disk *d = of->d;
    corio__list_remove(&of->link);
    if (of->n)
        of->n->opens--;
    corio__free(of);
    gc(d);
    (void)w;
    return 0;
}

static ssize_t file_read(corio__sim *w, void *obj, void *buf, size_t n)
{
    struct iovec one = {buf, n};
    return file_rw(w, obj, false, false, &one, 1, -1);
}

static ssize_t file_write(corio__sim *w, void *obj, const void *buf, size_t n)
{
    ofile *of = obj;
    struct iovec one = {(void *)(uintptr_t)buf, n};
    return file_rw(w, of, true, (of->flags & O_APPEND) != 0, &one, 1, -1);
}

static int file_stat(corio__sim *w, void *obj, struct stat *st)
{
    ofile *of = obj;
    int r = file_check(w, of);
    if (r)
        return r;
    fill_stat(of->d, of->n, st);
    return 0;
}

static const corio__sim_fd_ops file_ops = {
    .kind = "file",
    .submit = file_submit,
    .cancel = file_cancel,
    .close = file_close,
    .read = file_read,
    .write = file_write,
    .stat = file_stat,
};

/* ------------------------------------------------------------------ */
/* The simulated calls of src/io/sys.h                                 */
/* ------------------------------------------------------------------ */

static int fail(int err)
{
    errno = err;
    return -1;
}

int corio__simsys_open(const char *path, int flags, mode_t mode)
{
    corio__sim *w = corio__sim_world();
    if (!w)
        return fail(EOPNOTSUPP);
    if (!path)
        return fail(EFAULT);
    int r = do_open(w, path, flags, mode);
    return r < 0 ? fail(-r) : r;
}

off_t corio__simsys_lseek(int fd, off_t off, int whence)
{
    corio__sim *w = corio__sim_world();
    corio__sim_fd *f;
    ofile *of = file_of(w, fd, &f);
    if (!f)
        return fail(EBADF);
    if (!of)
        return fail(ESPIPE);
    int r = file_check(w, of);
    if (r)
        return fail(-r);
    int64_t base;
    switch (whence) {
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)of->pos;
        break;
    case SEEK_END:
        base = (int64_t)of->n->size;
        break;
    case SEEK_DATA:
    case SEEK_HOLE:
        if (off < 0 || (uint64_t)off >= of->n->size)
            return fail(ENXIO);
        of->pos = whence == SEEK_DATA ? (uint64_t)off : of->n->size;
        return (off_t)of->pos;
    default:
        return fail(EINVAL);
    }
    if ((off < 0 && base + off < 0) || (off > 0 && base > INT64_MAX - off))
        return fail(EINVAL);
    of->pos = (uint64_t)(base + off);
    return (off_t)of->pos;
}

ssize_t corio__simsys_pread(int fd, void *buf, size_t n, off_t off)
{
    corio__sim *w = corio__sim_world();
    corio__sim_fd *f;
    ofile *of = file_of(w, fd, &f);
    if (!of)
        return fail(f ? ESPIPE : EBADF);
    if (off < 0)
        return fail(EINVAL);
    struct iovec one = {buf, n};
    ssize_t r = file_rw(w, of, false, false, &one, 1, off);
    return r < 0 ? fail((int)-r) : r;
}

ssize_t corio__simsys_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    corio__sim *w = corio__sim_world();
    corio__sim_fd *f;
    ofile *of = file_of(w, fd, &f);
    if (!of)
        return fail(f ? ESPIPE : EBADF);
    if (off < 0)
        return fail(EINVAL);
    struct iovec one = {(void *)(uintptr_t)buf, n};
    ssize_t r = file_rw(w, of, true, appending(w, fd, of), &one, 1, off);
    return r < 0 ? fail((int)-r) : r;
}

int corio__simsys_fsync(int fd)
{
    corio__sim *w = corio__sim_world();
    corio__sim_fd *f;
    ofile *of = file_of(w, fd, &f);
    if (!of)
        return fail(f ? EINVAL : EBADF);
    int r = do_fsync(w, of);
    return r < 0 ? fail(-r) : 0;
}

int corio__simsys_unlink(const char *path)
{
    corio__sim *w = corio__sim_world();
    if (!w)
        return fail(EOPNOTSUPP);
    if (!path)
        return fail(EFAULT);
    int r = do_unlink(w, path, false);
    return r < 0 ? fail(-r) : 0;
}

/* sendfile(2) from one of our files to any virtual fd with a write op (a
 * simulated socket, or another file): the bytes go through that fd's
 * non-blocking write, so a full socket says EAGAIN as the kernel's would. */
ssize_t corio__simsys_sendfile(int out_fd, int in_fd, off_t *off, size_t n)
{
    corio__sim *w = corio__sim_world();
    corio__sim_fd *inf, *outf = corio__sim_fd_get(w, out_fd);
    ofile *of = file_of(w, in_fd, &inf);
    if (!inf || !outf)
        return fail(EBADF);
    if (!of || !outf->ops->write)
        return fail(EINVAL);
    if (off && *off < 0)
        return fail(EINVAL);
    if (n > CORIO__MAX_RW)
        n = CORIO__MAX_RW;
    uint64_t pos = off ? (uint64_t)*off : of->pos;
    size_t done = 0;
    char buf[8192];
    while (done < n) {
        size_t want = n - done < sizeof buf ? n - done : sizeof buf;
        struct iovec one = {buf, want};
        ssize_t got = file_rw(w, of, false, false, &one, 1, (int64_t)(pos + done));
        if (got <= 0) {
            if (got < 0 && !done)
                return fail((int)-got);
            break;
        }
        ssize_t put = outf->ops->write(w, outf->obj, buf, (size_t)got);
        if (put < 0) {
            if (!done)
                return fail((int)-put);
            break;
        }
        done += (size_t)put;
        if (put < got)
            break;
        outf = corio__sim_fd_get(w, out_fd); /* a write may have grown the table */
        if (!outf)
            break;
    }
    if (off)
        *off = (off_t)(pos + done);
    else
        of->pos = pos + done;
    return (ssize_t)done;
}

/* ------------------------------------------------------------------ */
/* Crash and teardown                                                  */
/* ------------------------------------------------------------------ */

/* Does n's (restored) path reach the root?  At most as many steps as
 * there are nodes, so a cycle of durable names cannot loop. */
static bool reachable(const dnode *n, size_t nodes)
{
    for (size_t i = 0; n && i <= nodes; i++, n = n->parent)
        if (n->root)
            return true;
    return false;
}

void corio__sim_disk_crash(corio__sim *w, corio__sim_host *h)
{
    disk *d = h->disk;
    if (!d)
        return;
    for (corio__list *l = d->files.next; l != &d->files; l = l->next) {
        ofile *of = CORIO__CONTAINER_OF(l, ofile, link);
        if (of->n) {
            of->n->opens--;
            of->n = NULL;
        }
        of->dead = true;
    }
    size_t count = 0, lost = 0;
    for (corio__list *l = d->nodes.next; l != &d->nodes; l = l->next) {
        dnode *n = CORIO__CONTAINER_OF(l, dnode, link);
        count++;
        /* Data: the durable content and a prefix of the writes after it. */
        size_t keep = n->nlog ? (size_t)corio__sim_below(w, n->nlog + 1) : 0;
        if (n->nlog)
            corio__sim_trace(w, CORIO__SIM_EV_DISK, "crash keeps", n->ino, (uint64_t)keep << 32 | n->nlog);
        size_t i = 0;
        for (wlog *e = n->log; e && i < keep; e = e->next, i++)
            if (!apply(&n->ddata, &n->dsize, &n->dcap, e))
                break;
        log_free(n);
        if (grow(&n->data, &n->cap, n->dsize)) {
            if (n->dsize)
                memcpy(n->data, n->ddata, n->dsize);
            n->size = n->dsize;
        }
        /* Names: the durable ones. */
        if (!n->root) {
            n->parent = n->dparent;
            memcpy(n->name, n->dname, sizeof n->name);
        }
    }
    for (corio__list *l = d->nodes.next; l != &d->nodes; l = l->next) {
        dnode *n = CORIO__CONTAINER_OF(l, dnode, link);
        if (!n->root && !reachable(n, count)) {
            n->parent = NULL;
            lost++;
        }
    }
    for (corio__list *l = d->nodes.next; l != &d->nodes; l = l->next) {
        dnode *n = CORIO__CONTAINER_OF(l, dnode, link);
        if (!n->root && !n->parent && n->dparent)
            set_durable(d, n, NULL, NULL);
    }
    d->used = UINT64_MAX / 2; /* sizes changed above: gc subtracts from this, then it is counted afresh */
    gc(d);
    d->used = 0;
    count = 0;
    for (corio__list *l = d->nodes.next; l != &d->nodes; l = l->next) {
        d->used += CORIO__CONTAINER_OF(l, dnode, link)->size;
        count++;
    }
    corio__sim_trace(w, CORIO__SIM_EV_DISK, "crash", count, lost);
}

void corio__sim_disk_destroy(corio__sim *w)
{
    for (unsigned id = 0;; id++) {
        corio__sim_host *h = corio__sim_host_get(w, id);
        if (!h)
            break;
        disk *d = h->disk;
        if (!d)
            continue;
        while (!corio__list_empty(&d->files)) {
            ofile *of = CORIO__CONTAINER_OF(d->files.next, ofile, link);
            corio__list_remove(&of->link);
            corio__free(of);
        }
        while (!corio__list_empty(&d->nodes))
            node_free(d, CORIO__CONTAINER_OF(d->nodes.next, dnode, link));
        corio__free(d);
        h->disk = NULL;
    }
}
