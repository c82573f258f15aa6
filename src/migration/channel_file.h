/* A save file written atomically: the stream goes to a temporary file
 * beside the target, which is fsync'd and renamed over it only when
 * complete. A failed or cancelled save leaves no file and never a half one. */
#ifndef FERRY_MIGRATION_CHANNEL_FILE_H
#define FERRY_MIGRATION_CHANNEL_FILE_H

struct file_channel {
	int fd;     /* write the stream here */
	char *path; /* the final name */
	char *tmp;  /* the temporary name, in the same directory */
};

/* Creates the temporary file (mode 0600). Returns 0 or -errno with an
 * error logged. */
int file_channel_create(struct file_channel *c, const char *path);

/* fsync, rename to the final name, fsync the directory. Returns 0 or
 * -errno with an error logged; on error the temporary file is removed. */
int file_channel_commit(struct file_channel *c);

/* Removes the temporary file. Safe after a failed commit. */
void file_channel_abort(struct file_channel *c);

#endif
