/* The chat benches' load generator in C: one epoll loop driving every connection.
 *
 *     chat_load fanout   PORT MEMBERS POSTERS WINDOW PER_SOURCE WARMUP_S DURATION_S READ_US
 *     chat_load requests PORT CONNECTIONS DEPTH PER_SOURCE WARMUP_S DURATION_S REQUEST
 *
 * fanout: MEMBERS guests (~mPID-0, ~mPID-1, ...: names of their own, since a guest that just
 * left may not be gone everywhere yet when the next run signs in) sign in and join the room "big"; the first POSTERS
 * of them post, keeping at most WINDOW posts not yet delivered to every member (a post is
 * MEMBERS + 1 lines: its message push to each member, and the poster's reply). Members only
 * count the newlines they receive: one large read per readable socket, memchr for the
 * newlines, no parsing. With READ_US > 0 the loop waits until READ_US microseconds have
 * passed since its last epoll_wait before the next, so that each read takes everything a
 * socket got meanwhile (the daemon's writes are the same either way; what changes is how
 * many reads the load generator spends on them, and the latency each post sees).
 *
 * requests: CONNECTIONS guests (~rPID-0, ...) sign in; each sends DEPTH copies of the line REQUEST
 * (a JSON request without its newline) in one write, waits for DEPTH lines back and sends
 * again. Counts reply lines.
 *
 * Connection i leaves from 127.0.0.(2 + i / PER_SOURCE). Any line that reads "op":"error"
 * counts as an error (memmem over what was read, no parsing).
 *
 * Prints on stdout, for bench/chat_workers.py: "start" when the warm-up is over,
 * "end LINES SECONDS CPU_SECONDS READS" when the window is over (lines counted in the window,
 * its length, this process's CPU time in it, the reads that brought them), then "errors N" once the tail is drained (error
 * replies, lost connections, lines still missing 3 s after the end). Exit status 0, or 2 on
 * a usage or set-up error.
 *
 * Why C: the Python load generator (chat_fanout.py) costs about as much per delivery as the
 * chat daemon itself, so on a 2-core machine it takes the core a second worker needs.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

#define READ_BUFFER (256 * 1024)
#define DRAIN_SECONDS 3.0
#define SIGN_IN_SECONDS 60.0
#define ERROR_MARK "\"op\":\"error\""

typedef struct {
    int fd;         /* -1 once dropped */
    long long owed; /* requests: reply lines not back yet; sign-in: lines still to come */
} Client;

static Client *clients;
static int count, fanout, posters, epoll_fd;
static long long window_size, depth, per_post;
static long long lines, errors, sent, outstanding, reads;
static int running = 1, signing_in = 1;
static double read_interval, last_wait;
static char *post_line, *batch;
static size_t post_size, batch_size;

static void
drop(Client *client)
{
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, client->fd, NULL);
    close(client->fd);
    client->fd = -1;
    errors++;
}

static void
write_all(Client *client, const char *data, size_t size)
{
    while (size && client->fd >= 0) {
        ssize_t n = write(client->fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* a few KiB into a socket buffer the peer keeps reading */
            drop(client);
            return;
        }
        data += n;
        size -= (size_t)n;
    }
}

static void
send_requests(Client *client)
{
    client->owed = depth;
    outstanding += depth;
    write_all(client, batch, batch_size);
}

/* fanout: post while fewer than WINDOW posts are not yet everywhere, round-robin over the
 * posters, one write per poster. */
static void
pump(void)
{
    static long long per_poster[1024];
    long long room = window_size - (sent - lines / per_post);
    if (!running || room <= 0)
        return;
    memset(per_poster, 0, sizeof(long long) * (size_t)posters);
    for (long long i = 0; i < room; i++)
        per_poster[(sent + i) % posters]++;
    sent += room;
    for (int p = 0; p < posters; p++) {
        for (long long n = per_poster[p]; n > 0;) {
            long long part = n > 64 ? 64 : n;
            write_all(&clients[p], batch, (size_t)part * post_size);
            n -= part;
        }
    }
}

static void
on_readable(Client *client, char *buffer)
{
    ssize_t n = read(client->fd, buffer, READ_BUFFER);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        drop(client);
        return;
    }
    long long found = 0;
    reads++;
    for (const char *at = buffer, *end = buffer + n; (at = memchr(at, '\n', (size_t)(end - at)));
         at++)
        found++;
    for (const char *at = buffer, *end = buffer + n;
         (at = memmem(at, (size_t)(end - at), ERROR_MARK, sizeof ERROR_MARK - 1)); at++)
        errors++;
    if (signing_in || client->owed > 0) {
        long long taken = found < client->owed ? found : client->owed;
        client->owed -= taken;
        outstanding -= taken;
        if (signing_in)
            found -= taken;
        else if (!fanout && client->owed == 0 && running)
            send_requests(client);
    }
    lines += found;
}

static int
open_client(Client *client, int index, int port, int per_source)
{
    client->fd = connect_from("chat_load", epoll_fd, client, index, per_source, port);
    if (client->fd < 0)
        return -1;
    char hello[160];
    int size = fanout ? snprintf(hello, sizeof hello,
                                 "{\"op\":\"hello\",\"v\":1,\"user\":\"m%d-%d\"}\n"
                                 "{\"op\":\"join\",\"room\":\"big\"}\n",
                                 (int)getpid(), index)
                      : snprintf(hello, sizeof hello,
                                 "{\"op\":\"hello\",\"v\":1,\"user\":\"r%d-%d\"}\n",
                                 (int)getpid(), index);
    client->owed = fanout ? 2 : 1;
    outstanding += client->owed;
    write_all(client, hello, (size_t)size);
    return client->fd < 0 ? -1 : 0;
}

