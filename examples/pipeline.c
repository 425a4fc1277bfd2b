/*
 * pipeline: producers and consumers around a bounded queue, in one task group.
 *
 *   pipeline [--fail-at K] [N]      (N items per producer, default 100000)
 *
 * Three producers put N numbers each into a queue that holds at most
 * QUEUE_CAP of them; two consumers take them out and fold each into a
 * checksum that does not depend on the order (a sum of hashed values), so
 * every run with the same N prints the same checksum:
 *
 *     checksum 0xa964ad710ad69b92 consumed 300000 (c0 150000, c1 150000)
 *
 * What it shows:
 *  - a task group (corio_group_*) is asyncio's TaskGroup: the main task
 *    spawns all five tasks into it and leaves through corio_group_join,
 *    which waits for every one of them;
 *  - the queue's shutdown (Python 3.13's Queue.shutdown) tells the
 *    consumers that no more items will come: the last producer to finish
 *    shuts the queue down, and the consumers take what is left and then
 *    get -ESHUTDOWN from corio_queue_get, their signal to stop;
 *  - items are copied into the queue by value (item_size), so nothing is
 *    allocated per item;
 *  - a failure cancels everything: with --fail-at K, producer 1 fails
 *    with corio_fail(-EIO) after putting K items; the group cancels the
 *    other four tasks (their waits return -ECANCELED and they return),
 *    corio_group_join returns the error and corio_group_failed how many
 *    tasks failed.  The program says so on stderr and exits with status 1.
 */
#include <corio.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCERS 3
#define CONSUMERS 2
#define QUEUE_CAP 1024

static struct {
    uint64_t per_producer;   /* N */
    uint64_t fail_at;        /* producer 1 fails after this many items */
    bool fail;               /* --fail-at was given */
    corio_queue *q;          /* uint64_t items */
    unsigned producers_left; /* the last one out shuts the queue down */
    struct {
        uint64_t count, sum;
    } consumer[CONSUMERS];
} g;

/* splitmix64's finaliser: a cheap, well-mixed hash, so the checksum
 * catches a lost, duplicated or altered item. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static void *producer(void *arg)
{
    uint64_t id = (uintptr_t)arg;
    for (uint64_t i = 0; i < g.per_producer; i++) {
        if (g.fail && id == 1 && i == g.fail_at)
            return corio_fail(-EIO);
        uint64_t v = id * g.per_producer + i; /* every item distinct */
        int r = corio_queue_put(g.q, &v);     /* waits while the queue is full */
        if (r < 0)
            /* -ECANCELED: another task failed and the group is stopping
             * us; reporting it is harmless, the group does not count a
             * cancellation it caused as a failure. */
            return corio_fail(r);
    }
    if (--g.producers_left == 0)
        corio_queue_shutdown(g.q, false); /* the consumers drain the rest, then stop */
    return NULL;
}

static void *consumer(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t v, count = 0, sum = 0;
    int r;
    while ((r = corio_queue_get(g.q, &v)) == 0) {
        sum += mix(v);
        count++;
        /* A real consumer would now wait for something (write the result
         * out, call a service), letting the other consumer take the next
         * item.  This one computes only, and a get from a queue that has
         * items does not wait, so without this yield the first consumer
         * would take almost everything: the loop is cooperative. */
        if ((r = corio_yield()) < 0)
            break;
    }
    g.consumer[id].count = count;
    g.consumer[id].sum = sum;
    /* -ESHUTDOWN: shut down and empty, the normal end; -ECANCELED: the
     * group is stopping us */
    return r == -ESHUTDOWN ? NULL : corio_fail(r);
}

static void *main_task(void *arg)
{
    (void)arg;
    corio_queue_config qc = {.kind = CORIO_QUEUE_FIFO, .capacity = QUEUE_CAP, .item_size = sizeof(uint64_t)};
    g.q = corio_queue_new(&qc);
    if (!g.q) {
        fprintf(stderr, "pipeline: %s\n", strerror(errno));
        return (void *)1;
    }
    g.producers_left = PRODUCERS;

    corio_group tg;
    corio_group_init(&tg);
    char name[16];
    for (uintptr_t i = 0; i < CONSUMERS; i++) {
        snprintf(name, sizeof name, "consumer%u", (unsigned)i);
        if (!corio_group_spawn_named(&tg, name, 0, consumer, (void *)i))
            break;
    }
    for (uintptr_t i = 0; i < PRODUCERS; i++) {
        snprintf(name, sizeof name, "producer%u", (unsigned)i);
        if (!corio_group_spawn_named(&tg, name, 0, producer, (void *)i))
            break;
    }
    /* A spawn can only fail for lack of memory (or once a member has
     * failed): the group is then cancelled so nobody waits for the
     * missing tasks. */
    if (corio_group_size(&tg) < PRODUCERS + CONSUMERS && corio_group_failed(&tg) == 0) {
        fprintf(stderr, "pipeline: cannot start the tasks: %s\n", strerror(errno));
        corio_group_cancel(&tg);
    }
    int r = corio_group_join(&tg); /* every member has ended when it returns */
    unsigned failed = corio_group_failed(&tg);
    corio_queue_free(g.q);

    uint64_t total = 0, sum = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        total += g.consumer[i].count;
        sum += g.consumer[i].sum;
    }
    if (r < 0) {
        fprintf(stderr,
                "pipeline: failed: %s (%u task%s failed); consumed %" PRIu64 " items before the cancel\n",
                corio_strerror(r), failed, failed == 1 ? "" : "s", total);
        return (void *)1;
    }
    printf("checksum 0x%016" PRIx64 " consumed %" PRIu64 " (c0 %" PRIu64 ", c1 %" PRIu64 ")\n", sum, total,
           g.consumer[0].count, g.consumer[1].count);
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: pipeline [--fail-at K] [N]\n");
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    g.per_producer = 100000;
    int i = 1;
    if (i < argc && strcmp(argv[i], "--fail-at") == 0) {
        if (i + 1 >= argc || !parse_u64(argv[i + 1], &g.fail_at))
            return usage();
        g.fail = true;
        i += 2;
    }
    if (i < argc && !parse_u64(argv[i++], &g.per_producer))
        return usage();
    if (i < argc || g.per_producer > UINT64_MAX / PRODUCERS)
        return usage();

    void *res = NULL;
    int r = corio_run(NULL, main_task, NULL, &res);
    if (r < 0) {
        fprintf(stderr, "pipeline: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
