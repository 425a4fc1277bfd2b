/*
 * Misuse of the public API gives a clean error, never a crash (issue 8):
 * a NULL handle or required pointer is -EINVAL from functions returning a
 * status, NULL with errno EINVAL from functions returning a pointer, false
 * or 0 from queries, and nothing at all from void functions (as free(NULL)).
 * A stack size no address space can hold is EINVAL too, and the largest
 * time-outs mean "as long as it takes" instead of wrapping around.  Every
 * public function of corio.h and corio/http.h that takes a pointer is
 * called here with NULL; after each group a real call on the same objects
 * shows that nothing was disturbed.
 */
#include "runner.h"

#include "corio/http.h"
#include "corio/sim.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static void *return_arg(void *arg) { return arg; }

/* A pointer-returning call that must give NULL with errno EINVAL. */
#define CHECK_NULL_EINVAL(expr)                                                                              \
    do {                                                                                                     \
        errno = 0;                                                                                           \
        const void *p_ = (expr);                                                                             \
        if (p_ != NULL || errno != EINVAL)                                                                   \
            test_fail(__FILE__, __LINE__, "%s gave %p with errno %d, expected NULL and EINVAL", #expr, p_,   \
                      errno);                                                                                \
    } while (0)

/* ---- loop, tasks, events ---- */

TEST(run_rejects_impossible_config_and_null_main)
{
    void *res = (void *)1;
    corio_config huge = {.stack_size = SIZE_MAX};
    CHECK_ERR(corio_run(&huge, return_arg, NULL, &res), -EINVAL);
    corio_config wrap = {.stack_size = SIZE_MAX / 64}; /* a slab of 64 such stacks overflows size_t */
    CHECK_ERR(corio_run(&wrap, return_arg, NULL, &res), -EINVAL);
    corio_config bad_backend = {.backend = (corio_backend_kind)77};
    CHECK_ERR(corio_run(&bad_backend, return_arg, NULL, &res), -EINVAL);
    CHECK_ERR(corio_run(NULL, NULL, NULL, &res), -EINVAL);
    CHECK(res == (void *)1); /* untouched */
    /* nothing was left behind: a loop starts on this thread as usual */
    corio_config big = {.stack_size = 1u << 20};
    CHECK_ERR(corio_run(&big, return_arg, (void *)7, &res), 0);
    CHECK(res == (void *)7);
}

