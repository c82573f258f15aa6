/* ferryd's state directory:
 *   DIR/domains/NAME.xml  persistent definitions (written atomically)
 *   DIR/run/NAME.json     a running VM's record: process, id, flags, job
 *   DIR/run/NAME.xml      the definition it runs with (also for transient VMs)
 *   DIR/run/NAME.ctl      its ferry-vmm control socket; NAME.console its serial
 *   DIR/run/NAME.exit     written by the VM's waiter process when it ends
 *   DIR/log/NAME.log      ferry-vmm's stderr
 *   DIR/ferryd.lock       one ferryd per directory (flock)
 * Everything a restarted ferryd needs to find its VMs again is on disk. */
#ifndef FERRY_DAEMON_STORE_H
#define FERRY_DAEMON_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_PATH_MAX 4096

struct store {
	char dir[STORE_PATH_MAX / 2];
	int lock_fd;
};

/* Creates the directories (mode 0700) and takes the lock. Returns 0, or
 * -errno with one line in err ("another ferryd uses DIR"). */
int store_open(struct store *s, const char *dir, char *err, size_t errlen);
void store_close(struct store *s);

/* DIR/<sub>/<name><ext> into out (STORE_PATH_MAX). sub: "domains", "run", "log". */
void store_path(const struct store *s, const char *sub, const char *name, const char *ext,
		char *out);

/* Writes path atomically: a temporary file in the same directory, fsync,
 * rename, fsync of the directory. On failure nothing is left behind and the
 * old file (if any) is unchanged. Returns 0 or -errno. */
int store_write_atomic(const char *path, const void *data, size_t len);

/* Removes path and syncs its directory; a missing file is not an error. */
int store_remove(const char *path);

/* Calls fn for each DIR/<sub>/NAME<ext> with the name (extension stripped). */
void store_each(const struct store *s, const char *sub, const char *ext,
		void (*fn)(const char *name, void *opaque), void *opaque);

#endif
