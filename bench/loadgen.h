/* What the C load generators share: the clocks, and a client connection from a loopback
 * source address.
 *
 * Connection i leaves from 127.0.0.(2 + i / per_source), as the Python load generators'
 * connections do (harness.source_address), so that no address runs out of ephemeral ports
 * and SO_REUSEPORT has many source ports and addresses to hash.
 */

#ifndef BENCH_LOADGEN_H
#define BENCH_LOADGEN_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Monotonic seconds. */
static double
now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* User plus system CPU seconds of this process so far. */
static double
cpu_seconds(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
           (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

/* Connects connection ``index`` to 127.0.0.1:``port``, TCP_NODELAY, non-blocking, added to
 * ``epoll`` for EPOLLIN with ``data`` as its pointer: the descriptor, or -1 (said on stderr,
 * after ``name``). */
static int
connect_from(const char *name, int epoll, void *data, int index, int per_source, int port)
{
    struct sockaddr_in source = {.sin_family = AF_INET}, target = {.sin_family = AF_INET};
    int number = 2 + index / per_source, yes = 1;
    char address[32];
    snprintf(address, sizeof address, "127.0.%d.%d", number / 256, number % 256);
    inet_pton(AF_INET, address, &source.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &target.sin_addr);
    target.sin_port = htons((unsigned short)port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&source, sizeof source) < 0 ||
        connect(fd, (struct sockaddr *)&target, sizeof target) < 0) {
        fprintf(stderr, "%s: connect: ", name);
        perror(NULL);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = data};
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
        epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) < 0) {
        fprintf(stderr, "%s: socket: ", name);
        perror(NULL);
        close(fd);
        return -1;
    }
    return fd;
}

#endif
