/* The scenarios of test_differential.py, run on libevent itself.
 *
 * "signals": a SIGUSR1 sent by another process (kill(1)) before each of 20
 * event_base_loop(EVLOOP_ONCE) rounds; prints how many the signal event saw.
 * "cadence": a persistent 100 ms timer; the loop is held up for 30 ms from 10 ms
 * before the deadlines after firings 2 and 5; prints, per firing, how late it ran and
 * the gap between its next deadline and the previous one (both in microseconds).
 */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define INTERVAL_US 100000L
#define FIRINGS 8

static long usec(const struct timeval *tv) { return tv->tv_sec * 1000000L + tv->tv_usec; }

static long now_usec(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return usec(&tv);
}

static int caught;

static void on_signal(evutil_socket_t fd, short what, void *arg) { caught++; }

static void on_nothing(evutil_socket_t fd, short what, void *arg) {}

static int signals(void) {
    struct event_base *base = event_base_new();
    struct event *sig = evsignal_new(base, SIGUSR1, on_signal, NULL);
    struct event *guard = evtimer_new(base, on_nothing, NULL);
    struct timeval patience = {5, 0};
    char command[64];
    event_add(sig, NULL);
    for (int round = 0; round < 20; round++) {
        snprintf(command, sizeof command, "kill -USR1 %d", (int)getpid());
        if (system(command) != 0)
            return 1;
        event_add(guard, &patience);
        event_base_loop(base, EVLOOP_ONCE);
        event_del(guard);
    }
    printf("signals %d\n", caught);
    event_free(guard);
    event_free(sig);
    event_base_free(base);
    return 0;
}

struct cadence {
    struct event_base *base;
    struct event *timer;
    struct event *hold;
    int firings;
    long deadline;
};

static void on_hold(evutil_socket_t fd, short what, void *arg) { usleep(30000); }

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    struct cadence *c = arg;
    struct timeval next_tv;
    long now = now_usec();
    event_pending(c->timer, EV_TIMEOUT, &next_tv);
    long next = usec(&next_tv);
    c->firings++;
    printf("tick %d late %ld gap %ld\n", c->firings, now - c->deadline, next - c->deadline);
    c->deadline = next;
    if (c->firings == 2 || c->firings == 5) {
        struct timeval in = {0, next - now - 10000};
        event_add(c->hold, &in);
    }
    if (c->firings == FIRINGS)
        event_del(c->timer);
}

static int cadence(void) {
    struct cadence c = {0};
    struct timeval interval = {0, INTERVAL_US};
    c.base = event_base_new();
    c.timer = event_new(c.base, -1, EV_PERSIST, on_tick, &c);
    c.hold = evtimer_new(c.base, on_hold, NULL);
    event_add(c.timer, &interval);
    struct timeval first;
    event_pending(c.timer, EV_TIMEOUT, &first);
    c.deadline = usec(&first);
    event_base_dispatch(c.base);
    event_free(c.hold);
    event_free(c.timer);
    event_base_free(c.base);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "signals") == 0)
        return signals();
    if (argc == 2 && strcmp(argv[1], "cadence") == 0)
        return cadence();
    fprintf(stderr, "usage: %s signals|cadence\n", argv[0]);
    return 2;
}
