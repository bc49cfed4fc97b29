/* proxy/uring — the io_uring ring the relay's data path runs on, and the loop that waits on it.
 *
 * Owns: one ring, its provided-buffer ring (receives land in these buffers, chosen by the
 * kernel when data arrives, so an idle connection holds none), and the program's main loop
 * when the ring is in use (uring_run): the thread sleeps only in the ring, in one
 * io_uring_submit_and_wait per iteration that hands the kernel every SQE queued during the
 * iteration and reaps what completed. libev, which keeps timers, signals, the listener, TLS
 * and startup-phase sockets, runs non-blocking (EVRUN_NOWAIT) only when its epoll fd became
 * readable (a poll on it is one of the ring's operations), when a callback fed it an event,
 * or every 10 ms for its timers.
 *
 * Every SQE's user_data is a UringOp* (or 0: completions nobody waits for); its callback gets
 * the CQE's res and flags. The op's memory must stay valid until its completion arrived. */
#ifndef PGTALLY_PROXY_URING_H
#define PGTALLY_PROXY_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

struct io_uring_sqe;
typedef struct Uring Uring;
typedef struct UringOp UringOp;

typedef void (*UringOpFn)(UringOp *op, int res, unsigned flags);

struct UringOp {
    UringOpFn fn;
};

/* The buffer group every receive selects from. */
#define URING_BUFFER_GROUP 0

/* Sets up a ring with n_buffers provided buffers of buffer_size bytes (n_buffers a power of
 * two) on loop. Returns NULL when io_uring is unavailable here (no kernel support, disabled by
 * kernel.io_uring_disabled or a seccomp filter, or a kernel without buffer rings), with the
 * reason in err. */
Uring *uring_new(struct ev_loop *loop, unsigned n_buffers, size_t buffer_size, char *err,
                 size_t err_len);
void uring_free(Uring *u);

/* A fresh SQE, submitting the queued ones first when the submission queue is full. Never
 * NULL (the ring is sized so one submission always frees room). */
struct io_uring_sqe *uring_sqe(Uring *u);

/* Says that the SQE just queued completes while it is submitted (a send with MSG_DONTWAIT), so
 * its completion must not end the loop's wait by itself. */
void uring_expect_inline(Uring *u);

/* Takes fd out of libev's epoll set: call when its sockets move to the ring (their watchers
 * stopped), so their traffic no longer wakes libev. */
void uring_forget_fd(Uring *u, int fd);

/* Queues a cancellation of op (completes op with -ECANCELED if it was still in flight). */
void uring_cancel(Uring *u, UringOp *op);

uint8_t *uring_buffer(Uring *u, uint16_t bid);
size_t uring_buffer_size(const Uring *u);

/* Gives a received buffer back to the kernel for later receives. */
void uring_buffer_return(Uring *u, uint16_t bid);

/* Runs the loop (instead of ev_run(loop, 0)) until uring_break, or until libev has no active
 * watcher left. */
void uring_run(Uring *u);

/* Makes uring_run return after the current iteration (with ev_break: libev forgets a break
 * made outside ev_run when it is next run). NULL is ignored. */
void uring_break(Uring *u);

/* How completions' task work runs: "defer" (DEFER_TASKRUN), "coop" or "plain". */
const char *uring_mode(const Uring *u);

/* Outside the loop (shutdown): submits, waits up to timeout_ms for a completion, and
 * dispatches what completed. */
void uring_wait(Uring *u, unsigned timeout_ms);

#endif
