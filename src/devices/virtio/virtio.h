/* Constants of the virtio 1.2 specification: ferry's devices, their unit
 * tests (tests/unit/test_virtio.c) and the test guest's drivers (guest/)
 * read them from here. The guest is freestanding: this header stays pure
 * #defines and includes nothing. */
#ifndef FERRY_DEVICES_VIRTIO_VIRTIO_H
#define FERRY_DEVICES_VIRTIO_VIRTIO_H

/* Device status (§2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE  0x01
#define VIRTIO_STATUS_DRIVER       0x02
#define VIRTIO_STATUS_DRIVER_OK    0x04
#define VIRTIO_STATUS_FEATURES_OK  0x08
#define VIRTIO_STATUS_NEEDS_RESET  0x40
#define VIRTIO_STATUS_FAILED       0x80

/* Reserved feature bits (§6). */
#define VIRTIO_F_INDIRECT_DESC     28
#define VIRTIO_F_RING_EVENT_IDX    29
#define VIRTIO_F_VERSION_1         32

/* Device IDs (§5). */
#define VIRTIO_ID_NET              1
#define VIRTIO_ID_BLOCK            2

/* PCI (§4.1). */
#define VIRTIO_PCI_VENDOR          0x1af4
#define VIRTIO_PCI_DEVICE_BASE     0x1040 /* + device ID: modern only */
#define VIRTIO_PCI_DEVICE_LAST     0x107f
#define VIRTIO_PCI_TRANS_FIRST     0x1000 /* transitional (§4.1.2): device */
#define VIRTIO_PCI_TRANS_LAST      0x103f /* ID in the subsystem ID */
#define VIRTIO_PCI_REV_MIN         1      /* modern: revision ID 1 or more, */
#define VIRTIO_PCI_SUBSYS_MIN      0x40   /* subsystem ID 0x40 or more (§4.1.2.1) */
#define VIRTIO_PCI_CAP_COMMON_CFG  1
#define VIRTIO_PCI_CAP_NOTIFY_CFG  2
#define VIRTIO_PCI_CAP_ISR_CFG     3
#define VIRTIO_PCI_CAP_DEVICE_CFG  4
#define VIRTIO_PCI_CAP_PCI_CFG     5

/* struct virtio_pci_cap (§4.1.4), virtio_pci_notify_cap (§4.1.4.4) and
 * virtio_pci_cfg_cap (§4.1.4.9): byte offsets in the capability, and the
 * capabilities' sizes. */
#define VIRTIO_CAP_CAPLEN          2
#define VIRTIO_CAP_CFGTYPE         3
#define VIRTIO_CAP_BAR             4
#define VIRTIO_CAP_OFFSET          8
#define VIRTIO_CAP_LENGTH          12
#define VIRTIO_CAP_SIZE            16
#define VIRTIO_CAP_NOTIFY_MULT     16
#define VIRTIO_CAP_NOTIFY_SIZE     20
#define VIRTIO_CAP_PCI_CFG_DATA    16     /* pci_cfg_data[4] */
#define VIRTIO_CAP_PCI_CFG_SIZE    20

/* An MSI-X vector register not mapped to any vector (§4.1.5.1.2). */
#define VIRTIO_MSI_NO_VECTOR       0xffff

/* ISR status bits. */
#define VIRTIO_ISR_QUEUE           0x1
#define VIRTIO_ISR_CONFIG          0x2

/* Common configuration layout (§4.1.4.3): byte offsets. */
#define VIRTIO_CC_DFSEL            0x00
#define VIRTIO_CC_DF               0x04
#define VIRTIO_CC_GFSEL            0x08
#define VIRTIO_CC_GF               0x0c
#define VIRTIO_CC_MSIX             0x10
#define VIRTIO_CC_NUMQ             0x12
#define VIRTIO_CC_STATUS           0x14
#define VIRTIO_CC_CFGGEN           0x15
#define VIRTIO_CC_QSEL             0x16
#define VIRTIO_CC_QSIZE            0x18
#define VIRTIO_CC_QMSIX            0x1a
#define VIRTIO_CC_QENABLE          0x1c
#define VIRTIO_CC_QNOFF            0x1e
#define VIRTIO_CC_QDESC            0x20
#define VIRTIO_CC_QDRIVER          0x28
#define VIRTIO_CC_QDEVICE          0x30

/* Split virtqueues (§2.7). */
#define VIRTQ_DESC_F_NEXT          1
#define VIRTQ_DESC_F_WRITE         2
#define VIRTQ_DESC_F_INDIRECT      4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

/* Split virtqueue layout (§2.7.5, §2.7.6, §2.7.8): byte offsets and sizes,
 * and each part's alignment (§2.7). The available ring's entries are le16;
 * it ends with used_event, the used ring with avail_event (le16 each). */
