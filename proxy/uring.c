/* proxy/uring — see uring.h. */
#include "proxy/uring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>

#include <liburing.h>

/* Room for every socket operation of a busy iteration; a full queue is submitted early. */
#define RING_ENTRIES 1024
/* libev is run (non-blocking) at least this often, for its timers: libev has no public way to
 * tell its next timer, so the ring wait is capped. Every pgtally timer is 100 ms or longer. */
#define LIBEV_TICK_NS 10000000LL

struct Uring {
    struct io_uring ring;
    struct ev_loop *loop;
    int ev_fd;       /* libev's backend (epoll) fd, polled by the ring */
    UringOp ev_poll; /* that poll: one-shot, armed after each libev run */
    bool ev_poll_armed;
    bool ev_ready;            /* libev's fd became readable: run libev */
    bool stop;                /* uring_break: uring_run returns */
    unsigned inline_expected; /* SQEs queued that complete while being submitted */
    const char *mode;         /* how task work runs: "defer", "coop" or "plain" */
    struct io_uring_buf_ring *buf_ring;
    size_t buf_ring_size;
    uint8_t *buffers;
    unsigned n_buffers;
    size_t buffer_size;
};

static void dispatch(Uring *u)
{
    /* Bounded: completions posted while these are handled wait for the next iteration, with
     * the SQEs these made, so one busy socket cannot hold the loop. */
    unsigned budget = RING_ENTRIES;
    struct io_uring_cqe *cqe;
    while (budget-- > 0 && io_uring_peek_cqe(&u->ring, &cqe) == 0) {
        UringOp *op = (UringOp *)(uintptr_t)io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        unsigned flags = cqe->flags;
        io_uring_cqe_seen(&u->ring, cqe);
        if (op)
            op->fn(op, res, flags);
    }
}

static void on_ev_fd(UringOp *op, int res, unsigned flags)
{
    (void)res;
    (void)flags;
    Uring *u = (Uring *)((char *)op - offsetof(Uring, ev_poll));
    u->ev_poll_armed = false;
    u->ev_ready = true;
}

static void arm_ev_poll(Uring *u)
{
    if (u->ev_poll_armed)
        return;
    /* One-shot: libev's epoll is level-triggered, so a poll armed while events are still
     * queued in it completes at once; a multishot poll would only see new wake-ups. */
    struct io_uring_sqe *sqe = uring_sqe(u);
    io_uring_prep_poll_add(sqe, u->ev_fd, POLLIN);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)&u->ev_poll);
    u->ev_poll_armed = true;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void uring_run(Uring *u)
{
    u->stop = false;
    bool run_ev = true;
    int64_t next_ev = 0;
    for (;;) {
        if (run_ev) {
            u->ev_ready = false;
            /* ev_run returns the number of active watchers: none left ends the loop, as a
             * blocking ev_run would. */
            if (!ev_run(u->loop, EVRUN_NOWAIT) || u->stop)
                break;
            arm_ev_poll(u);
            next_ev = mono_ns() + LIBEV_TICK_NS;
        }
        if (u->stop)
            break;
        int64_t left = next_ev - mono_ns();
        if (left < 0)
            left = 0;
        struct __kernel_timespec ts = {.tv_sec = left / 1000000000LL,
                                       .tv_nsec = left % 1000000000LL};
        /* The iteration's one system call: every SQE queued since the last one (all sessions'
         * sends and re-arms) goes in, and the thread sleeps here until a completion, libev's
         * fd or its next tick. Sends are made with MSG_DONTWAIT, so each completes while it is
         * submitted (sent, or -EAGAIN): waiting for that many completions more than one keeps
         * the sends' own completions from ending the wait, so relaying a message and waiting
         * for the next one is one call, not two. (Were one counted wrongly, the wait would end
         * at the tick: a late iteration, never a stall.) Completions left from the last
         * dispatch (its budget ran out) are handled without waiting. */
        unsigned wait_nr = io_uring_cq_ready(&u->ring) > 0 ? 0 : 1 + u->inline_expected;
        u->inline_expected = 0;
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, wait_nr, &ts, NULL);
        dispatch(u);
        run_ev =
            u->ev_ready || rc == -EINTR || ev_pending_count(u->loop) > 0 || mono_ns() >= next_ev;
    }
}

void uring_expect_inline(Uring *u)
{
    u->inline_expected++;
}

void uring_forget_fd(Uring *u, int fd)
{
    /* libev leaves a stopped watcher's fd in its epoll set until it reports an event nobody
     * wants; the ring consumes that fd's data first, so libev would never see one, and every
     * arrival would make its epoll fd readable (a wasted wake-up and libev run). libev copes
     * with fds leaving its set behind its back (as when they are closed): a later watcher on
     * the same fd number is added again. */
    (void)epoll_ctl(u->ev_fd, EPOLL_CTL_DEL, fd, NULL);
}

void uring_break(Uring *u)
{
    if (u)
        u->stop = true;
}

const char *uring_mode(const Uring *u)
{
    return u->mode;
}

