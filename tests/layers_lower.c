/*
 * The lower layers on their own: this program is linked from the sources
 * of src/arch, src/core and src/backend only (tests/CMakeLists.txt), so any
 * call from them into src/io or src/http is an unresolved symbol and fails
 * the build.  Run as a test, it also shows the lower layers work alone: a
 * loop with tasks, a sleep, a thread-pool call and a cross-thread call.
 */
#include "corio.h"

#include <stdio.h>

static void *square(void *arg)
{
    long n = (long)arg;
    return (void *)(n * n);
}

static void posted(void *arg) { *(int *)arg = 1; }

static void *child(void *arg)
{
    (void)arg;
    return corio_sleep_ms(1) == 0 ? (void *)7 : NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    corio_task *t = corio_spawn(child, NULL);
    if (!t)
        return (void *)1;
    void *res = NULL;
    if (corio_task_join(t, &res) != 0 || res != (void *)7)
        return (void *)2;
    if (corio_to_thread(square, (void *)12, &res) != 0 || res != (void *)144)
        return (void *)3;
    corio_loop_ref *ref = corio_loop_ref_get();
    int ran = 0;
    if (!ref || corio_loop_ref_call_soon(ref, posted, &ran) != 0)
        return (void *)4;
    corio_loop_ref_release(ref);
    /* The call runs in its own task once the loop drains the queue. */
    for (int i = 0; i < 1000 && !ran; i++)
        corio_sleep_ms(1);
    return ran ? NULL : (void *)5;
}

int main(void)
{
    void *res = (void *)-1;
    int r = corio_run(NULL, main_task, NULL, &res);
    if (r != 0 || res != NULL) {
        fprintf(stderr, "FAIL: corio_run = %d, main task = %ld\n", r, (long)res);
        return 1;
    }
    puts("arch, core and backend link and run without io or http");
    return 0;
}
