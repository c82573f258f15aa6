#include "migration/channel_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

int file_channel_create(struct file_channel *c, const char *path)
{
	size_t len = strlen(path) + sizeof(".tmp.XXXXXX");

	c->fd = -1;
	c->path = strdup(path);
	c->tmp = malloc(len);
	if (!c->path || !c->tmp) {
		file_channel_abort(c);
		return -ENOMEM;
	}
	snprintf(c->tmp, len, "%s.tmp.XXXXXX", path);
	c->fd = mkostemp(c->tmp, O_CLOEXEC);
	if (c->fd < 0) {
		int err = errno;

		log_error("save: cannot create %s: %s", c->tmp, strerror(err));
		free(c->tmp);
		c->tmp = NULL;
		file_channel_abort(c);
		return -err;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, ret = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	free(copy);
	return ret;
}

int file_channel_commit(struct file_channel *c)
{
	int ret = 0;

	if (fsync(c->fd) < 0)
		ret = -errno;
	if (close(c->fd) < 0 && ret == 0)
		ret = -errno;
	c->fd = -1;
	if (ret == 0 && rename(c->tmp, c->path) < 0)
		ret = -errno;
	if (ret) {
		log_error("save: writing %s: %s", c->path, strerror(-ret));
		file_channel_abort(c);
		return ret;
	}
	free(c->tmp);
	c->tmp = NULL;
	/* The rename is durable once the directory is on disk. */
	ret = fsync_dir_of(c->path);
	if (ret)
		log_warn("save: fsync of the directory of %s: %s", c->path, strerror(-ret));
	file_channel_abort(c);
	return 0;
}

void file_channel_abort(struct file_channel *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->tmp)
		unlink(c->tmp);
	free(c->tmp);
	free(c->path);
	c->tmp = c->path = NULL;
}
