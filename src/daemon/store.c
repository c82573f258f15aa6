#include "daemon/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fdio.h"

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[STORE_PATH_MAX];
	char *p;

	if (strlen(path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	strcpy(tmp, path);
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int store_open(struct store *s, const char *dir, char *err, size_t errlen)
{
	static const char *const subs[] = { "domains", "run", "log" };
	char path[STORE_PATH_MAX];
	int ret;

	s->lock_fd = -1;
	if (!dir[0] || strlen(dir) >= sizeof(s->dir)) {
		snprintf(err, errlen, "state directory name empty or too long");
		return -ENAMETOOLONG;
	}
	strcpy(s->dir, dir);
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
		ret = mkdir_p(path, 0700);
		if (ret) {
			snprintf(err, errlen, "cannot create %s: %s", path, strerror(-ret));
			return ret;
		}
	}
	snprintf(path, sizeof(path), "%s/ferryd.lock", dir);
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return ret;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		ret = -errno;
		snprintf(err, errlen, "another ferryd uses the state directory %s", dir);
		close(s->lock_fd);
		s->lock_fd = -1;
		return ret;
	}
	return 0;
}

void store_close(struct store *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->lock_fd = -1;
}

void store_path(const struct store *s, const char *sub, const char *name, const char *ext,
		char *out)
{
	snprintf(out, STORE_PATH_MAX, "%s/%s/%s%s", s->dir, sub, name, ext);
}

static int sync_dir_of(const char *path)
{
	char tmp[STORE_PATH_MAX];
	int fd, ret = 0;

	snprintf(tmp, sizeof(tmp), "%s", path);
	fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int store_write_atomic(const char *path, const void *data, size_t len)
{
	char tmp[STORE_PATH_MAX + 16];
	int fd, ret;

	snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = fd_write_all(fd, data, len);
	if (!ret && fchmod(fd, 0600) < 0)
		ret = -errno;
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret) {
		unlink(tmp);
		return ret;
	}
	return sync_dir_of(path);
}

int store_remove(const char *path)
{
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	return sync_dir_of(path);
}

void store_each(const struct store *s, const char *sub, const char *ext,
		void (*fn)(const char *name, void *opaque), void *opaque)
{
	char path[STORE_PATH_MAX];
	size_t elen = strlen(ext);
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", s->dir, sub);
	d = opendir(path);
	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char name[256];

		if (e->d_name[0] == '.' || n <= elen || strcmp(e->d_name + n - elen, ext) ||
		    n - elen >= sizeof(name))
			continue;
		memcpy(name, e->d_name, n - elen);
		name[n - elen] = 0;
		fn(name, opaque);
	}
	closedir(d);
}
