/* Constants of the virtio 1.2 specification that ferry's devices share. */
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
#define VIRTIO_PCI_CAP_COMMON_CFG  1
#define VIRTIO_PCI_CAP_NOTIFY_CFG  2
#define VIRTIO_PCI_CAP_ISR_CFG     3
#define VIRTIO_PCI_CAP_DEVICE_CFG  4
#define VIRTIO_PCI_CAP_PCI_CFG     5

/* ISR status bits. */
#define VIRTIO_ISR_QUEUE           0x1
#define VIRTIO_ISR_CONFIG          0x2

#define VIRTIO_BIT(b)              (1ull << (b))

#endif
