/* proxy/uring — see uring.h. */
#include "proxy/uring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <liburing.h>

/* Room for every socket operation of a busy iteration; a full queue is submitted early. */
#define RING_ENTRIES 1024

struct Uring {
    struct io_uring ring;
    struct ev_loop *loop;
    ev_io ring_watcher;
    ev_prepare submitter;
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

static void on_ring(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    Uring *u = w->data;
    dispatch(u);
    /* Completions left over: come back without waiting. */
    if (io_uring_cq_ready(&u->ring) > 0)
        ev_feed_event(u->loop, &u->ring_watcher, EV_READ);
}

/* Just before libev waits: completions already posted are handled here and the SQEs of the
 * whole iteration go to the kernel in one io_uring_enter. Completions come to a thread asleep
 * in epoll_wait as task work that interrupts it (EINTR), so the next iteration finds them
 * posted here, without another epoll_wait; and sends that completed inline during the submit
 * are handled at once, so their completions cost no wake-up either. Bounded: what is left
 * waits in the CQ, whose fd then wakes epoll_wait at once. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    Uring *u = w->data;
    for (int round = 0; round < 4; round++) {
        if (io_uring_cq_ready(&u->ring) > 0)
            dispatch(u);
        if (io_uring_sq_ready(&u->ring) == 0)
            break;
        /* An error (EBUSY, EAGAIN) leaves the SQEs queued: the next iteration retries. */
        if (io_uring_submit(&u->ring) < 0)
            break;
    }
}

Uring *uring_new(struct ev_loop *loop, unsigned n_buffers, size_t buffer_size, char *err,
                 size_t err_len)
{
    Uring *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* No COOP/DEFER_TASKRUN: this thread sleeps in epoll_wait, not in the ring, so completions
     * must be posted (and the ring fd signalled) without it entering the ring. */
    p.flags = IORING_SETUP_SUBMIT_ALL;
    int rc = io_uring_queue_init_params(RING_ENTRIES, &u->ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof p);
        rc = io_uring_queue_init_params(RING_ENTRIES, &u->ring, &p);
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
    ev_io_init(&u->ring_watcher, on_ring, u->ring.ring_fd, EV_READ);
    u->ring_watcher.data = u;
    ev_io_start(loop, &u->ring_watcher);
    ev_prepare_init(&u->submitter, on_prepare);
    u->submitter.data = u;
    ev_prepare_start(loop, &u->submitter);
    /* Neither watcher keeps the loop alive on its own: shutdown ends when sessions do. */
    ev_unref(loop);
    ev_unref(loop);
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
    ev_ref(u->loop);
    ev_ref(u->loop);
    ev_io_stop(u->loop, &u->ring_watcher);
    ev_prepare_stop(u->loop, &u->submitter);
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
