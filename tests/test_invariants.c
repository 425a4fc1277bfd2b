/*
 * Executable invariants (CORIO__ASSERT, src/core/internal.h): in a build
 * that checks them (Debug, sanitizers) a broken one aborts at once with
 * file:line and the condition.  Each case breaks one on purpose in a child
 * process and expects exactly that end; elsewhere the cases are skipped.
 */
#include "runner.h"

#include "internal.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run fn in a child with stderr captured; require it to die of SIGABRT
 * after printing "invariant broken: " followed by want. */
static void expect_broken(void (*fn)(void), const char *want)
{
#ifndef CORIO_ASSERTS
    (void)fn;
    (void)want;
    SKIP("invariants are not checked in this build (Debug and sanitizer builds check them)");
#else
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        fn();
        _exit(0);
    }
    close(p[1]);
    char out[512];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof out - 1 && (n = read(p[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = 0;
    close(p[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    char line[256];
    snprintf(line, sizeof line, "invariant broken: %s\n", want);
    CHECK(strstr(out, line) != NULL);
    CHECK(strstr(out, "corio: ") == out);
#endif
}

static void remove_twice(void)
{
    corio__list head, node = {0};
    corio__list_init(&head);
    corio__list_push_back(&head, &node);
    corio__list_remove(&node);
    corio__list_remove(&node);
}

TEST(removing_an_unlinked_list_node_aborts)
{
    expect_broken(remove_twice, "n->next != n && n->next->prev == n && n->prev->next == n");
}

static void push_twice(void)
{
    corio__list a, b, node = {0};
    corio__list_init(&a);
    corio__list_init(&b);
    corio__list_push_back(&a, &node);
    corio__list_push_back(&b, &node);
}

TEST(inserting_a_linked_list_node_aborts) { expect_broken(push_twice, "n->next == NULL || n->next == n"); }

static void complete_done(void)
{
    /* As a completion leaves it: a second completion must not wake (or
     * call back) anyone again. */
    corio__op op = {.kind = CORIO__OP_POLL, .state = CORIO__OPS_DONE};
    corio__op_complete(&op, 0);
}

TEST(completing_an_op_that_is_not_pending_aborts)
{
    expect_broken(complete_done, "op->state == CORIO__OPS_PENDING || op->state == CORIO__OPS_CANCELLING");
}

static void timer_not_in_heap(void)
{
    corio_loop l = {0};
    corio__timer t;
    corio__timer_init(&t, (corio__timer_fn)abort);
    t.heap_index = 3; /* claims a slot of an empty heap */
    corio__timer_disarm(&l, &t);
}

TEST(disarming_a_timer_the_heap_does_not_hold_aborts)
{
    expect_broken(timer_not_in_heap, "t->heap_index < h->len && h->items[t->heap_index] == t");
}
