#include "devices/device.h"

#include <errno.h>
#include <string.h>

int device_register(struct device_list *l, const struct device_ops *ops, unsigned instance,
		    void *dev)
{
	for (unsigned i = 0; i < l->n; i++)
		if (!strcmp(l->items[i].ops->name, ops->name) && l->items[i].instance == instance)
			return -EEXIST;
	if (l->n >= DEVICE_MAX)
		return -ENOSPC;
	l->items[l->n++] = (struct device){ .ops = ops, .instance = instance, .dev = dev };
	return 0;
}

int device_register_after_vcpus(struct device_list *l, const struct device_ops *ops,
				unsigned instance, void *dev)
{
	int ret = device_register(l, ops, instance, dev);

	if (ret == 0)
		l->items[l->n - 1].after_vcpus = true;
	return ret;
}

void device_list_pause(struct device_list *l)
{
	for (unsigned i = 0; i < l->n; i++)
		if (l->items[i].ops->pause)
			l->items[i].ops->pause(l->items[i].dev);
}

int device_list_resume(struct device_list *l)
{
	int ret = 0;

	for (unsigned i = 0; i < l->n; i++) {
		int r = l->items[i].ops->resume ? l->items[i].ops->resume(l->items[i].dev) : 0;

		ret = ret ?: r;
	}
	return ret;
}

int device_list_flush(struct device_list *l)
{
	int ret = 0;

	for (unsigned i = 0; i < l->n; i++) {
		int r = l->items[i].ops->flush ? l->items[i].ops->flush(l->items[i].dev) : 0;

		ret = ret ?: r;
	}
	return ret;
}
