/* ferry's output formats, as virsh prints them. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

void print_table(FILE *f, const char *const *header, unsigned ncols, const char *const *cells,
		 unsigned nrows, bool show_header)
{
	size_t width[CLI_MAX_OPTS] = { 0 };

	for (unsigned j = 0; j < ncols && j < CLI_MAX_OPTS; j++) {
		width[j] = show_header ? strlen(header[j]) : 0;
		for (unsigned i = 0; i < nrows; i++)
			if (strlen(cells[i * ncols + j]) > width[j])
				width[j] = strlen(cells[i * ncols + j]);
	}
	/* Each cell " TEXT", padded to its column's width plus 2; a hidden
	 * header does not count in the widths (vshTableGetColumnsWidths). */
	for (unsigned i = show_header ? 0 : 1; i <= nrows; i++) {
		const char *const *row = i ? cells + (i - 1) * ncols : header;

		for (unsigned j = 0; j < ncols; j++) {
			fprintf(f, " %s", row[j]);
			if (j + 1 < ncols)
				fprintf(f, "%*s", (int)(width[j] - strlen(row[j]) + 2), "");
		}
		fputc('\n', f);
		if (i == 0) {
			for (unsigned j = 0; j < ncols; j++)
				for (size_t k = 0; k < width[j] + 3; k++)
					fputc('-', f);
			fputc('\n', f);
		}
	}
}

static const char *jstr(json_object *o, const char *key, const char *def)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && !json_object_is_type(v, json_type_null) ?
	       json_object_get_string(v) : def;
}