static void *spawn_main(void *arg)
{
    errno = 0;
    CHECK(corio_spawn_named("huge", SIZE_MAX, return_arg, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    errno = 0;
    CHECK(corio_spawn_named("wraps", SIZE_MAX / 64, return_arg, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_NULL_EINVAL(corio_spawn(NULL, NULL));
    CHECK_NULL_EINVAL(corio_spawn_named("nofn", 0, NULL, NULL));
    /* the loop is fine: a task with an unusual but possible size runs */
    corio_task *t = corio_spawn_named("odd size", 100001, return_arg, (void *)5);
    CHECK(t);
    void *r = NULL;
    CHECK_OK(corio_task_join(t, &r));
    CHECK(r == (void *)5);
    return NULL;
}

TEST(spawn_rejects_unmappable_stack_and_null_function) { test_run(spawn_main, NULL); }

static void *task_null_main(void *arg)
{
    void *r = (void *)1;
    CHECK_ERR(corio_task_cancel(NULL), -EINVAL);
    CHECK_ERR(corio_task_join(NULL, &r), -EINVAL);
    CHECK(r == (void *)1);
    CHECK_ERR(corio_task_detach(NULL), -EINVAL);
    CHECK_ERR(corio_gather(NULL, 2, NULL), -EINVAL);
    CHECK_ERR(corio_gather(NULL, 0, NULL), 0); /* an empty list needs no array */
    corio_task *list[2] = {corio_spawn(return_arg, NULL), NULL};
    CHECK_ERR(corio_gather(list, 2, NULL), -EINVAL); /* nothing joined: list[0] is still ours */
    CHECK_NULL_EINVAL(corio_task_name(NULL));
    CHECK(!corio_task_done(NULL));
    CHECK_OK(corio_task_join(list[0], NULL));
    return NULL;
}

TEST(task_functions_reject_null)
{
    test_run(task_null_main, NULL);
    /* outside a loop the NULL is still what is reported */
    CHECK_ERR(corio_task_join(NULL, NULL), -EINVAL);
    CHECK_ERR(corio_task_cancel(NULL), -EINVAL);
}

static void *outcome_null_main(void *arg)
{
    CHECK_EQ(corio_task_error(NULL), 0);
    CHECK(corio_task_result(NULL) == NULL);
    void *r = (void *)1;
    CHECK_ERR(corio_task_wait_for(NULL, 10, &r), -EINVAL);
    CHECK(r == (void *)1);
    corio_outcome out[2] = {{(void *)1, 1}, {(void *)1, 1}};
    CHECK_ERR(corio_gather_outcomes(NULL, 2, out), -EINVAL);
    CHECK_ERR(corio_gather_outcomes(NULL, 0, NULL), 0);
    corio_task *list[2] = {corio_spawn(return_arg, NULL), NULL};
    CHECK_ERR(corio_gather_outcomes(list, 2, out), -EINVAL); /* nothing joined or written */
    CHECK(out[0].result == (void *)1 && out[0].error == 1);
    CHECK_ERR(corio_task_wait_for(corio_current(), 10, NULL), -EINVAL);
    /* corio_wait: NULL list, NULL task, a mode outside the enum, a task twice, the caller */
    CHECK_ERR(corio_wait(NULL, 1, CORIO_WAIT_ALL_COMPLETED, 0), -EINVAL);
    CHECK_ERR(corio_wait(list, 2, CORIO_WAIT_ALL_COMPLETED, 0), -EINVAL);
    CHECK_ERR(corio_wait(list, 1, (corio_wait_mode)3, 0), -EINVAL);
    corio_task *twice[2] = {list[0], list[0]};
    CHECK_ERR(corio_wait(twice, 2, CORIO_WAIT_ALL_COMPLETED, 0), -EINVAL);
    corio_task *self = corio_current();
    CHECK_ERR(corio_wait(&self, 1, CORIO_WAIT_ALL_COMPLETED, 0), -EINVAL);
    /* as_completed */
    corio_as_completed it;
    corio_task *got = NULL;
    CHECK_ERR(corio_as_completed_init(NULL, list, 1, 0), -EINVAL);
    CHECK_ERR(corio_as_completed_init(&it, NULL, 1, 0), -EINVAL);
    CHECK_ERR(corio_as_completed_init(&it, twice, 2, 0), -EINVAL);
    CHECK_ERR(corio_as_completed_next(NULL, &got), -EINVAL);
    CHECK_OK(corio_as_completed_init(&it, list, 1, CORIO_NO_TIMEOUT));
    CHECK_ERR(corio_as_completed_next(&it, NULL), -EINVAL);
    corio_as_completed_end(NULL);
    CHECK_EQ(corio_as_completed_next(&it, &got), 1);
    CHECK(got == list[0]);
    corio_as_completed_end(&it);
    /* a detached task cannot be waited on */
    corio_task *d = corio_spawn(return_arg, NULL);
    CHECK_OK(corio_task_detach(d));
    CHECK_ERR(corio_wait(&d, 1, CORIO_WAIT_ALL_COMPLETED, 0), -EINVAL);
    CHECK_ERR(corio_task_wait_for(d, 10, NULL), -EINVAL);
    CHECK_ERR(corio_gather_outcomes(&d, 1, NULL), -EINVAL);
    CHECK_OK(corio_task_join(list[0], NULL)); /* the loop is fine */
    return NULL;
}

TEST(outcome_and_wait_functions_reject_null_and_misuse)
{
    test_run(outcome_null_main, NULL);
    CHECK(corio_fail(-EIO) == NULL); /* outside a task: nothing to fail */
    CHECK_ERR(corio_task_wait_for(NULL, 0, NULL), -EINVAL);
    CHECK_ERR(corio_wait(NULL, 0, CORIO_WAIT_ALL_COMPLETED, 0), -EPERM);
    corio_as_completed it;
    CHECK_ERR(corio_as_completed_init(&it, NULL, 0, 0), -EPERM);
}

static void *grp_member(void *arg) { return arg; }

static void *group_owner_of(void *arg)
{
    corio_group *g = arg;
    return (void *)(intptr_t)corio_group_join(g);
}

static void *group_misuse_main(void *arg)
{
    corio_group zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    CHECK_ERR(corio_group_init(NULL), -EINVAL);
    CHECK_NULL_EINVAL(corio_group_spawn(NULL, grp_member, NULL));
    CHECK_NULL_EINVAL(corio_group_spawn_named(NULL, "x", 0, grp_member, NULL));
    CHECK_NULL_EINVAL(corio_group_spawn(&zeroed, grp_member, NULL)); /* never initialised */
    CHECK_ERR(corio_group_cancel(NULL), -EINVAL);
    CHECK_ERR(corio_group_join(NULL), -EINVAL);
    CHECK_ERR(corio_group_join(&zeroed), -EINVAL);
    CHECK_EQ(corio_group_failed(NULL), 0);
    CHECK_EQ(corio_group_size(NULL), 0);
    corio_group g;
    CHECK_OK(corio_group_init(&g));
    CHECK_NULL_EINVAL(corio_group_spawn(&g, NULL, NULL));
    errno = 0;
    CHECK(corio_group_spawn_named(&g, "huge", SIZE_MAX, grp_member, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    corio_task *m = corio_group_spawn(&g, grp_member, (void *)3);
    CHECK(m);
    /* the member belongs to the group */
    CHECK_ERR(corio_task_join(m, NULL), -EINVAL);
    CHECK_ERR(corio_task_detach(m), -EINVAL);
    CHECK_ERR(corio_gather(&m, 1, NULL), -EINVAL);
    /* only the owner joins */
    corio_task *other = corio_spawn(group_owner_of, &g);
    void *r;
    CHECK_OK(corio_task_join(other, &r));
    CHECK_ERR((intptr_t)r, -EINVAL);
    CHECK_EQ(corio_group_size(&g), 0); /* the member ran meanwhile and was freed */
    CHECK_OK(corio_group_join(&g));
    CHECK_ERR(corio_group_join(&g), -EINVAL);
    return NULL;
}

TEST(group_functions_reject_null_and_misuse)
{
    test_run(group_misuse_main, NULL);
    corio_group g;
    CHECK_ERR(corio_group_init(&g), -EPERM); /* outside a task */
    corio_shield s = corio_shield_push(5);   /* outside a task: nothing to shield */
    corio_shield_pop(s);
}

static void *event_null_main(void *arg)
{
    corio_event_init(NULL);
    corio_event_set(NULL);
    corio_event_clear(NULL);
    CHECK(!corio_event_is_set(NULL));
    CHECK_ERR(corio_event_wait(NULL), -EINVAL);
    corio_event e;
    corio_event_init(&e);
    corio_event_set(&e);
    CHECK_OK(corio_event_wait(&e));
    return NULL;
}

TEST(event_functions_reject_null) { test_run(event_null_main, NULL); }

/* ---- queues ---- */

static int cmp_never(const void *a, const void *b) { return 0; }

static void *queue_null_main(void *arg)
{
    corio_queue_config bad_kind = {.kind = (corio_queue_kind)77};
    CHECK_NULL_EINVAL(corio_queue_new(&bad_kind));
    corio_queue_config no_compare = {.kind = CORIO_QUEUE_PRIORITY};
    CHECK_NULL_EINVAL(corio_queue_new(&no_compare));
    corio_queue_config overflow = {.capacity = SIZE_MAX};
    CHECK_NULL_EINVAL(corio_queue_new(&overflow));
    corio_queue_config overflow_values = {.capacity = SIZE_MAX / 4, .item_size = 8};
    CHECK_NULL_EINVAL(corio_queue_new(&overflow_values));
    corio_queue_config overflow_heap = {
        .kind = CORIO_QUEUE_PRIORITY, .capacity = SIZE_MAX / 8, .compare = cmp_never};
    CHECK_NULL_EINVAL(corio_queue_new(&overflow_heap));

    void *p = (void *)1;
    corio_queue_free(NULL);
    CHECK_ERR(corio_queue_put(NULL, p), -EINVAL);
    CHECK_ERR(corio_queue_try_put(NULL, p), -EINVAL);
    CHECK_ERR(corio_queue_get(NULL, &p), -EINVAL);
    CHECK_ERR(corio_queue_try_get(NULL, &p), -EINVAL);
    CHECK(p == (void *)1);
    CHECK_ERR(corio_queue_task_done(NULL), -EINVAL);
    CHECK_ERR(corio_queue_join(NULL), -EINVAL);
    CHECK_ERR(corio_queue_shutdown(NULL, true), -EINVAL);
    CHECK_EQ(corio_queue_size(NULL), 0);

    /* a value queue needs the item's address; any queue needs somewhere
     * to put what get takes */
    corio_queue_config values = {.capacity = 2, .item_size = sizeof(int)};
    corio_queue *q = corio_queue_new(&values);
    CHECK(q);
    CHECK_ERR(corio_queue_put(q, NULL), -EINVAL);
    CHECK_ERR(corio_queue_try_put(q, NULL), -EINVAL);
    int v = 7;
    CHECK_OK(corio_queue_put(q, &v));
    CHECK_ERR(corio_queue_get(q, NULL), -EINVAL);
    CHECK_ERR(corio_queue_try_get(q, NULL), -EINVAL);
    CHECK_EQ(corio_queue_size(q), 1); /* nothing taken */
    v = 0;
    CHECK_OK(corio_queue_get(q, &v));
    CHECK_EQ(v, 7);
    corio_queue_free(q);
    /* cfg NULL: an unbounded FIFO of pointers */
    q = corio_queue_new(NULL);
    CHECK(q);
    CHECK_OK(corio_queue_put(q, (void *)5));
    CHECK_ERR(corio_queue_get(q, NULL), -EINVAL);
    CHECK_OK(corio_queue_get(q, &p));
    CHECK(p == (void *)5);
    corio_queue_free(q);
    return NULL;
}

TEST(queue_functions_reject_null) { test_run(queue_null_main, NULL); }

TEST(queue_outside_a_loop_never_waits)
{
    /* no task to suspend: what would have to wait is -EPERM, the rest works */
    corio_queue_config one = {.capacity = 1};
    corio_queue *q = corio_queue_new(&one);
    CHECK(q);
    void *p = NULL;
    CHECK_ERR(corio_queue_get(q, &p), -EPERM);
    CHECK_OK(corio_queue_put(q, (void *)3));
    CHECK_ERR(corio_queue_put(q, (void *)4), -EPERM);
    CHECK_ERR(corio_queue_try_put(q, (void *)4), -EAGAIN);
    CHECK_ERR(corio_queue_join(q), -EPERM);
    CHECK_OK(corio_queue_try_get(q, &p));
    CHECK(p == (void *)3);
    CHECK_OK(corio_queue_task_done(q));
    CHECK_OK(corio_queue_join(q));
    corio_queue_free(q);
}
/* ---- locks, conditions, semaphores, barriers ---- */

static bool pred_true(void *arg) { return true; }

static void *sync_null_main(void *arg)
{
    corio_lock_init(NULL);
    CHECK_ERR(corio_lock_acquire(NULL), -EINVAL);
    CHECK_ERR(corio_lock_try_acquire(NULL), -EINVAL);
    CHECK_ERR(corio_lock_release(NULL), -EINVAL);
    CHECK(!corio_lock_locked(NULL));

    corio_cond_init(NULL, NULL);
    CHECK_ERR(corio_cond_wait(NULL), -EINVAL);
    CHECK_ERR(corio_cond_wait_until(NULL, pred_true, NULL), -EINVAL);
    CHECK_ERR(corio_cond_notify(NULL), -EINVAL);
    CHECK_ERR(corio_cond_notify_all(NULL), -EINVAL);
    corio_cond no_lock; /* made over a NULL lock: every call fails the same way */
    corio_cond_init(&no_lock, NULL);
    CHECK_ERR(corio_cond_wait(&no_lock), -EINVAL);
    CHECK_ERR(corio_cond_wait_until(&no_lock, pred_true, NULL), -EINVAL);
    CHECK_ERR(corio_cond_notify(&no_lock), -EINVAL);
    CHECK_ERR(corio_cond_notify_all(&no_lock), -EINVAL);

    corio_sem_init(NULL, 1);
    corio_sem_init_bounded(NULL, 1);
    CHECK_ERR(corio_sem_acquire(NULL), -EINVAL);
    CHECK_ERR(corio_sem_try_acquire(NULL), -EINVAL);
    CHECK_ERR(corio_sem_release(NULL), -EINVAL);
    CHECK_EQ(corio_sem_value(NULL), 0);

    CHECK_ERR(corio_barrier_init(NULL, 2), -EINVAL);
    CHECK_ERR(corio_barrier_wait(NULL), -EINVAL);
    CHECK_ERR(corio_barrier_reset(NULL), -EINVAL);
    CHECK_ERR(corio_barrier_abort(NULL), -EINVAL);
    CHECK_EQ(corio_barrier_waiting(NULL), 0);

    /* the real thing still works */
    corio_lock lk;
    corio_cond c;
    corio_sem s;
    corio_barrier b;
    corio_lock_init(&lk);
    corio_cond_init(&c, &lk);
    CHECK_OK(corio_lock_acquire(&lk));
    CHECK_ERR(corio_cond_wait_until(&c, NULL, NULL), -EINVAL);
    CHECK_OK(corio_cond_wait_until(&c, pred_true, NULL));
    CHECK_OK(corio_cond_notify(&c));
    CHECK_OK(corio_lock_release(&lk));
    corio_sem_init_bounded(&s, 1);
    CHECK_OK(corio_sem_acquire(&s));
    CHECK_OK(corio_sem_release(&s));
    CHECK_OK(corio_barrier_init(&b, 1));
    CHECK_EQ(corio_barrier_wait(&b), 0);
    return NULL;
}

TEST(sync_functions_reject_null) { test_run(sync_null_main, NULL); }

/* ---- introspection ---- */

static void *introspect_null_main(void *arg)
{
    CHECK_EQ(corio_all_tasks(NULL, 3), 0); /* no array for a cap above 0 */
    CHECK_EQ(corio_all_tasks(NULL, 0), 1); /* the count alone */
    CHECK_ERR(corio_dump_tasks(-1), -EBADF);
    CHECK_ERR(corio_dump_tasks_on_signal(-1), -EINVAL);
    CHECK_ERR(corio_dump_tasks_on_signal(SIGKILL), -EINVAL);
    corio_task *one;
    CHECK_EQ(corio_all_tasks(&one, 1), 1);
    CHECK(one == corio_current());
    return NULL;
}

TEST(introspection_functions_reject_null)
{
    test_run(introspect_null_main, NULL);
    CHECK_EQ(corio_all_tasks(NULL, 3), 0);
    CHECK_ERR(corio_dump_tasks(-1), -EPERM);
    CHECK_ERR(corio_dump_tasks_on_signal(-1), -EINVAL);
}

/* ---- streams ---- */

static void *stream_null_main(void *arg)
{
    char buf[16];
    size_t got = 99;
    const char *found = "junk";
    struct sockaddr_storage ss;
    socklen_t sl;
    CHECK_ERR(corio_stream_read(NULL, buf, sizeof buf), -EINVAL);
    CHECK_ERR(corio_stream_readexactly(NULL, buf, sizeof buf, &got), -EINVAL);
    CHECK_EQ(got, 0);
    CHECK_ERR(corio_stream_readuntil(NULL, "\n", 1, &found), -EINVAL);
    CHECK(found == NULL);
    CHECK_ERR(corio_stream_readline(NULL, buf, sizeof buf), -EINVAL);
    CHECK(!corio_stream_at_eof(NULL));
    corio_stream_set_limit(NULL, 10);
    CHECK_ERR(corio_stream_write(NULL, "x", 1), -EINVAL);
    CHECK_ERR(corio_stream_drain(NULL), -EINVAL);
    corio_stream_set_write_limits(NULL, 10, 5);
    CHECK_EQ(corio_stream_write_buffer_size(NULL), 0);
    CHECK_ERR(corio_stream_write_eof(NULL), -EINVAL);
    corio_stream_close(NULL);
    CHECK_ERR(corio_stream_aclose(NULL), -EINVAL);
    CHECK_ERR(corio_stream_fd(NULL), -EINVAL);
    CHECK_ERR(corio_stream_sockname(NULL, &ss, &sl), -EINVAL);
    CHECK_ERR(corio_stream_peername(NULL, &ss, &sl), -EINVAL);

    /* a real stream: NULL buffers and separators are refused and the
     * bytes stay where they were */
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    corio_stream *a = corio_stream_from_fd(sv[0]), *b = corio_stream_from_fd(sv[1]);
    CHECK(a && b);
    CHECK_ERR(corio_stream_write(a, NULL, 3), -EINVAL);
    CHECK_ERR(corio_stream_write(a, NULL, 0), 0);
    CHECK_OK(corio_stream_write(a, "one\ntwo\n", 8));
    CHECK_ERR(corio_stream_read(b, NULL, 4), -EINVAL);
    CHECK_ERR(corio_stream_readexactly(b, NULL, 4, NULL), -EINVAL);
    CHECK_ERR(corio_stream_readuntil(b, NULL, 1, &found), -EINVAL);
    CHECK_ERR(corio_stream_readuntil(b, "\n", 1, NULL), -EINVAL);
    CHECK_ERR(corio_stream_readline(b, NULL, 8), -EINVAL);
    CHECK_ERR(corio_stream_sockname(b, NULL, &sl), -EINVAL);
    CHECK_ERR(corio_stream_peername(b, NULL, &sl), -EINVAL);
    CHECK_EQ(corio_stream_readuntil(b, "\n", 1, &found), 4);
    CHECK(memcmp(found, "one\n", 4) == 0);
    CHECK_EQ(corio_stream_readline(b, buf, sizeof buf), 4);
    CHECK_STR(buf, "two\n");
    CHECK_OK(corio_stream_aclose(a));
    CHECK_EQ(corio_stream_read(b, buf, sizeof buf), 0);
    corio_stream_close(b);
    return NULL;
}

TEST(stream_functions_reject_null) { test_run(stream_null_main, NULL); }

/* ---- TCP ---- */

static void conn_ignore(corio_stream *s, void *arg) {}

static void *tcp_null_main(void *arg)
{
    corio_server *srv = (corio_server *)1;
    struct sockaddr_storage ss;
    socklen_t sl;
    CHECK_ERR(corio_server_start("127.0.0.1", 0, NULL, NULL, NULL, &srv), -EINVAL);
    CHECK(srv == NULL);
    CHECK_ERR(corio_server_start("127.0.0.1", 0, conn_ignore, NULL, NULL, NULL), -EINVAL);
    corio_server_config huge = {.stack_size = SIZE_MAX};
    CHECK_ERR(corio_server_start("127.0.0.1", 0, conn_ignore, NULL, &huge, &srv), -EINVAL);
    CHECK_ERR(corio_server_serve_forever(NULL), -EINVAL);
    CHECK_ERR(corio_server_sockname(NULL, 0, &ss, &sl), -EINVAL);
    CHECK_EQ(corio_server_port(NULL), 0);
    CHECK_ERR(corio_server_close(NULL, 0), -EINVAL);
    CHECK_ERR(corio_stream_connect("127.0.0.1", 1, NULL), -EINVAL);

    char buf[32] = "junk";
    CHECK_NULL_EINVAL(corio_addr_format(NULL, buf, sizeof buf));
    CHECK_STR(buf, "");
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(80), .sin_addr = {htonl(0x7f000001)}};
    CHECK_NULL_EINVAL(corio_addr_format((struct sockaddr *)&sin, NULL, 32));
    CHECK_NULL_EINVAL(corio_addr_format((struct sockaddr *)&sin, buf, 0));
    CHECK_STR(corio_addr_format((struct sockaddr *)&sin, buf, sizeof buf), "127.0.0.1:80");

    CHECK_OK(corio_server_start("127.0.0.1", 0, conn_ignore, NULL, NULL, &srv));
    CHECK_ERR(corio_server_sockname(srv, 0, NULL, &sl), -EINVAL);
    CHECK(corio_server_port(srv) != 0);
    CHECK_OK(corio_server_close(srv, 0));
    return NULL;
}

TEST(tcp_functions_reject_null) { test_run(tcp_null_main, NULL); }

/* ---- TLS ---- */

static void *tls_null_main(void *arg)
{
    corio_tls *t = (corio_tls *)1;
    corio_stream *s = (corio_stream *)1;
    corio_tls_options o = {0};
    corio_tls_cert c = {"/nonexistent.pem", "/nonexistent.key"};
    int expect_no_tls = corio_tls_available() ? 0 : -EOPNOTSUPP;
    CHECK_ERR(corio_tls_client_new(&o, NULL), -EINVAL);
    CHECK_ERR(corio_tls_server_new(NULL, NULL), -EINVAL);
    CHECK_ERR(corio_tls_server_new(NULL, &t), expect_no_tls ? expect_no_tls : -EINVAL);
    CHECK(t == NULL);
    CHECK_ERR(corio_tls_reload_certs(NULL, &c, 1), -EINVAL);
    corio_tls_free(NULL);
    (void)corio_tls_kernel_offload_available();
    CHECK_ERR(corio_stream_start_tls(NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(corio_stream_connect_tls("127.0.0.1", 1, NULL, NULL), -EINVAL);
    CHECK_ERR(corio_stream_connect_tls(NULL, 1, NULL, &s), -EINVAL);
    CHECK(s == NULL);
    CHECK(corio_stream_tls_error(NULL) != NULL);
    CHECK(corio_stream_tls_alpn(NULL) == NULL);
    CHECK(corio_stream_tls_version(NULL) == NULL);
    CHECK(!corio_stream_tls_resumed(NULL));
    CHECK(corio_stream_tls_server_name(NULL) == NULL);
    CHECK(!corio_stream_tls_offloaded(NULL));
    /* a plain stream answers as "not TLS" */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    corio_stream *p = corio_stream_from_fd(sv[0]);
    CHECK(p);
    CHECK_STR(corio_stream_tls_error(p), "");
    CHECK(corio_stream_tls_alpn(p) == NULL);
    CHECK(corio_stream_tls_version(p) == NULL);
    CHECK(!corio_stream_tls_resumed(p));
    CHECK(corio_stream_tls_server_name(p) == NULL);
    CHECK(!corio_stream_tls_offloaded(p));
    CHECK_ERR(corio_stream_start_tls(p, NULL, NULL), -EINVAL);
    corio_stream_close(p);
    close(sv[1]);
    if (corio_tls_available()) {
        /* a client config is not a server's; a server needs certificates */
        CHECK_OK(corio_tls_client_new(NULL, &t));
        corio_server_config cfg = {.tls = t};
        corio_server *srv = (corio_server *)1;
        CHECK_ERR(corio_server_start("127.0.0.1", 0, conn_ignore, NULL, &cfg, &srv), -EINVAL);
        CHECK(srv == NULL);
        CHECK_ERR(corio_stream_start_tls(NULL, t, NULL), -EINVAL);
        CHECK_ERR(corio_tls_reload_certs(t, NULL, 0), -EINVAL);
        corio_tls_free(t);
    } else {
        CHECK_ERR(corio_tls_client_new(NULL, &t), -EOPNOTSUPP);
    }
    return NULL;
}

TEST(tls_functions_reject_null) { test_run(tls_null_main, NULL); }

/* ---- datagrams ---- */

static void *dgram_null_main(void *arg)
{
    (void)arg;
    corio_dgram *d = (corio_dgram *)1;
    struct sockaddr_storage ss;
    socklen_t sl;
    int v, fl;
    char buf[8];
    corio_dgram_msg m = {.buf = buf, .cap = sizeof buf};
    CHECK_ERR(corio_dgram_open("127.0.0.1", 0, NULL, 0, NULL, NULL), -EINVAL);
    CHECK_ERR(corio_dgram_open_unix("@x", NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(corio_dgram_from_fd(-1, &d), -EINVAL);
    CHECK(d == NULL);
    CHECK_ERR(corio_dgram_from_fd(0, NULL), -EINVAL);
    CHECK_ERR(corio_dgram_send(NULL, "x", 1), -EINVAL);
    CHECK_ERR(corio_dgram_send_to(NULL, "x", 1, (struct sockaddr *)&ss, sizeof ss), -EINVAL);
    CHECK_ERR(corio_dgram_recv(NULL, buf, sizeof buf, &fl), -EINVAL);
    CHECK_ERR(corio_dgram_recv_from(NULL, buf, sizeof buf, &ss, &sl, &fl), -EINVAL);
    CHECK_ERR(corio_dgram_recv_batch(NULL, &m, 1), -EINVAL);
    CHECK_ERR(corio_dgram_send_batch(NULL, &m, 1), -EINVAL);
    CHECK_ERR(corio_dgram_set_option(NULL, CORIO_DGRAM_BROADCAST, 1), -EINVAL);
    CHECK_ERR(corio_dgram_get_option(NULL, CORIO_DGRAM_BROADCAST, &v), -EINVAL);
    CHECK_ERR(corio_dgram_join(NULL, "239.1.1.1", NULL), -EINVAL);
    CHECK_ERR(corio_dgram_leave(NULL, "239.1.1.1", NULL), -EINVAL);
    CHECK_ERR(corio_dgram_sockname(NULL, &ss, &sl), -EINVAL);
    CHECK_ERR(corio_dgram_peername(NULL, &ss, &sl), -EINVAL);
    CHECK_EQ(corio_dgram_port(NULL), 0);
    CHECK_ERR(corio_dgram_fd(NULL), -EINVAL);
    corio_dgram_close(NULL);

    /* a real endpoint: NULL buffers and addresses are refused, nothing is lost */
    CHECK_OK(corio_dgram_open("127.0.0.1", 0, NULL, 0, NULL, &d));
    CHECK_ERR(corio_dgram_send_to(d, NULL, 1, (struct sockaddr *)&ss, sizeof ss), -EINVAL);
    CHECK_ERR(corio_dgram_send_to(d, "x", 1, NULL, sizeof ss), -EINVAL);
    CHECK_ERR(corio_dgram_recv(d, NULL, 4, NULL), -EINVAL);
    CHECK_ERR(corio_dgram_recv_batch(d, NULL, 1), -EINVAL);
    CHECK_ERR(corio_dgram_send_batch(d, NULL, 1), -EINVAL);
    CHECK_ERR(corio_dgram_get_option(d, CORIO_DGRAM_BROADCAST, NULL), -EINVAL);
    CHECK_ERR(corio_dgram_join(d, NULL, NULL), -EINVAL);
    CHECK_ERR(corio_dgram_sockname(d, NULL, &sl), -EINVAL);
    CHECK_ERR(corio_dgram_peername(d, NULL, &sl), -EINVAL);
    corio_dgram_close(d);
    return NULL;
}

TEST(dgram_functions_reject_null) { test_run(dgram_null_main, NULL); }

TEST(dgram_outside_a_loop)
{
    corio_dgram *d = (corio_dgram *)1;
    CHECK_ERR(corio_dgram_open("127.0.0.1", 0, NULL, 0, NULL, &d), -EPERM);
    CHECK(d == NULL);
    CHECK_ERR(corio_dgram_open_unix("@corio-misuse", NULL, NULL, &d), -EPERM);
}
/* ---- Unix sockets ---- */

static void *unix_null_main(void *arg)
{
    corio_server *srv = (corio_server *)1;
    corio_stream *s = (corio_stream *)1;
    int fd = 0;
    size_t nfds = 1;
    int flags = 7;
    pid_t pid;
    char buf[4];
    CHECK_ERR(corio_server_start_unix(NULL, conn_ignore, NULL, NULL, &srv), -EINVAL);
    CHECK(srv == NULL);
    CHECK_ERR(corio_server_start_unix("@x", NULL, NULL, NULL, &srv), -EINVAL);
    CHECK_ERR(corio_server_start_unix("@x", conn_ignore, NULL, NULL, NULL), -EINVAL);
    corio_server_config huge = {.stack_size = SIZE_MAX};
    CHECK_ERR(corio_server_start_unix("@x", conn_ignore, NULL, &huge, &srv), -EINVAL);
    CHECK_ERR(corio_stream_connect_unix(NULL, &s), -EINVAL);
    CHECK(s == NULL);
    CHECK_ERR(corio_stream_connect_unix("@x", NULL), -EINVAL);
    CHECK_ERR(corio_stream_peercred(NULL, &pid, NULL, NULL), -EINVAL);
    CHECK_ERR(corio_stream_write_fds(NULL, "x", 1, &fd, 1), -EINVAL);
    CHECK_ERR(corio_stream_read_fds(NULL, buf, sizeof buf, &fd, &nfds, &flags), -EINVAL);
    CHECK_EQ(nfds, 0);
    CHECK_EQ(flags, 0);
    CHECK_ERR(corio_stream_take_fds(NULL, &fd, 1, NULL), -EINVAL);
    CHECK_ERR(corio_stream_set_receive_fds(NULL, true), -EINVAL);

    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    corio_stream *a = corio_stream_from_fd(sv[0]), *b = corio_stream_from_fd(sv[1]);
    CHECK(a && b);
    CHECK_ERR(corio_stream_take_fds(b, &fd, 1, NULL), -EOPNOTSUPP); /* not asked to receive fds */
    CHECK_OK(corio_stream_set_receive_fds(b, true));
    CHECK_ERR(corio_stream_write_fds(a, NULL, 1, &fd, 1), -EINVAL);
    CHECK_ERR(corio_stream_write_fds(a, "x", 1, NULL, 1), -EINVAL);
    CHECK_ERR(corio_stream_read_fds(b, NULL, 1, &fd, &nfds, NULL), -EINVAL);
    CHECK_ERR(corio_stream_read_fds(b, buf, 1, &fd, NULL, NULL), -EINVAL);
    nfds = 1;
    CHECK_ERR(corio_stream_read_fds(b, buf, 1, NULL, &nfds, NULL), -EINVAL);
    CHECK_ERR(corio_stream_take_fds(b, NULL, 1, NULL), -EINVAL);
    CHECK_EQ(corio_stream_take_fds(b, NULL, 0, NULL), 0);
    CHECK_OK(corio_stream_peercred(b, NULL, NULL, NULL));
    corio_stream_close(a);
    corio_stream_close(b);
    return NULL;
}

TEST(unix_functions_reject_null) { test_run(unix_null_main, NULL); }

/* ---- threads ---- */

static void never_called(void *arg) { abort(); }
static void *never_spawned(void *arg) { abort(); }
static void *yield_once(void *arg)
{
    (void)corio_yield();
    return arg;
}

static void *thread_null_main(void *arg)
{
    void *r = (void *)1;
    CHECK_ERR(corio_to_thread(NULL, NULL, &r), -EINVAL);
    corio_loop_ref_release(NULL);
    CHECK_ERR(corio_loop_ref_call_soon(NULL, never_called, NULL), -EINVAL);
    corio_loop_ref *ref = corio_loop_ref_get();
    CHECK(ref);
    CHECK_ERR(corio_loop_ref_call_soon(ref, NULL, NULL), -EINVAL);
    /* Tasks on another loop. */
    corio_remote *rem = (corio_remote *)1;
    CHECK_ERR(corio_loop_ref_spawn(NULL, never_spawned, NULL, &rem), -EINVAL);
    CHECK_ERR(corio_loop_ref_spawn(ref, NULL, NULL, &rem), -EINVAL);
    CHECK_ERR(corio_loop_ref_spawn(ref, never_spawned, NULL, NULL), -EINVAL);
    CHECK(rem == (corio_remote *)1);
    CHECK_ERR(corio_remote_join(NULL, &r), -EINVAL);
    CHECK_ERR(corio_remote_join(NULL, NULL), -EINVAL);
    CHECK_ERR(corio_remote_detach(NULL), -EINVAL);
    CHECK_ERR(corio_remote_cancel(NULL), -EINVAL);
    r = (void *)1;
    CHECK_ERR(corio_loop_ref_call(NULL, never_spawned, NULL, &r), -EINVAL);
    CHECK(r == NULL);
    CHECK_ERR(corio_loop_ref_call(ref, NULL, NULL, NULL), -EINVAL);
    /* A handle detached while its task still runs is known to be gone. */
    CHECK_ERR(corio_loop_ref_spawn(ref, yield_once, NULL, &rem), 0);
    CHECK_ERR(corio_remote_detach(rem), 0);
    CHECK_ERR(corio_remote_detach(rem), -EINVAL);
    CHECK_ERR(corio_remote_join(rem, NULL), -EINVAL);
    CHECK_ERR(corio_remote_cancel(rem), -EINVAL);
    CHECK_OK(corio_yield());
    corio_loop_ref_release(ref);
    return NULL;
}

TEST(thread_functions_reject_null) { test_run(thread_null_main, NULL); }

/* ---- processes ---- */

static void *process_null_main(void *arg)
{
    (void)arg;
    corio_process *p = (corio_process *)1;
    corio_process_config cfg = {.argv = NULL};
    CHECK_ERR(corio_process_spawn(NULL, &p), -EINVAL);
    CHECK(p == NULL);
    CHECK_ERR(corio_process_spawn(&cfg, &p), -EINVAL); /* no argv */
    static const char *const argv[] = {"true", NULL};
    cfg.argv = argv;
    CHECK_ERR(corio_process_spawn(&cfg, NULL), -EINVAL);
    CHECK_ERR(corio_process_shell(NULL, NULL, &p), -EINVAL);
    CHECK_ERR(corio_process_shell("true", NULL, NULL), -EINVAL);
    CHECK_EQ(corio_process_pid(NULL), 0);
    errno = 0;
    CHECK(corio_process_stream(NULL, 0) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(corio_process_take_stream(NULL, 1) == NULL && errno == EINVAL);
    corio_process_status st;
    CHECK_ERR(corio_process_wait(NULL, &st), -EINVAL);
    CHECK_ERR(corio_process_wait_for(NULL, 10, &st), -EINVAL);
    CHECK_ERR(corio_process_try_wait(NULL, &st), -EINVAL);
    CHECK_ERR(corio_process_status_get(NULL, &st), -EINVAL);
    CHECK_ERR(corio_process_status_code(NULL), -EINVAL);
    CHECK_ERR(corio_process_send_signal(NULL, 15), -EINVAL);
    CHECK_ERR(corio_process_terminate(NULL), -EINVAL);
    CHECK_ERR(corio_process_kill(NULL), -EINVAL);
    CHECK_ERR(corio_process_signal_group(NULL, 15), -EINVAL);
    corio_process_output out;
    CHECK_ERR(corio_process_communicate(NULL, NULL, 0, &out), -EINVAL);
    corio_process_free(NULL);
    /* a live process: bad fd numbers and arguments (valgrind 3.19 has no
     * pidfd_open: -ENOSYS, and nothing more to check) */
    int r = corio_process_spawn(&cfg, &p);
    if (r == -ENOSYS)
        return NULL;
    CHECK_OK(r);
    errno = 0;
    CHECK(corio_process_stream(p, 3) == NULL && errno == EINVAL);
    CHECK(corio_process_stream(p, -1) == NULL);
    CHECK(corio_process_take_stream(p, 0) == NULL && errno == ENOENT);
    CHECK_ERR(corio_process_communicate(p, NULL, 0, NULL), -EINVAL);
    CHECK_ERR(corio_process_communicate(p, NULL, 5, &out), -EINVAL);
    CHECK_ERR(corio_process_send_signal(p, 9999), -EINVAL);
    CHECK_OK(corio_process_wait(p, NULL));
    corio_process_free(p);
    return NULL;
}

TEST(process_functions_reject_null) { test_run(process_null_main, NULL); }

/* ---- signals ---- */

static void *signal_null_main(void *arg)
{
    (void)arg;
    errno = 0;
    CHECK(corio_signal_watch_open(NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_ERR(corio_signal_watch_wait(NULL, 0), -EINVAL);
    CHECK_EQ(corio_signal_watch_pending(NULL), 0);
    corio_signal_watch_close(NULL);
    CHECK_ERR(corio_signal_wait(NULL, 0), -EINVAL);
    CHECK_ERR(corio_signal_handler_add(SIGUSR1, NULL, NULL), -EINVAL);
    CHECK_ERR(corio_signal_handler_remove(0), -EINVAL);
    return NULL;
}

TEST(signal_functions_reject_null) { test_run(signal_null_main, NULL); }

/* ---- channels ---- */

static void channel_null_checks(void)
{
    CHECK_NULL_EINVAL(corio_channel_new(0, 8));
    corio_channel_free(NULL);
    uint64_t v = 1;
    CHECK_ERR(corio_channel_send(NULL, &v), -EINVAL);
    CHECK_ERR(corio_channel_try_send(NULL, &v), -EINVAL);
    CHECK_ERR(corio_channel_recv(NULL, &v), -EINVAL);
    CHECK_ERR(corio_channel_try_recv(NULL, &v), -EINVAL);
    CHECK_ERR(corio_channel_close(NULL), -EINVAL);
    corio_channel *ch = corio_channel_new(2, sizeof v);
    CHECK(ch);
    CHECK_ERR(corio_channel_send(ch, NULL), -EINVAL); /* a value channel needs the value */
    CHECK_ERR(corio_channel_try_send(ch, NULL), -EINVAL);
    CHECK_ERR(corio_channel_recv(ch, NULL), -EINVAL);
    CHECK_ERR(corio_channel_try_recv(ch, NULL), -EINVAL);
    /* Nothing was disturbed. */
    CHECK_ERR(corio_channel_send(ch, &v), 0);
    v = 0;
    CHECK_ERR(corio_channel_recv(ch, &v), 0);
    CHECK_EQ(v, 1);
    CHECK_ERR(corio_channel_try_recv(ch, &v), -EAGAIN);
    corio_channel_free(ch);
    /* For a pointer channel, NULL is an item like any other. */
    ch = corio_channel_new(1, 0);
    CHECK(ch);
    CHECK_ERR(corio_channel_send(ch, NULL), 0);
    void *p = &v;
    CHECK_ERR(corio_channel_recv(ch, NULL), -EINVAL);
    CHECK_ERR(corio_channel_recv(ch, &p), 0);
    CHECK(p == NULL);
    corio_channel_free(ch);
}

static void *channel_null_main(void *arg)
{
    channel_null_checks();
    return arg;
}

TEST(channel_functions_reject_null)
{
    channel_null_checks(); /* on a plain thread */
    test_run(channel_null_main, NULL);
}

/* ---- files ---- */

static void *file_null_main(void *arg)
{
    char dir[] = "/tmp/corio-misuse-XXXXXX";
    CHECK(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/f", dir);
    struct stat st;
    char *out = (char *)1;
    size_t len = 99;

    CHECK_ERR(corio_file_open(NULL, O_RDONLY, 0), -EINVAL);
    CHECK_ERR(corio_file_stat(NULL, &st), -EINVAL);
    CHECK_ERR(corio_file_stat(dir, NULL), -EINVAL);
    CHECK_ERR(corio_file_unlink(NULL), -EINVAL);
    CHECK_ERR(corio_file_rmdir(NULL), -EINVAL);
    CHECK_ERR(corio_file_mkdir(NULL, 0700), -EINVAL);
    CHECK_ERR(corio_file_rename(NULL, path), -EINVAL);
    CHECK_ERR(corio_file_rename(path, NULL), -EINVAL);
    CHECK_ERR(corio_file_read_all(NULL, 100, &out, &len), -EINVAL);
    CHECK(out == NULL);
    CHECK_EQ(len, 0);
    CHECK_ERR(corio_file_read_all(path, 100, NULL, &len), -EINVAL);
    CHECK_ERR(corio_file_write_all(NULL, "x", 1, 0600), -EINVAL);
    CHECK_ERR(corio_file_write_all(path, NULL, 1, 0600), -EINVAL);
    CHECK_ERR(corio_file_append(NULL, "x", 1), -EINVAL);
    CHECK_ERR(corio_file_append(path, NULL, 1), -EINVAL);
    CHECK_ERR(corio_file_stat(path, &st), -ENOENT); /* none of them created it */

    int fd = corio_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK_OK(fd);
    CHECK_ERR(corio_file_write(fd, NULL, 3), -EINVAL);
    CHECK_ERR(corio_file_pwrite(fd, NULL, 3, 0), -EINVAL);
    CHECK_ERR(corio_file_writev(fd, NULL, 1), -EINVAL);
    CHECK_ERR(corio_file_pwritev(fd, NULL, 1, 0), -EINVAL);
    CHECK_EQ(corio_file_write(fd, "abc", 3), 3);
    CHECK_ERR(corio_file_read(fd, NULL, 3), -EINVAL);
    CHECK_ERR(corio_file_pread(fd, NULL, 3, 0), -EINVAL);
    CHECK_ERR(corio_file_readv(fd, NULL, 1), -EINVAL);
    CHECK_ERR(corio_file_preadv(fd, NULL, 1, 0), -EINVAL);
    CHECK_ERR(corio_file_fstat(fd, NULL), -EINVAL);
    CHECK_OK(corio_file_fstat(fd, &st));
    CHECK_EQ(st.st_size, 3);
    char buf[4] = {0};
    CHECK_EQ(corio_file_pread(fd, buf, 3, 0), 3);
    CHECK_STR(buf, "abc");
    CHECK_OK(corio_file_close(fd));
    CHECK_OK(corio_file_unlink(path));
    CHECK_OK(corio_file_rmdir(dir));
    return NULL;
}

TEST(file_functions_reject_null) { test_run(file_null_main, NULL); }

/* ---- HTTP parser ---- */

TEST(http_parser_functions_reject_null)
{
    corio_http_header hdrs[4];
    corio_http_request req;
    corio_http_request_init(NULL, hdrs, 4);
    corio_http_request_init(&req, hdrs, 4);
    static const char head[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_ERR(corio_http_request_parse(NULL, head, sizeof head - 1, NULL), -EINVAL);
    CHECK_ERR(corio_http_request_parse(&req, NULL, 5, NULL), -EINVAL);
    CHECK_EQ(corio_http_request_parse(&req, head, sizeof head - 1, NULL), (ssize_t)(sizeof head - 1));
    size_t len = 99;
    CHECK_NULL_EINVAL(corio_http_request_header(NULL, "Host", &len));
    CHECK_EQ(len, 0);
    CHECK_NULL_EINVAL(corio_http_request_header(&req, NULL, &len));
    const char *host = corio_http_request_header(&req, "host", &len);
    CHECK(host && len == 1 && host[0] == 'x');
    /* not found is NULL too, but errno is left alone */
    errno = 0;
    CHECK(corio_http_request_header(&req, "Cookie", NULL) == NULL);
    CHECK_EQ(errno, 0);

    corio_http_chunked c;
    corio_http_chunked_init(NULL, 0);
    CHECK(!corio_http_chunked_done(NULL));
    corio_http_chunked_init(&c, 0);
    const char *data;
    size_t dlen;
    static const char body[] = "3\r\nabc\r\n0\r\n\r\n";
    CHECK_ERR(corio_http_chunked_decode(NULL, body, sizeof body - 1, &data, &dlen), -EINVAL);
    CHECK_ERR(corio_http_chunked_decode(&c, NULL, 3, &data, &dlen), -EINVAL);
    CHECK_ERR(corio_http_chunked_decode(&c, body, sizeof body - 1, NULL, &dlen), -EINVAL);
    CHECK_ERR(corio_http_chunked_decode(&c, body, sizeof body - 1, &data, NULL), -EINVAL);
    /* the decoder was not disturbed */
    ssize_t used = corio_http_chunked_decode(&c, body, sizeof body - 1, &data, &dlen);
    CHECK(used > 0 && dlen == 3 && memcmp(data, "abc", 3) == 0);
}

/* ---- HTTP server ---- */

static void http_handler(corio_http_request *req, corio_http_response *resp, void *arg)
{
    char peer[16];
    const char *ptr = NULL;
    size_t len = 0;
    CHECK_ERR(corio_http_request_read(req, NULL, 4), -EINVAL);
    CHECK_ERR(corio_http_request_read_body(req, 100, NULL, &len), -EINVAL);
    CHECK_ERR(corio_http_request_read_body(req, 100, &ptr, NULL), -EINVAL);
    /* the largest cap there is: room for the NUL must not wrap to 0 */
    CHECK_OK(corio_http_request_read_body(req, SIZE_MAX, &ptr, &len));
    CHECK(len == 5 && memcmp(ptr, "hello", 5) == 0);
    corio_http_request_peer(req, NULL, 16);
    corio_http_request_peer(NULL, peer, sizeof peer);
    CHECK_STR(peer, "-");
    CHECK_ERR(corio_http_response_add_header(resp, NULL, "v"), -EINVAL);
    CHECK_ERR(corio_http_response_add_header(resp, "X-A", NULL), -EINVAL);
    CHECK_ERR(corio_http_response_send(resp, 200, "text/plain", NULL, 5), -EINVAL);
    CHECK_ERR(corio_http_response_write(resp, NULL, 0), -EINVAL); /* not begun: as before */
    CHECK_OK(corio_http_response_begin(resp, 200, "text/plain"));
    CHECK_ERR(corio_http_response_write(resp, NULL, 3), -EINVAL);
    CHECK_OK(corio_http_response_write(resp, ptr, len));
    CHECK_OK(corio_http_response_end(resp));
}

/* A stream on one end of a socketpair whose other end srv serves. */
static corio_stream *serve_pair(corio_http_server *srv)
{
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    CHECK_OK(corio_http_server_serve_fd(srv, sv[0]));
    corio_stream *s = corio_stream_from_fd(sv[1]);
    CHECK(s);
    return s;
}

/* Read s until EOF (within a generous deadline) into buf, NUL-terminated;
 * returns the length. */
static size_t read_to_eof(corio_stream *s, char *buf, size_t cap)
{
    size_t got = 0;
    corio_deadline d = corio_deadline_push(30000 * TEST_SLOWDOWN);
    ssize_t n;
    while ((n = corio_stream_read(s, buf + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    corio_deadline_pop(d);
    CHECK_EQ(n, 0);
    buf[got] = 0;
    return got;
}

static void *http_null_main(void *arg)
{
    corio_http_server *srv = (corio_http_server *)1;
    char buf[16];
    const char *ptr;
    size_t len;
    CHECK_ERR(corio_http_server_start("127.0.0.1", 0, NULL, NULL, NULL, &srv), -EINVAL);
    CHECK_ERR(corio_http_server_start("127.0.0.1", 0, http_handler, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(corio_http_server_new(NULL, NULL, NULL, &srv), -EINVAL);
    CHECK_ERR(corio_http_server_new(http_handler, NULL, NULL, NULL), -EINVAL);
    corio_http_server_config huge = {.stack_size = SIZE_MAX};
    CHECK_ERR(corio_http_server_new(http_handler, NULL, &huge, &srv), -EINVAL);
    CHECK_ERR(corio_http_server_start("127.0.0.1", 0, http_handler, NULL, &huge, &srv), -EINVAL);
    CHECK_ERR(corio_http_server_serve_fd(NULL, 0), -EINVAL);
    CHECK_EQ(corio_http_server_port(NULL), 0);
    CHECK_EQ(corio_http_server_connections(NULL), 0);
    CHECK_ERR(corio_http_server_close(NULL, 0), -EINVAL);
    CHECK_ERR(corio_http_request_read(NULL, buf, sizeof buf), -EINVAL);
    CHECK_ERR(corio_http_request_read_body(NULL, 100, &ptr, &len), -EINVAL);
    CHECK_ERR(corio_http_response_add_header(NULL, "X-A", "b"), -EINVAL);
    CHECK_ERR(corio_http_response_send(NULL, 200, "text/plain", "x", 1), -EINVAL);
    CHECK_ERR(corio_http_response_begin(NULL, 200, NULL), -EINVAL);
    CHECK_ERR(corio_http_response_write(NULL, "x", 1), -EINVAL);
    CHECK_ERR(corio_http_response_end(NULL), -EINVAL);
    CHECK_ERR(corio_http_response_send_file(NULL, 200, NULL, 0, 0, 1), -EINVAL);

    /* a real request through a server fed by a socketpair */
    CHECK_OK(corio_http_server_new(http_handler, NULL, NULL, &srv));
    corio_stream *s = serve_pair(srv);
    static const char rq[] =
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    CHECK_OK(corio_stream_write(s, rq, sizeof rq - 1));
    char resp[1024];
    read_to_eof(s, resp, sizeof resp);
    CHECK(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(resp, "\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
    corio_stream_close(s);
    CHECK_OK(corio_http_server_close(srv, 1000));
    return NULL;
}

TEST(http_server_functions_reject_null) { test_run(http_null_main, NULL); }

/* ---- time-outs at their largest ---- */

/* grace_ms = UINT64_MAX is "as long as the handlers take": it wrapped around
 * to a time already past, so the handlers were cancelled at once. */

static void slow_conn(corio_stream *s, void *arg)
{
    CHECK_OK(corio_stream_write(s, "hi", 2));
    const char *word = corio_sleep_ms(200) == 0 ? "done" : "cancelled";
    corio_stream_write(s, word, strlen(word));
}

static void *tcp_endless_grace_main(void *arg)
{
    corio_server *srv;
    CHECK_OK(corio_server_start("127.0.0.1", 0, slow_conn, NULL, NULL, &srv));
    corio_stream *s;
    CHECK_OK(corio_stream_connect("127.0.0.1", corio_server_port(srv), &s));
    char buf[16] = {0};
    CHECK_EQ(corio_stream_readexactly(s, buf, 2, NULL), 2); /* the handler runs */
    CHECK_OK(corio_server_close(srv, UINT64_MAX));
    size_t got = 0;
    CHECK_ERR(corio_stream_readexactly(s, buf, 5, &got), -CORIO_EINCOMPLETE);
    CHECK_EQ(got, 4);
    CHECK_STR(buf, "done");
    corio_stream_close(s);
    return NULL;
}

TEST(tcp_server_close_with_endless_grace_lets_handlers_finish) { test_run(tcp_endless_grace_main, NULL); }

static bool slow_http_started;

static void slow_http(corio_http_request *req, corio_http_response *resp, void *arg)
{
    slow_http_started = true;
    if (corio_sleep_ms(200) == 0)
        corio_http_response_send(resp, 200, "text/plain", "done", 4);
}

static void *http_endless_grace_main(void *arg)
{
    corio_http_server *srv;
    CHECK_OK(corio_http_server_new(slow_http, NULL, NULL, &srv));
    corio_stream *s = serve_pair(srv);
    static const char rq[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_OK(corio_stream_write(s, rq, sizeof rq - 1));
    slow_http_started = false;
    while (!slow_http_started)
        CHECK_OK(corio_sleep_ms(1));
    CHECK_OK(corio_http_server_close(srv, UINT64_MAX));
    char resp[1024];
    size_t got = read_to_eof(s, resp, sizeof resp);
    CHECK(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(got >= 4 && memcmp(resp + got - 4, "done", 4) == 0);
    corio_stream_close(s);
    return NULL;
}

TEST(http_server_close_with_endless_grace_lets_handlers_finish) { test_run(http_endless_grace_main, NULL); }

static void fdwait_never(int fd, int revents, void *arg)
{
    (void)fd;
    (void)revents;
    (void)arg;
}

static void noop_conn(corio_stream *s, void *arg)
{
    (void)s;
    (void)arg;
}

static void noop_http(corio_http_request *req, corio_http_response *resp, void *arg)
{
    (void)req;
    (void)resp;
    (void)arg;
}

static void *fdwait_null_main(void *arg)
{
    (void)arg;
    /* readiness waits: a bad fd, no events, events outside the set */
    CHECK_ERR(corio_fd_wait(-1, POLLIN, 0), -EBADF);
    CHECK_ERR(corio_fd_wait(0, 0, 0), -EINVAL);
    CHECK_ERR(corio_fd_wait(0, POLLIN | POLLNVAL, 0), -EINVAL);
    CHECK_ERR(corio_fd_wait_readable(-1), -EBADF);
    CHECK_ERR(corio_fd_wait_writable(-1), -EBADF);
    errno = 0;
    CHECK(!corio_fd_watch_start(0, POLLIN, NULL, NULL));
    CHECK_EQ(errno, EINVAL);
    CHECK(!corio_fd_watch_start(-1, POLLIN, fdwait_never, NULL));
    CHECK_EQ(errno, EBADF);
    corio_fd_watch_stop(NULL);
    /* socket activation */
    corio_server *srv = NULL;
    corio_http_server *hs = NULL;
    int fd = 0;
    CHECK_ERR(corio_listen_fds(NULL, 1, false), -EINVAL);
    CHECK_ERR(corio_server_start_fds(NULL, 1, noop_conn, NULL, NULL, &srv), -EINVAL);
    CHECK_ERR(corio_server_start_fds(&fd, 0, noop_conn, NULL, NULL, &srv), -EINVAL);
    CHECK_ERR(corio_server_start_fds(&fd, 1, NULL, NULL, NULL, &srv), -EINVAL);
    CHECK_ERR(corio_server_start_fds(&fd, 1, noop_conn, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(corio_http_server_start_fds(NULL, 1, noop_http, NULL, NULL, &hs), -EINVAL);
    CHECK_ERR(corio_http_server_start_fds(&fd, 1, NULL, NULL, NULL, &hs), -EINVAL);
    CHECK_ERR(corio_http_server_start_fds(&fd, 1, noop_http, NULL, NULL, NULL), -EINVAL);
    CHECK(srv == NULL && hs == NULL);
    CHECK_EQ(corio_http_server_listen_fds(NULL, &fd, 1), 0u);
    /* handover */
    corio_handover *h = NULL;
    corio_listen_fd lf = {.fd = 0, .name = "x"};
    CHECK_ERR(corio_handover_listen(NULL, &lf, 1, NULL), -EINVAL);
    CHECK_ERR(corio_handover_listen("@x", NULL, 1, NULL), -EINVAL);
    CHECK_ERR(corio_handover_take(NULL, &lf, 1, &h), -EINVAL);
    CHECK_ERR(corio_handover_take("@x", NULL, 1, &h), -EINVAL);
    CHECK_ERR(corio_handover_take("@x", &lf, 1, NULL), -EINVAL);
    CHECK_ERR(corio_handover_ready(NULL), -EINVAL);
    corio_handover_abort(NULL);
    return NULL;
}

TEST(fd_wait_and_activation_functions_reject_null) { test_run(fdwait_null_main, NULL); }

static void *workers_noop_main(void *arg) { return arg; }

static void *workers_misuse_main(void *arg)
{
    (void)arg;
    /* In a loop that is not a worker. */
    CHECK_ERR(corio_workers_run(NULL, workers_noop_main, NULL, NULL), -EBUSY);
    CHECK_EQ(corio_worker_index(), -1);
    CHECK_EQ(corio_worker_count(), 0u);
    CHECK(corio_worker_loop(0) == NULL);
    CHECK_ERR(corio_workers_wait_stop(), -EPERM);
    CHECK_ERR(corio_workers_stop(), -EPERM);
    return NULL;
}

TEST(workers_functions_reject_misuse)
{
    corio_workers_config big = {.count = 1025};
    CHECK_ERR(corio_workers_run(NULL, NULL, NULL, NULL), -EINVAL);
    CHECK_ERR(corio_workers_run(&big, workers_noop_main, NULL, NULL), -EINVAL);
    /* On a plain thread. */
    CHECK_EQ(corio_worker_index(), -1);
    CHECK_EQ(corio_worker_count(), 0u);
    CHECK(corio_worker_loop(0) == NULL);
    CHECK_ERR(corio_workers_wait_stop(), -EPERM);
    CHECK_ERR(corio_workers_stop(), -EPERM);
    test_run(workers_misuse_main, NULL);
}

static void *misuse_sim_fn(void *arg) { return arg; }

/* corio/sim.h: outside a sim run (no loop, or another backend's loop)
 * everything is EINVAL / NULL / 0 / a no-op; inside one, NULL handles and
 * strings are refused the same way. */
static void sim_outside_checks(void)
{
    errno = 0;
    CHECK(!corio_sim_host_new("a", "127.0.0.2") && errno == EINVAL);
    errno = 0;
    CHECK(!corio_sim_host_start(NULL, misuse_sim_fn, NULL) && errno == EINVAL);
    CHECK_ERR(corio_sim_host_crash(NULL), -EINVAL);
    CHECK_EQ(corio_sim_host_running(NULL), 0);
    CHECK(!corio_sim_host_current());
    CHECK_EQ(corio_sim_seed(), 0);
    CHECK_EQ(corio_sim_rand(), 0);
    CHECK_EQ(corio_sim_chance(1.0), 0);
    corio_sim_event("ignored %d", 1);
    corio_sim_event(NULL);
}

static void *sim_outside_main(void *arg)
{
    (void)arg;
    sim_outside_checks();
    return NULL;
}

static void *sim_null_main(void *arg)
{
    (void)arg;
    errno = 0;
    CHECK(!corio_sim_host_new(NULL, "127.0.0.2") && errno == EINVAL);
    errno = 0;
    CHECK(!corio_sim_host_new("a", NULL) && errno == EINVAL);
    errno = 0;
    CHECK(!corio_sim_host_start(NULL, misuse_sim_fn, NULL) && errno == EINVAL);
    corio_sim_host *h = corio_sim_host_new("a", "127.0.0.2");
    CHECK(h);
    errno = 0;
    CHECK(!corio_sim_host_start(h, NULL, NULL) && errno == EINVAL);
    CHECK_ERR(corio_sim_host_crash(NULL), -EINVAL);
    CHECK_EQ(corio_sim_host_running(NULL), 0);
    CHECK(corio_sim_host_current());
    corio_sim_event(NULL); /* a no-op */
    return NULL;
}

TEST(sim_functions_reject_null_and_outside_a_run)
{
    sim_outside_checks();
    /* corio_sim_fail outside a run only prints. */
    corio_sim_fail("misuse test: %s", "outside");
    test_run(sim_outside_main, NULL);
    corio_sim_config sc = {.seed = 1, .quiet = 1};
    corio_config cfg = {.backend = CORIO_BACKEND_SIM, .sim = &sc};
    CHECK_OK(corio_run(&cfg, sim_null_main, NULL, NULL));
}
