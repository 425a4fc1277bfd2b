/*
 * Task groups (asyncio.TaskGroup, trio nurseries): a set of tasks that end
 * together, owned by the task that opened the group.
 *
 * The group lives in the caller's corio_group (usually on the owner's
 * stack) and links its members through their group_link, so spawning
 * allocates nothing beyond the task itself.  A member is freed by the group
 * as soon as it ends, once its outcome is counted, so a long-lived group
 * with many short members stays small.  The first member to fail cancels
 * the others and, unless it is already waiting in corio_group_join, the
 * owner; that cancellation of the owner is withdrawn when the join returns
 * (asyncio 3.11's uncancel), through a count of group cancellations kept
 * apart from corio_task_cancel's, so a cancel the program asked for stays.
 * An owner that ends without joining (a bug) turns its members into
 * detached tasks, found through their group_owner: the group itself may be
 * gone by then (it lived in a frame that has returned).
 */
#include "internal.h"

#include <string.h>

#define GROUP_MAGIC 0x67525570u

enum {
    G_ABORTING = 1u << 0,        /* members cancelled; spawning is refused (ECANCELED) */
    G_JOINING = 1u << 1,         /* the owner is in corio_group_join */
    G_CLOSED = 1u << 2,          /* corio_group_join returned (ESHUTDOWN) */
    G_OWNER_CANCELLED = 1u << 3, /* a failure cancelled the owner: withdraw at join */
};

typedef struct corio__group {
    uint32_t magic;
    uint32_t flags;
    corio_task *owner;
    corio__list members; /* running members, through corio_task.group_link */
    size_t size;
    unsigned failed;
    int error; /* the first failure */
} corio__group;

_Static_assert(sizeof(corio__group) <= sizeof(corio_group), "corio_group too small");
_Static_assert(_Alignof(corio__group) <= _Alignof(corio_group), "corio_group misaligned");

static corio__group *group_of(const corio_group *g)
{
    corio__group *gr = (corio__group *)(void *)g;
    return gr && gr->magic == GROUP_MAGIC ? gr : NULL;
}

int corio_group_init(corio_group *g)
{
    if (!g)
        return -EINVAL;
    corio_task *self = corio__current_task();
    if (!self)
        return -EPERM;
    if (self->open_groups == UINT16_MAX)
        return -EOVERFLOW;
    corio__group *gr = (corio__group *)(void *)g;
    memset(g, 0, sizeof *g);
    gr->magic = GROUP_MAGIC;
    gr->owner = self;
    corio__list_init(&gr->members);
    self->open_groups++;
    return 0;
}

/* Stop the group: cancel every member, refuse new ones and, for a
 * member's failure, cancel the owner too so its own waits end and it
 * reaches corio_group_join (which withdraws that). */
static void group_abort(corio__group *gr, bool failure)
{
    gr->flags |= G_ABORTING;
    for (corio__list *n = gr->members.next; n != &gr->members;) {
        corio_task *m = CORIO__CONTAINER_OF(n, corio_task, group_link);
        n = n->next;
        corio_task_cancel(m);
    }
    if (failure && !(gr->flags & (G_JOINING | G_OWNER_CANCELLED))) {
        gr->flags |= G_OWNER_CANCELLED;
        corio__task_group_cancel(gr->owner);
    }
}

/* site: the user's call site (task dumps and debug mode name it). */
static corio_task *group_spawn(corio_group *g, const char *name, size_t stack_size, corio_fn fn, void *arg,
                               const void *site)
{
    corio__group *gr = group_of(g);
    if (!gr || !fn) {
        errno = EINVAL;
        return NULL;
    }
    corio_loop *l = corio__loop();
    if (!l) {
        errno = EPERM;
        return NULL;
    }
    if (gr->flags & G_CLOSED) {
        errno = ESHUTDOWN;
        return NULL;
    }
    if (gr->owner->loop != l) {
        errno = EINVAL;
        return NULL;
    }
    if (gr->flags & G_ABORTING) {
        errno = ECANCELED;
        return NULL;
    }
    corio_task *t = corio__spawn(l, name, stack_size, fn, arg);
    if (!t)
        return NULL;
    t->spawn_site = site;
    t->flags |= CORIO__T_GROUPED;
    t->group = gr;
    t->group_owner = gr->owner;
    t->group_link.prev = t->group_link.next = NULL;
    corio__list_push_back(&gr->members, &t->group_link);
    gr->size++;
    return t;
}

corio_task *corio_group_spawn_named(corio_group *g, const char *name, size_t stack_size, corio_fn fn,
                                    void *arg)
{
    return group_spawn(g, name, stack_size, fn, arg, __builtin_return_address(0));
}

corio_task *corio_group_spawn(corio_group *g, corio_fn fn, void *arg)
{
    return group_spawn(g, NULL, 0, fn, arg, __builtin_return_address(0));
}

void corio__group_member_ended(corio_task *t)
{
    corio__group *gr = t->group;
    corio__list_remove(&t->group_link);
    gr->size--;
    if (corio__task_failed(t)) {
        gr->failed++;
        if (!gr->error) {
            gr->error = t->error;
            group_abort(gr, true);
        }
    }
    corio__task_free(t);
    if (gr->size == 0 && (gr->flags & G_JOINING))
        corio__wake(gr->owner, 0);
}

void corio__group_orphan(corio_task *owner)
{
    /* Never reads a group: only the members' own fields. */
    corio_loop *l = owner->loop;
    for (corio__list *n = l->live_tasks.next; n != &l->live_tasks; n = n->next) {
        corio_task *m = CORIO__CONTAINER_OF(n, corio_task, live);
        if ((m->flags & CORIO__T_GROUPED) && m->group_owner == owner) {
            m->flags = (m->flags & ~CORIO__T_GROUPED) | CORIO__T_DETACHED;
            m->joiner = NULL;
            m->watchers = NULL;
        }
    }
    owner->open_groups = 0;
}

int corio_group_cancel(corio_group *g)
{
    corio__group *gr = group_of(g);
    if (!gr)
        return -EINVAL;
    if (!(gr->flags & G_CLOSED))
        group_abort(gr, false);
    return 0;
}

/* Waits interruptibly until the owner's first interruption, which aborts
 * the group; from then on it waits without regard to cancellation, since
 * the members must be awaited whatever happens (their cleanup runs before
 * the join returns).  The last member to end wakes it. */
int corio_group_join(corio_group *g)
{
    corio__group *gr = group_of(g);
    if (!gr)
        return -EINVAL;
    corio_task *self = corio__current_task();
    if (!self)
        return -EPERM;
    if (self != gr->owner || (gr->flags & (G_CLOSED | G_JOINING)))
        return -EINVAL;
    gr->flags |= G_JOINING;
    int intr = 0;
    while (gr->size) {
        if (intr) {
            corio__suspend_uninterruptible(gr, "group join (cancelling)");
            continue;
        }
        int r = corio__check();
        if (!r)
            r = corio__suspend(NULL, gr, "group join", CORIO__NO_DEADLINE);
        if (r < 0) {
            intr = r;
            group_abort(gr, false);
        }
    }
    gr->flags = (gr->flags & ~G_JOINING) | G_CLOSED;
    self->open_groups--;
    if (gr->flags & G_OWNER_CANCELLED)
        corio__task_uncancel(self);
    return gr->error ? gr->error : intr;
}

unsigned corio_group_failed(const corio_group *g)
{
    const corio__group *gr = group_of(g);
    return gr ? gr->failed : 0;
}

size_t corio_group_size(const corio_group *g)
{
    const corio__group *gr = group_of(g);
    return gr ? gr->size : 0;
}
