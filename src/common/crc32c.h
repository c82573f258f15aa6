/* CRC32C (Castagnoli, iSCSI/ext4/Xen-stream polynomial 0x1EDC6F41,
 * reflected), the checksum of every ferry stream record. Uses the SSE4.2
 * crc32 instruction when the CPU has it. */
#ifndef FERRY_COMMON_CRC32C_H
#define FERRY_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: crc32c(0, ...) starts one; feeding the data in pieces
 * gives the same result as feeding it at once. crc32c(0, "123456789", 9)
 * is 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

#endif
