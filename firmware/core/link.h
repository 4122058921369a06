/* Serial link layer: bytes in -> checked frames out, messages -> framed bytes (PROTOCOL.md, section 2). */
#ifndef LINK_H
#define LINK_H
#include <stdint.h>

void link_init(void);
/* Feed one received byte. Complete, valid host frames are passed to ctrl_on_frame(). */
void link_rx(uint8_t byte);
/* Send one message (payload of the type's fixed length) with the next sequence number. */
void link_send(uint8_t type, const uint8_t *payload, uint8_t len);
/* Send ACK / NAK for the frame `acked_seq`. */
void link_ack(uint16_t acked_seq, uint32_t command_id, uint8_t result);
void link_nak(uint16_t acked_seq, uint32_t command_id, uint8_t reason);

/* Frames received damaged, of an unknown type or a wrong length (STATUS bad_frames). */
uint32_t link_bad_frames(void);

/* Implemented by the controller: a valid frame of a host-to-controller type with the right payload length. */
void ctrl_on_frame(uint8_t type, uint16_t seq, const uint8_t *payload);

#endif
