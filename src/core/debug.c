/*
 * Debug mode (asyncio's debug mode): corio_config.debug, or CORIO_DEBUG=1
 * in the environment.
 *
 * Two checks, each naming the task and where it was spawned on stderr:
 *  - a task step (one resume, until the task suspends or ends) that holds
 *    the loop longer than slow_step_ms: the loop cannot serve anyone else
 *    meanwhile (asyncio's "Executing <Task> took 0.123 seconds");
 *  - at the loop's end, every task handle never joined or detached: the
 *    task's result and error were never looked at.
 * With debug mode off the loop pays one predictable branch per step and
 * reads no clock for it (loop.c, run_one).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_SLOW_STEP_MS 100

static unsigned env_unsigned(const char *name)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    return (*end || v > 3600u * 1000u) ? 0 : (unsigned)v;
}

void corio__debug_init(corio_loop *l, const corio_config *cfg)
{
    int d = cfg ? cfg->debug : 0;
    if (d == 0) {
        const char *e = getenv("CORIO_DEBUG");
        d = (e && *e && strcmp(e, "0") != 0) ? 1 : -1;
    }
    l->debug = d > 0;
    unsigned ms = cfg ? cfg->slow_step_ms : 0;
    if (!ms)
        ms = env_unsigned("CORIO_DEBUG_SLOW_MS");
    if (!ms)
        ms = DEFAULT_SLOW_STEP_MS;
    l->slow_step_ns = (uint64_t)ms * 1000000u;
}

/* One line to stderr in one write, so lines from several loops (threads)
 * do not interleave mid-line. */
static void say(const char *line, size_t n)
{
    while (n) {
        ssize_t w = write(STDERR_FILENO, line, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        line += w;
        n -= (size_t)w;
    }
}

static const char *name_of(const corio_task *t) { return t->name[0] ? t->name : "(unnamed)"; }

void corio__debug_step(corio_loop *l, corio_task *t)
{
    uint64_t start = corio__clock_ns();
    corio__task_resume(l, t);
    uint64_t took = corio__clock_ns() - start;
    if (CORIO__LIKELY(took <= l->slow_step_ns))
        return;
    char site[512], line[768];
    corio__format_site(site, sizeof site, t->spawn_site);
    int n = snprintf(line, sizeof line, "corio: task '%s' (spawned at %s) held the loop for %llu ms\n",
                     name_of(t), site, (unsigned long long)(took / 1000000u));
    if (n > 0)
        say(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Members of a task group are the group's to wait for: their handles are
 * never given to the program, so they are never "unjoined".
 * HOOK for the task groups (src/core/task.c): answer true for a group
 * member once groups mark their members with a flag. */
static bool owned_by_group(const corio_task *t)
{
    (void)t;
    return false;
}

void corio__debug_unjoined(corio_loop *l, corio_task *t)
{
    (void)l;
    if (owned_by_group(t))
        return;
    char site[512], line[768];
    corio__format_site(site, sizeof site, t->spawn_site);
    int n = snprintf(line, sizeof line,
                     "corio: task '%s' (spawned at %s) %s, but its handle was never joined or detached\n",
                     name_of(t), site, (t->flags & CORIO__T_CANCELLED) ? "was cancelled and ended" : "ended");
    if (n > 0)
        say(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}