#define VIRTQ_DESC_SIZE            16     /* struct virtq_desc */
#define VIRTQ_DESC_ADDR            0
#define VIRTQ_DESC_LEN             8
#define VIRTQ_DESC_FLAGS           12
#define VIRTQ_DESC_NEXT            14
#define VIRTQ_AVAIL_FLAGS          0      /* struct virtq_avail */
#define VIRTQ_AVAIL_IDX            2
#define VIRTQ_AVAIL_RING           4
#define VIRTQ_USED_IDX             2      /* struct virtq_used */
#define VIRTQ_USED_RING            4
#define VIRTQ_USED_ELEM_SIZE       8      /* struct virtq_used_elem */
#define VIRTQ_USED_ELEM_ID         0
#define VIRTQ_USED_ELEM_LEN        4
#define VIRTQ_DESC_ALIGN           16
#define VIRTQ_AVAIL_ALIGN          2
#define VIRTQ_USED_ALIGN           4

/* virtio-blk (§5.2): feature bits, request types, status. */
#define VIRTIO_BLK_F_SEG_MAX       2
#define VIRTIO_BLK_F_RO            5
#define VIRTIO_BLK_F_BLK_SIZE      6
#define VIRTIO_BLK_F_FLUSH         9
#define VIRTIO_BLK_F_DISCARD       13
#define VIRTIO_BLK_F_WRITE_ZEROES  14
#define VIRTIO_BLK_T_IN            0
#define VIRTIO_BLK_T_OUT           1
#define VIRTIO_BLK_T_FLUSH         4
#define VIRTIO_BLK_T_GET_ID        8
#define VIRTIO_BLK_T_DISCARD       11
#define VIRTIO_BLK_T_WRITE_ZEROES  13
#define VIRTIO_BLK_S_OK            0
#define VIRTIO_BLK_S_IOERR         1
#define VIRTIO_BLK_S_UNSUPP        2
#define VIRTIO_BLK_ID_BYTES        20     /* GET_ID's answer (§5.2.6) */
#define VIRTIO_BLK_SECTOR_SIZE     512    /* capacity, sector: 512-byte units */

/* struct virtio_blk_config (§5.2.4): byte offsets. */
#define VIRTIO_BLK_CFG_CAPACITY    0
#define VIRTIO_BLK_CFG_SEG_MAX     12
#define VIRTIO_BLK_CFG_BLK_SIZE    20
#define VIRTIO_BLK_CFG_NUM_QUEUES  34
#define VIRTIO_BLK_CFG_DISCARD_MAX 36     /* max_discard_sectors */
#define VIRTIO_BLK_CFG_DISCARD_SEG 40     /* max_discard_seg */
#define VIRTIO_BLK_CFG_DISCARD_ALN 44     /* discard_sector_alignment */
#define VIRTIO_BLK_CFG_WZ_MAX      48     /* max_write_zeroes_sectors */
#define VIRTIO_BLK_CFG_WZ_SEG      52     /* max_write_zeroes_seg */
#define VIRTIO_BLK_CFG_WZ_UNMAP    56     /* write_zeroes_may_unmap */

/* A request's header, struct virtio_blk_req up to data (§5.2.6), and a
 * discard or write-zeroes segment, struct virtio_blk_discard_write_zeroes:
 * byte offsets, sizes, flags. */
#define VIRTIO_BLK_REQ_TYPE        0
#define VIRTIO_BLK_REQ_SECTOR      8
#define VIRTIO_BLK_REQ_HDR_SIZE    16
#define VIRTIO_BLK_DWZ_SECTOR      0
#define VIRTIO_BLK_DWZ_NUM_SECTORS 8
#define VIRTIO_BLK_DWZ_FLAGS       12
#define VIRTIO_BLK_DWZ_SIZE        16
#define VIRTIO_BLK_DWZ_F_UNMAP     0x1    /* flags: write zeroes may unmap */

/* virtio-net (§5.1): feature bits, status, queues, header. */
#define VIRTIO_NET_F_CSUM          0
#define VIRTIO_NET_F_GUEST_CSUM    1
#define VIRTIO_NET_F_MAC           5
#define VIRTIO_NET_F_GUEST_TSO4    7
#define VIRTIO_NET_F_GUEST_TSO6    8
#define VIRTIO_NET_F_GUEST_ECN     9
#define VIRTIO_NET_F_HOST_TSO4     11
#define VIRTIO_NET_F_HOST_TSO6     12
#define VIRTIO_NET_F_HOST_ECN      13
#define VIRTIO_NET_F_STATUS        16
#define VIRTIO_NET_S_LINK_UP       1
#define VIRTIO_NET_RXQ             0      /* receiveq1 (§5.1.2) */
#define VIRTIO_NET_TXQ             1      /* transmitq1 */
#define VIRTIO_NET_HDR_LEN         12     /* struct virtio_net_hdr_v1 (§5.1.6) */
#define VIRTIO_NET_HDR_NUM_BUFFERS 10     /* its num_buffers (le16) */

/* struct virtio_net_config (§5.1.4): byte offsets. */
#define VIRTIO_NET_CFG_MAC         0
#define VIRTIO_NET_CFG_STATUS      6
#define VIRTIO_NET_CFG_MAX_PAIRS   8      /* max_virtqueue_pairs */

#define VIRTIO_BIT(b)              (1ull << (b))

#endif
