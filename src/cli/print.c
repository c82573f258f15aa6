/* ferry's output formats, as virsh prints them. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

void print_table(FILE *f, const char *const *header, unsigned ncols, const char *const *cells,
		 unsigned nrows)
{
	size_t width[CLI_MAX_OPTS] = { 0 };

	for (unsigned j = 0; j < ncols && j < CLI_MAX_OPTS; j++) {
		width[j] = strlen(header[j]);
		for (unsigned i = 0; i < nrows; i++)
			if (strlen(cells[i * ncols + j]) > width[j])
				width[j] = strlen(cells[i * ncols + j]);
	}
	/* Each cell " TEXT", padded to its column's width plus 2. */
	for (unsigned i = 0; i <= nrows; i++) {
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

void print_list(FILE *f, json_object *list)
{
	static const char *const header[] = { "Id", "Name", "State" };
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
	print_table(f, header, 3, cells, (unsigned)n);
	fputc('\n', f);
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
	if (id >= 0)
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
	fprintf(f, "%-17s %-12" PRId64 " ms\n", "Time elapsed:", jint(job, "time-elapsed-ms"));
	print_size(f, "Data processed:", (uint64_t)jint(job, "data-processed"), "");
	print_size(f, "Data remaining:", (uint64_t)jint(job, "data-remaining"), "");
	print_size(f, "Data total:", (uint64_t)jint(job, "data-total"), "");
	print_size(f, "Memory processed:", (uint64_t)jint(job, "memory-processed"), "");
	print_size(f, "Memory remaining:", (uint64_t)jint(job, "memory-remaining"), "");
	print_size(f, "Memory total:", (uint64_t)jint(job, "memory-total"), "");
	print_size(f, "Memory bandwidth:", (uint64_t)jint(job, "memory-bandwidth"), "/s");
	fprintf(f, "%-17s %-12" PRId64 " pages/s\n", "Dirty rate:", jint(job, "dirty-rate"));
	fprintf(f, "%-17s %-12" PRId64 " bytes\n", "Page size:", jint(job, "page-size"));
	fprintf(f, "%-17s %-12" PRId64 "\n", "Iteration:", jint(job, "iteration"));
	fprintf(f, "%-17s %-12" PRId64 "\n", "Postcopy requests:", jint(job, "postcopy-requests"));
	fprintf(f, "%-17s %-12" PRId64 "\n", "Constant pages:", jint(job, "constant-pages"));
	fprintf(f, "%-17s %-12" PRId64 "\n", "Normal pages:", jint(job, "normal-pages"));
	print_size(f, "Normal data:", (uint64_t)jint(job, "normal-data"), "");
	if (completed)
		fprintf(f, "%-17s %-12" PRId64 " ms\n", "Total downtime:", jint(job, "downtime-ms"));
	else
		fprintf(f, "%-17s %-12" PRId64 " ms\n", "Expected downtime:",
			jint(job, "expected-downtime-ms"));
	fprintf(f, "%-17s %-12" PRId64 " ms\n", "Setup time:", jint(job, "setup-time-ms"));
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
