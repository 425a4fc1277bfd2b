/*
 * Fetch several URLs at once with libcurl's multi interface, driven by corio.
 *
 *   curl_fetch URL...
 *
 * Prints one line per URL, in the order given, once all are done:
 *   URL: 200, 1234 bytes        (the HTTP status and the body's size)
 *   URL: error: Couldn't connect to server
 * and exits with status 1 if any transfer failed (an HTTP error status is
 * not a transfer failure), 0 otherwise.
 *
 * libcurl owns its sockets: it says which ones it wants watched, for
 * which direction (CURLMOPT_SOCKETFUNCTION), and when it wants a timeout
 * (CURLMOPT_TIMERFUNCTION); we tell it when a socket is ready or the time
 * is up (curl_multi_socket_action).  corio_fd_watch_start is asyncio's
 * add_reader/add_writer for the first part, a sleeping task the second.
 * Every transfer progresses in parallel on the one loop thread, and the
 * loop stays free for other tasks meanwhile.
 */
#include <corio.h>

#include <curl/curl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct fetch {
    const char *url;
    CURL *easy;
    size_t bytes;
    long status;
    CURLcode result;
    bool done;
} fetch;

static CURLM *multi;
static int left; /* transfers not finished yet */
static corio_event all_done;
static corio_task *timer; /* the task that sleeps until libcurl's timeout, if one is set */

static size_t on_data(char *ptr, size_t size, size_t n, void *userdata)
{
    (void)ptr;
    ((fetch *)userdata)->bytes += size * n;
    return size * n;
}

/* After every call into libcurl: collect the transfers it finished. */
static void collect(void)
{
    CURLMsg *m;
    int queued;
    while ((m = curl_multi_info_read(multi, &queued))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        fetch *f;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
        f->result = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &f->status);
        f->done = true;
        if (--left == 0)
            corio_event_set(&all_done);
    }
}

/* A watched socket is ready: tell libcurl which way. */
static void on_socket_ready(int fd, int revents, void *arg)
{
    (void)arg;
    int flags = 0;
    if (revents < 0 || (revents & POLLERR))
        flags |= CURL_CSELECT_ERR;
    else {
        if (revents & (POLLIN | POLLHUP))
            flags |= CURL_CSELECT_IN;
        if (revents & POLLOUT)
            flags |= CURL_CSELECT_OUT;
    }
    int running;
    curl_multi_socket_action(multi, fd, flags, &running);
    collect();
}

/* CURLMOPT_SOCKETFUNCTION: libcurl wants socket s watched for `what`, or
 * no longer (CURL_POLL_REMOVE).  The watch rides along as libcurl's
 * per-socket pointer. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)userp;
    corio_fd_watch *w = socketp;
    if (w)
        corio_fd_watch_stop(w); /* safe from inside that watch's own callback */
    w = NULL;
    if (what != CURL_POLL_REMOVE) {
        int events = (what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0);
        w = corio_fd_watch_start(s, events, on_socket_ready, NULL);
        if (!w)
            return -1; /* libcurl fails the transfer */
    }
    curl_multi_assign(multi, s, w);
    return 0;
}

static void *timer_main(void *arg)
{
    if (corio_sleep_ms((uint64_t)(uintptr_t)arg) < 0)
        return NULL; /* cancelled: libcurl changed its mind */
    timer = NULL;
    int running;
    curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect();
    return NULL;
}

/* CURLMOPT_TIMERFUNCTION: call back in timeout_ms (-1: never). */
static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    (void)userp;
    if (timer) {
        corio_task_cancel(timer);
        timer = NULL;
    }
    if (timeout_ms >= 0) {
        /* never call libcurl from inside its own callback: a task does it */
        timer = corio_spawn(timer_main, (void *)(uintptr_t)timeout_ms);
        if (!timer)
            return -1;
        corio_task_detach(timer);
    }
    return 0;
}

static void *main_task(void *arg)
{
    char **urls = arg;
    size_t n = 0;
    while (urls[n])
        n++;
    fetch *fs = calloc(n, sizeof *fs);
    multi = curl_multi_init();
    if (!fs || !multi)
        return (void *)1;
    corio_event_init(&all_done);
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    for (size_t i = 0; i < n; i++) {
        fs[i].url = urls[i];
        fs[i].easy = curl_easy_init();
        curl_easy_setopt(fs[i].easy, CURLOPT_URL, urls[i]);
        curl_easy_setopt(fs[i].easy, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(fs[i].easy, CURLOPT_WRITEDATA, &fs[i]);
        curl_easy_setopt(fs[i].easy, CURLOPT_PRIVATE, &fs[i]);
        curl_multi_add_handle(multi, fs[i].easy); /* starts through timer_cb */
        left++;
    }
    corio_event_wait(&all_done);

    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (fs[i].result == CURLE_OK)
            printf("%s: %ld, %zu bytes\n", fs[i].url, fs[i].status, fs[i].bytes);
        else {
            printf("%s: error: %s\n", fs[i].url, curl_easy_strerror(fs[i].result));
            failed = 1;
        }
        curl_multi_remove_handle(multi, fs[i].easy);
        curl_easy_cleanup(fs[i].easy);
    }
    curl_multi_cleanup(multi);
    free(fs);
    return (void *)(intptr_t)failed;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: curl_fetch URL...\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    void *res = NULL;
    int r = corio_run(NULL, main_task, argv + 1, &res);
    curl_global_cleanup();
    if (r < 0) {
        fprintf(stderr, "curl_fetch: %s\n", corio_strerror(r));
        return 1;
    }
    return res ? 1 : 0;
}
