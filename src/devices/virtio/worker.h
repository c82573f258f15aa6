/* The thread that serves a virtio device's queues outside the vCPUs: it
 * waits on the device's file descriptors (queue notify eventfds, a tap) and
 * calls the device's work function; the VM's pause stops it between
 * requests and waits until nothing is in flight; resume lets it go on. */
#ifndef FERRY_DEVICES_VIRTIO_WORKER_H
#define FERRY_DEVICES_VIRTIO_WORKER_H

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>

#define WORKER_MAX_FDS 8

struct virtio_worker {
	/* fill: the descriptors to wait on now (beyond the worker's own);
	 * work: serve what is ready; return when done or when
	 * virtio_worker_yield() says so. Both run on the worker thread. */
	void (*fill)(void *dev, struct pollfd *fds, unsigned *n);
	void (*work)(void *dev, const struct pollfd *fds, unsigned n);
	void *dev;

	pthread_t thread;
	bool started;
	int kick_fd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool paused;            /* take no request */
	bool busy;              /* in work() */
	bool exit;
};

/* Starts the thread (paused or not). Returns 0 or -errno. */
int virtio_worker_start(struct virtio_worker *w, bool paused);
/* Ends the thread (after the work under way). */
void virtio_worker_stop(struct virtio_worker *w);
/* Stops taking requests and waits until work() has returned. */
void virtio_worker_pause(struct virtio_worker *w);
void virtio_worker_resume(struct virtio_worker *w);
/* Makes the thread look at its descriptors again (state changed). */
void virtio_worker_kick(struct virtio_worker *w);
/* Waits until work() is not running (it may start again at the next kick). */
void virtio_worker_wait_idle(struct virtio_worker *w);
/* For work(): stop at the next request boundary. */
bool virtio_worker_yield(struct virtio_worker *w);

#endif
