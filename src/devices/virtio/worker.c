#include "devices/virtio/worker.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"

void virtio_worker_kick(struct virtio_worker *w)
{
	uint64_t one = 1;

	if (write(w->kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("virtio worker kick: %s", strerror(errno));
}

bool virtio_worker_yield(struct virtio_worker *w)
{
	bool stop;

	pthread_mutex_lock(&w->lock);
	stop = w->paused || w->exit;
	pthread_mutex_unlock(&w->lock);
	return stop;
}

static void *worker_thread(void *arg)
{
	struct virtio_worker *w = arg;
	struct pollfd fds[WORKER_MAX_FDS + 1];

	for (;;) {
		unsigned n = 0;
		uint64_t v;
		bool paused;

		pthread_mutex_lock(&w->lock);
		if (w->exit) {
			pthread_mutex_unlock(&w->lock);
			return NULL;
		}
		paused = w->paused;
		pthread_mutex_unlock(&w->lock);
		/* Paused: only the kick wakes us (what the guest or the network
		 * sends waits in its eventfd or socket until resume). */
		if (!paused)
			w->fill(w->dev, fds + 1, &n);
		fds[0] = (struct pollfd){ .fd = w->kick_fd, .events = POLLIN };
		if (poll(fds, n + 1, -1) < 0 && errno != EINTR) {
			log_warn("virtio worker: poll: %s", strerror(errno));
			continue;
		}
		while (read(w->kick_fd, &v, sizeof(v)) > 0)
			;
		pthread_mutex_lock(&w->lock);
		if (w->paused || w->exit) {
			pthread_mutex_unlock(&w->lock);
			continue;
		}
		w->busy = true;
		pthread_mutex_unlock(&w->lock);
		w->work(w->dev, fds + 1, n);
		pthread_mutex_lock(&w->lock);
		w->busy = false;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
	}
}

int virtio_worker_start(struct virtio_worker *w, bool paused)
{
	int ret;

	w->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->kick_fd < 0)
		return -errno;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->paused = paused;
	w->busy = w->exit = false;
	ret = -pthread_create(&w->thread, NULL, worker_thread, w);
	if (ret) {
		close(w->kick_fd);
		w->kick_fd = -1;
		return ret;
	}
	w->started = true;
	return 0;
}

void virtio_worker_stop(struct virtio_worker *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->exit = true;
	pthread_mutex_unlock(&w->lock);
	virtio_worker_kick(w);
	pthread_join(w->thread, NULL);
	close(w->kick_fd);
	w->kick_fd = -1;
	w->started = false;
}

void virtio_worker_wait_idle(struct virtio_worker *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	while (w->busy)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

void virtio_worker_pause(struct virtio_worker *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->paused = true;
	pthread_mutex_unlock(&w->lock);
	virtio_worker_kick(w);
	virtio_worker_wait_idle(w);
}

void virtio_worker_resume(struct virtio_worker *w)
{
	if (!w->started)
		return;
	pthread_mutex_lock(&w->lock);
	w->paused = false;
	pthread_mutex_unlock(&w->lock);
	virtio_worker_kick(w);
}
