/* The power button; see button.h. */
#include "button.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/input.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define INPUT_DIR "/dev/input"
#define LONG_BITS (sizeof(long) * CHAR_BIT)

static bool has_key_power(int fd)
{
	unsigned long bits[KEY_MAX / LONG_BITS + 1];

	memset(bits, 0, sizeof(bits));
	if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(bits)), bits) < 0)
		return false;
	return bits[KEY_POWER / LONG_BITS] >> (KEY_POWER % LONG_BITS) & 1;
}

/* The event device's fd if it has KEY_POWER, else -1. */
static int open_if_button(const char *name)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), INPUT_DIR "/%s", name);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0 && !has_key_power(fd)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int buttons_open(struct buttons *b)
{
	DIR *d = opendir(INPUT_DIR);
	struct dirent *e;

	b->n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d)) && b->n < BUTTONS_MAX) {
		int fd;

		if (strncmp(e->d_name, "event", 5))
			continue;
		fd = open_if_button(e->d_name);
		if (fd >= 0)
			b->fd[b->n++] = fd;
	}
	closedir(d);
	return 0;
}

bool button_pressed(int fd)
{
	struct input_event ev[16];
	bool pressed = false;
	ssize_t n;

	while ((n = read(fd, ev, sizeof(ev))) > 0) {
		for (size_t i = 0; i < (size_t)n / sizeof(ev[0]); i++)
			pressed |= ev[i].type == EV_KEY && ev[i].code == KEY_POWER &&
				   ev[i].value == 1;
	}
	return pressed;
}
