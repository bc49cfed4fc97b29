/* proxy/uring — the io_uring ring the relay's data path runs on, wired into the libev loop.
 *
 * Owns: one ring, its provided-buffer ring (receives land in these buffers, chosen by the
 * kernel when data arrives, so an idle connection holds none), and the two libev watchers that
 * join the ring to the loop: an ev_io on the ring's fd (completions are reaped there with
 * io_uring_peek: no syscall) and an ev_prepare that, just before libev waits, handles the
 * completions already posted and hands every SQE queued during the iteration to the kernel in
 * one io_uring_submit. So an iteration costs libev's epoll_wait plus about one io_uring_enter
 * (a few when sends completing inline queue more work), whatever the number of sockets.
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

/* Queues a cancellation of op (completes op with -ECANCELED if it was still in flight). */
void uring_cancel(Uring *u, UringOp *op);

uint8_t *uring_buffer(Uring *u, uint16_t bid);
size_t uring_buffer_size(const Uring *u);

/* Gives a received buffer back to the kernel for later receives. */
void uring_buffer_return(Uring *u, uint16_t bid);

/* Outside the loop (shutdown): submits, waits up to timeout_ms for a completion, and
 * dispatches what completed. */
void uring_wait(Uring *u, unsigned timeout_ms);

#endif