/* Runs the loop until ``until``, or until nothing is outstanding when ``settle`` is set. */
static void
run_until(double until, char *buffer, int settle)
{
    static struct epoll_event events[4096];
    for (;;) {
        double left = until - now();
        if (left <= 0 || (settle && outstanding <= 0))
            return;
        if (read_interval > 0 && !signing_in) {
            double pause = last_wait + read_interval - now();
            if (pause > 0) {
                struct timespec t = {0, (long)(pause * 1e9)};
                nanosleep(&t, NULL);
            }
            last_wait = now();
        }
        int ready = epoll_wait(epoll_fd, events, 4096, (int)(left * 1000) + 1);
        for (int i = 0; i < ready; i++) {
            Client *client = events[i].data.ptr;
            if (client->fd >= 0)
                on_readable(client, buffer);
        }
        if (fanout && !signing_in) {
            outstanding = sent * per_post - lines;
            pump();
        }
    }
}

static char *
repeat(const char *line, long long times, size_t *size)
{
    size_t one = strlen(line);
    char *out = malloc(one * (size_t)times + 1);
    if (!out)
        return NULL;
    for (long long i = 0; i < times; i++)
        memcpy(out + one * (size_t)i, line, one);
    *size = one * (size_t)times;
    return out;
}

static int
usage(void)
{
    fprintf(stderr,
            "usage: chat_load fanout PORT MEMBERS POSTERS WINDOW PER_SOURCE WARMUP_S DURATION_S "
            "READ_US\n"
            "       chat_load requests PORT CONNECTIONS DEPTH PER_SOURCE WARMUP_S DURATION_S "
            "REQUEST\n");
    return 2;
}

int
main(int argc, char **argv)
{
    int port, per_source;
    double warmup, duration;
    if (argc == 10 && !strcmp(argv[1], "fanout")) {
        fanout = 1;
        port = atoi(argv[2]);
        count = atoi(argv[3]);
        posters = atoi(argv[4]);
        window_size = atoll(argv[5]);
        per_source = atoi(argv[6]);
        warmup = atof(argv[7]);
        duration = atof(argv[8]);
        read_interval = atof(argv[9]) / 1e6;
        per_post = count + 1;
        post_line = "{\"op\":\"post\",\"room\":\"big\",\"text\":\"the quick brown fox jumps over "
                    "the lazy dog\"}\n";
        batch = repeat(post_line, 64, &batch_size);
        post_size = strlen(post_line);
        if (posters <= 0 || posters > 1024 || posters > count || window_size <= 0)
            return usage();
    } else if (argc == 9 && !strcmp(argv[1], "requests")) {
        port = atoi(argv[2]);
        count = atoi(argv[3]);
        depth = atoll(argv[4]);
        per_source = atoi(argv[5]);
        warmup = atof(argv[6]);
        duration = atof(argv[7]);
        char *line = malloc(strlen(argv[8]) + 2);
        if (!line || depth <= 0)
            return usage();
        sprintf(line, "%s\n", argv[8]);
        batch = repeat(line, depth, &batch_size);
    } else {
        return usage();
    }
    if (port <= 0 || count <= 0 || per_source <= 0 || duration <= 0 || !batch)
        return usage();
    clients = calloc((size_t)count, sizeof(Client));
    char *buffer = malloc(READ_BUFFER);
    epoll_fd = epoll_create1(0);
    if (!clients || !buffer || epoll_fd < 0) {
        perror("chat_load");
        return 2;
    }
    for (int i = 0; i < count; i++) {
        if (open_client(&clients[i], i, port, per_source) < 0)
            return 2;
        if (i % 200 == 199) /* sign in by batches: the backlog never overflows */
            run_until(now() + SIGN_IN_SECONDS, buffer, 1);
    }
    run_until(now() + SIGN_IN_SECONDS, buffer, 1);
    if (outstanding > 0 || errors) {
        fprintf(stderr, "chat_load: %lld sign-in lines missing, %lld errors\n", outstanding,
                errors);
        return 2;
    }
    signing_in = 0;
    lines = 0;
    if (fanout)
        pump();
    else
        for (int i = 0; i < count; i++)
            send_requests(&clients[i]);

    run_until(now() + warmup, buffer, 0);
    long long lines_before = lines, reads_before = reads;
    double started = now(), cpu_before = cpu_seconds();
    printf("start\n");
    fflush(stdout);
    run_until(started + duration, buffer, 0);
    double elapsed = now() - started, cpu = cpu_seconds() - cpu_before;
    printf("end %lld %.6f %.6f %lld\n", lines - lines_before, elapsed, cpu, reads - reads_before);
    fflush(stdout);

    running = 0;
    run_until(now() + DRAIN_SECONDS, buffer, 1);
    if (outstanding > 0)
        errors += outstanding; /* lines that did not come */
    for (int i = 0; i < count; i++)
        if (clients[i].fd >= 0)
            close(clients[i].fd);
    printf("errors %lld\n", errors);
    return 0;
}
