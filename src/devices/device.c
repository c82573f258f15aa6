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
