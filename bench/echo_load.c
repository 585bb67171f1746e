/* The echo bench's load generator in C: one epoll loop driving every client connection.
 *
 *     echo_load PORT CONNECTIONS DEPTH LINE_BYTES WARMUP_S DURATION_S
 *
 * Each connection sends DEPTH lines of LINE_BYTES (x...x\n) in one write, reads until as many
 * bytes came back, checks they are the same bytes, counts DEPTH lines and sends again.
 * Connection i leaves from 127.0.0.(2 + i / 1000), as the Python load generator's do.
 *
 * It prints three lines on stdout for bench/echo.py: "start" when the warm-up is over,
 * "end LINES SECONDS CPU_SECONDS" when the window is over (lines echoed in the window, its
 * length, this process's CPU time in it), then "errors N" once the connections are closed
 * (wrong bytes, lost connections, replies not back within 2 s of the end). Exit status 0, or
 * 2 on a usage or set-up error.
 *
 * Why C: the Python load generator costs about as much per round trip as the fastest servers,
 * so against them it sets the pace itself. This one costs a fraction of that.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

#define CONNECTIONS_PER_SOURCE 1000
#define READ_BUFFER 65536
#define DRAIN_SECONDS 2.0

typedef struct {
    int fd;          /* -1 once dropped */
    size_t received; /* bytes of the batch out that are back */
    int waiting;     /* a batch is out */
} Client;

static char *batch;
static size_t batch_size;
static long long depth, lines, errors;
static int running = 1, waiting;

static void
drop(int epoll, Client *client)
{
    epoll_ctl(epoll, EPOLL_CTL_DEL, client->fd, NULL);
    close(client->fd);
    client->fd = -1;
    if (client->waiting)
        waiting--;
    client->waiting = 0;
    errors++;
}

static void
send_batch(int epoll, Client *client)
{
    size_t sent = 0;
    while (sent < batch_size) {
        ssize_t n = write(client->fd, batch + sent, batch_size - sent);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* a batch is a few KiB at most: an empty socket buffer takes it whole */
            drop(epoll, client);
            return;
        }
        sent += (size_t)n;
    }
    client->received = 0;
    client->waiting = 1;
    waiting++;
}

/* Takes ``size`` bytes that came back; 0, or -1 when they are not what was sent. */
static int
take(int epoll, Client *client, const char *data, size_t size)
{
    while (size) {
        if (!client->waiting)
            return -1; /* bytes nobody asked for */
        size_t part = batch_size - client->received;
        if (part > size)
            part = size;
        if (memcmp(data, batch + client->received, part))
            return -1;
        client->received += part;
        data += part;
        size -= part;
        if (client->received < batch_size)
            return 0;
        client->waiting = 0;
        waiting--;
        lines += depth;
        if (running) {
            send_batch(epoll, client);
            if (client->fd < 0)
                return 0;
        }
    }
    return 0;
}

static void
on_readable(int epoll, Client *client, char *buffer)
{
    ssize_t n = read(client->fd, buffer, READ_BUFFER);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || take(epoll, client, buffer, (size_t)n) < 0)
        drop(epoll, client);
}

static int
open_client(int epoll, Client *client, int index, int port)
{
    client->fd = connect_from("echo_load", epoll, client, index, CONNECTIONS_PER_SOURCE, port);
    return client->fd < 0 ? -1 : 0;
}

/* Runs the loop until ``until`` (monotonic seconds), or until nothing is out when draining. */
static void
run_until(int epoll, double until, char *buffer)
{
    struct epoll_event events[256];
    for (;;) {
        double left = until - now();
        if (left <= 0 || (!running && waiting == 0))
            return;
        int ready = epoll_wait(epoll, events, 256, (int)(left * 1000) + 1);
        for (int i = 0; i < ready; i++) {
            Client *client = events[i].data.ptr;
            if (client->fd >= 0)
                on_readable(epoll, client, buffer);
        }
    }
}

int
main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: echo_load PORT CONNECTIONS DEPTH LINE_BYTES WARMUP_S DURATION_S\n");
        return 2;
    }
    int port = atoi(argv[1]), connections = atoi(argv[2]), line_bytes = atoi(argv[4]);
    double warmup = atof(argv[5]), duration = atof(argv[6]);
    depth = atoll(argv[3]);
    if (port <= 0 || connections <= 0 || depth <= 0 || line_bytes < 2 || duration <= 0) {
        fprintf(stderr, "echo_load: bad arguments\n");
        return 2;
    }
    batch_size = (size_t)depth * (size_t)line_bytes;
    batch = malloc(batch_size);
    Client *clients = calloc((size_t)connections, sizeof(Client));
    char *buffer = malloc(READ_BUFFER);
    int epoll = epoll_create1(0);
    if (!batch || !clients || !buffer || epoll < 0) {
        perror("echo_load");
        return 2;
    }
    memset(batch, 'x', batch_size);
    for (long long i = 1; i <= depth; i++)
        batch[i * line_bytes - 1] = '\n';
    for (int i = 0; i < connections; i++)
        if (open_client(epoll, &clients[i], i, port) < 0)
            return 2;
    for (int i = 0; i < connections; i++)
        send_batch(epoll, &clients[i]);

    run_until(epoll, now() + warmup, buffer);
    long long lines_before = lines;
    double started = now(), cpu_before = cpu_seconds();
    printf("start\n");
    fflush(stdout);
    run_until(epoll, started + duration, buffer);
    double elapsed = now() - started, cpu = cpu_seconds() - cpu_before;
    printf("end %lld %.6f %.6f\n", lines - lines_before, elapsed, cpu);
    fflush(stdout);

    running = 0;
    run_until(epoll, now() + DRAIN_SECONDS, buffer);
    errors += waiting; /* replies that did not come back */
    for (int i = 0; i < connections; i++)
        if (clients[i].fd >= 0)
            close(clients[i].fd);
    printf("errors %lld\n", errors);
    return 0;
}