/* libev's backend fd: libev has no getter, but embedding a loop exposes it (an ev_embed
 * watches the embedded loop's backend fd). A throwaway select() loop is the host. */
static int libev_backend_fd(struct ev_loop *loop)
{
    if (!(ev_backend(loop) & ev_embeddable_backends()))
        return -1;
    struct ev_loop *host = ev_loop_new(EVBACKEND_SELECT | EVFLAG_NOENV | EVFLAG_NOSIGMASK);
    if (!host)
        return -1;
    ev_embed probe;
    ev_embed_init(&probe, NULL, loop);
    ev_embed_start(host, &probe);
    int fd = probe.io.fd;
    ev_embed_stop(host, &probe);
    ev_loop_destroy(host);
    return fd;
}

Uring *uring_new(struct ev_loop *loop, unsigned n_buffers, size_t buffer_size, char *err,
                 size_t err_len)
{
    Uring *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    u->ev_fd = libev_backend_fd(loop);
    if (u->ev_fd < 0) {
        snprintf(err, err_len, "libev's backend cannot be polled (not epoll)");
        free(u);
        return NULL;
    }
    /* This thread sleeps in the ring (uring_run), so completions can wait for it to enter:
     * DEFER_TASKRUN runs their task work only then, in one batch, with no interrupt and no
     * wake-up before the first one (kernel >= 6.1); COOP_TASKRUN at least does not interrupt
     * the thread (>= 5.19). */
    static const struct {
        unsigned flags;
        const char *mode;
    } setups[] = {
        {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
         "defer"},
        {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN, "coop"},
        {0, "plain"},
    };
    int rc = -EINVAL;
    const char *forced = getenv("PGTALLY_URING_TASKRUN"); /* tests and measurements */
    for (size_t i = 0; i < sizeof setups / sizeof setups[0] && rc == -EINVAL; i++) {
        if (forced && *forced && strcmp(forced, setups[i].mode) != 0)
            continue;
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = setups[i].flags;
        rc = io_uring_queue_init_params(RING_ENTRIES, &u->ring, &p);
        u->mode = setups[i].mode;
    }
    if (rc < 0) {
        snprintf(err, err_len, "io_uring_setup: %s", strerror(-rc));
        free(u);
        return NULL;
    }
    u->n_buffers = n_buffers;
    u->buffer_size = buffer_size;
    u->buffers = malloc((size_t)n_buffers * buffer_size);
    if (!u->buffers) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    /* liburing 2.3 (Debian 12) has no io_uring_setup_buf_ring: map and register by hand. */
    u->buf_ring_size = (size_t)n_buffers * sizeof(struct io_uring_buf);
    void *mem =
        mmap(NULL, u->buf_ring_size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
        snprintf(err, err_len, "provided-buffer ring: %s", strerror(errno));
        goto fail;
    }
    u->buf_ring = mem;
    io_uring_buf_ring_init(u->buf_ring);
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)mem,
                                   .ring_entries = n_buffers,
                                   .bgid = URING_BUFFER_GROUP};
    int brc = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (brc < 0) {
        munmap(mem, u->buf_ring_size);
        u->buf_ring = NULL;
        snprintf(err, err_len, "provided-buffer ring: %s", strerror(-brc));
        goto fail;
    }
    for (unsigned i = 0; i < n_buffers; i++)
        io_uring_buf_ring_add(u->buf_ring, u->buffers + (size_t)i * buffer_size,
                              (unsigned)buffer_size, (unsigned short)i,
                              io_uring_buf_ring_mask(n_buffers), (int)i);
    io_uring_buf_ring_advance(u->buf_ring, (int)n_buffers);

    u->loop = loop;
    u->ev_poll.fn = on_ev_fd;
    return u;
fail:
    io_uring_queue_exit(&u->ring);
    free(u->buffers);
    free(u);
    return NULL;
}

void uring_free(Uring *u)
{
    if (!u)
        return;
    io_uring_queue_exit(&u->ring); /* unregisters the buffer ring too */
    if (u->buf_ring)
        munmap(u->buf_ring, u->buf_ring_size);
    free(u->buffers);
    free(u);
}

struct io_uring_sqe *uring_sqe(Uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    while (!sqe) {
        (void)io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

void uring_cancel(Uring *u, UringOp *op)
{
    struct io_uring_sqe *sqe = uring_sqe(u);
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data64(sqe, 0);
}

uint8_t *uring_buffer(Uring *u, uint16_t bid)
{
    return u->buffers + (size_t)bid * u->buffer_size;
}

size_t uring_buffer_size(const Uring *u)
{
    return u->buffer_size;
}

void uring_buffer_return(Uring *u, uint16_t bid)
{
    io_uring_buf_ring_add(u->buf_ring, uring_buffer(u, bid), (unsigned)u->buffer_size, bid,
                          io_uring_buf_ring_mask(u->n_buffers), 0);
    io_uring_buf_ring_advance(u->buf_ring, 1);
}

void uring_wait(Uring *u, unsigned timeout_ms)
{
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
    struct io_uring_cqe *cqe;
    (void)io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
    dispatch(u);
}