static int64_t jint(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static bool jbool(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

void print_list(FILE *f, json_object *list, bool header)
{
	static const char *const names[] = { "Id", "Name", "State" };
	size_t n = json_object_array_length(list);
	const char **cells = calloc(n * 3 + 1, sizeof(*cells));
	char (*ids)[24] = calloc(n + 1, sizeof(*ids));

	if (!cells || !ids) {
		free(cells);
		free(ids);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(list, i);
		int64_t id = jint(d, "id");

		if (id < 0)
			strcpy(ids[i], "-");
		else
			snprintf(ids[i], sizeof(ids[i]), "%" PRId64, id);
		cells[i * 3] = ids[i];
		cells[i * 3 + 1] = jstr(d, "name", "");
		cells[i * 3 + 2] = jstr(d, "state", "");
	}
	print_table(f, names, 3, cells, (unsigned)n, header);
	free(cells);
	free(ids);
}

void print_dominfo(FILE *f, json_object *info)
{
	int64_t id = jint(info, "id");

	if (id < 0)
		fprintf(f, "%-15s %s\n", "Id:", "-");
	else
		fprintf(f, "%-15s %" PRId64 "\n", "Id:", id);
	fprintf(f, "%-15s %s\n", "Name:", jstr(info, "name", ""));
	fprintf(f, "%-15s %s\n", "UUID:", jstr(info, "uuid", ""));
	fprintf(f, "%-15s %s\n", "OS Type:", jstr(info, "os-type", "hvm"));
	fprintf(f, "%-15s %s\n", "State:", jstr(info, "state", ""));
	fprintf(f, "%-15s %" PRId64 "\n", "CPU(s):", jint(info, "vcpus"));
	if (jint(info, "cpu-time-ns"))
		fprintf(f, "%-15s %.1lfs\n", "CPU time:", (double)jint(info, "cpu-time-ns") / 1e9);
	fprintf(f, "%-15s %" PRId64 " KiB\n", "Max memory:", jint(info, "max-memory-kib"));
	fprintf(f, "%-15s %" PRId64 " KiB\n", "Used memory:", jint(info, "used-memory-kib"));
	fprintf(f, "%-15s %s\n", "Persistent:", jbool(info, "persistent") ? "yes" : "no");
	fprintf(f, "%-15s %s\n", "Autostart:", jbool(info, "autostart") ? "enable" : "disable");
	fprintf(f, "%-15s %s\n", "Managed save:", "no");
	fprintf(f, "%-15s %s\n", "Security model:", "none");
	fprintf(f, "%-15s %s\n", "Security DOI:", "0");
}

const char *print_capacity(uint64_t bytes, double *scaled)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	*scaled = v;
	return units[u];
}

static void print_size(FILE *f, const char *label, uint64_t bytes, const char *suffix)
{
	double v;
	const char *unit = print_capacity(bytes, &v);

	fprintf(f, "%-17s %-.3lf %s%s\n", label, v, unit, suffix);
}

static const char *job_type_name(const char *t)
{
	static const char *const map[][2] = {
		{ "none", "None" }, { "unbounded", "Unbounded" }, { "completed", "Completed" },
		{ "failed", "Failed" }, { "cancelled", "Cancelled" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(t, map[i][0]))
			return map[i][1];
	return "Unknown";
}

/* "Data processed/remaining/total:" (prefix "Data") or "Memory ...", as
 * virsh prints them: only when one of the three is not zero. Returns whether
 * it printed. */
static bool print_amounts(FILE *f, json_object *job, const char *key, const char *label)
{
	static const char *const parts[] = { "processed", "remaining", "total" };
	uint64_t v[3];
	char k[32], l[32];

	for (int i = 0; i < 3; i++) {
		snprintf(k, sizeof(k), "%s-%s", key, parts[i]);
		v[i] = (uint64_t)jint(job, k);
	}
	if (!v[0] && !v[1] && !v[2])
		return false;
	for (int i = 0; i < 3; i++) {
		snprintf(l, sizeof(l), "%s %s:", label, parts[i]);
		print_size(f, l, v[i], "");
	}
	return true;
}

/* A "%-17s %-12llu UNIT" line when ferryd sent the key. */
static void print_count(FILE *f, json_object *job, const char *key, const char *label,
			const char *unit)
{
	if (!json_object_object_get_ex(job, key, NULL))
		return;
	fprintf(f, "%-17s %-12" PRId64 "%s%s\n", label, jint(job, key), unit[0] ? " " : "", unit);
}

/* The memory group's rates and counters (virsh prints them only after the
 * memory amounts). */
static void print_memory_rates(FILE *f, json_object *job)
{
	if (jint(job, "memory-bandwidth"))
		print_size(f, "Memory bandwidth:", (uint64_t)jint(job, "memory-bandwidth"), "/s");
	print_count(f, job, "dirty-rate", "Dirty rate:", "pages/s");
	print_count(f, job, "page-size", "Page size:", "bytes");
	print_count(f, job, "iteration", "Iteration:", "");
	print_count(f, job, "postcopy-requests", "Postcopy requests:", "");
}

void print_jobinfo(FILE *f, json_object *job)
{
	const char *type = jstr(job, "type", "none");
	bool completed = !strcmp(type, "completed");

	fprintf(f, "%-17s %-12s\n", "Job type:", job_type_name(type));
	if (!strcmp(type, "none"))
		return;
	fprintf(f, "%-17s %-12s\n", "Operation:",
		!strcmp(jstr(job, "operation", ""), "incoming-migration") ? "Incoming migration" :
		"Outgoing migration");
	/* virsh shows a failed or cancelled job's type and operation only */
	if (!completed && strcmp(type, "unbounded"))
		return;
	fprintf(f, "%-17s %-12" PRId64 " ms\n", "Time elapsed:", jint(job, "time-elapsed-ms"));
	print_amounts(f, job, "data", "Data");
	if (print_amounts(f, job, "memory", "Memory"))
		print_memory_rates(f, job);
	print_count(f, job, "constant-pages", "Constant pages:", "");
	print_count(f, job, "normal-pages", "Normal pages:", "");
	if (json_object_object_get_ex(job, "normal-data", NULL))
		print_size(f, "Normal data:", (uint64_t)jint(job, "normal-data"), "");
	if (completed)
		print_count(f, job, "downtime-ms", "Total downtime:", "ms");
	else
		print_count(f, job, "expected-downtime-ms", "Expected downtime:", "ms");
	print_count(f, job, "setup-time-ms", "Setup time:", "ms");
	if (jstr(job, "error", NULL))
		fprintf(f, "%-17s %s\n", "Error message:", jstr(job, "error", ""));
}

void print_domstats(FILE *f, json_object *stats)
{
	for (size_t i = 0; i < json_object_array_length(stats); i++) {
		json_object *d = json_object_array_get_idx(stats, i), *s;

		fprintf(f, "Domain: '%s'\n", jstr(d, "name", ""));
		if (json_object_object_get_ex(d, "stats", &s)) {
			json_object_object_foreach(s, key, val)
				fprintf(f, "  %s=%s\n", key, json_object_get_string(val));
		}
		fputc('\n', f);
	}
}
