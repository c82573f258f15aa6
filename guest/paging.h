/* The identity map (boot.S maps the first 4 GiB statically). */
#ifndef FERRY_GUEST_PAGING_H
#define FERRY_GUEST_PAGING_H

/* Extend the identity map over RAM above 4 GiB (1 GiB pages if CPUID says
 * pdpe1gb, else 2 MiB pages, up to 64 GiB) and set boot.mapped_top.
 * Boot CPU, after the memory map was copied, before the APs start. */
void paging_init(void);

#endif
