/* Messages of protocol version 2 as C structs, their payload layouts, and whole frames (pure functions). */
#ifndef WIRE_H
#define WIRE_H
#include <stdint.h>
#include "proto.h"

typedef struct {
    uint32_t id;
    uint16_t first;
    uint16_t last;
    int64_t open;
    int64_t close;
    uint16_t epoch;
} msg_fire_t;

typedef struct {
    uint32_t id;
    int32_t x_um;
    int32_t y_um;
    int64_t pick;
    uint16_t epoch;
} msg_pick_t;

typedef struct { /* ACK and NAK */
    uint16_t acked_seq;
    uint32_t id;
    uint8_t code;
} msg_answer_t;

typedef struct {
    uint64_t host_ns;
    uint64_t device_us;
    int64_t count;
    uint32_t boot_id;
    uint16_t epoch;
} msg_pong_t;

typedef struct {
    uint32_t id;
    int64_t opened;
    int64_t closed;
} msg_fired_t;

typedef struct {
    uint8_t version;
    uint8_t flags;
    uint8_t fault;
    uint16_t valves;
    uint16_t queue_len;
    uint16_t queue_cap;
    int64_t count;
    uint32_t executed;
    uint32_t late;
    uint32_t rejected;
    uint32_t bad_frames;
    uint32_t watchdog_trips;
    uint32_t session_id;
    uint32_t boot_id;
    uint16_t epoch;
} msg_status_t;

typedef struct {
    uint8_t code;
    int64_t count;
} msg_fault_t;

typedef struct {
    uint32_t boot_id;
    uint16_t epoch;
    int64_t count;
} msg_epoch_t;

void wire_get_fire(const uint8_t *p, msg_fire_t *m);
void wire_put_fire(uint8_t *p, const msg_fire_t *m);
void wire_get_pick(const uint8_t *p, msg_pick_t *m);
void wire_put_pick(uint8_t *p, const msg_pick_t *m);
void wire_get_answer(const uint8_t *p, msg_answer_t *m);
void wire_put_answer(uint8_t *p, const msg_answer_t *m);
void wire_get_pong(const uint8_t *p, msg_pong_t *m);
void wire_put_pong(uint8_t *p, const msg_pong_t *m);
void wire_get_fired(const uint8_t *p, msg_fired_t *m);
void wire_put_fired(uint8_t *p, const msg_fired_t *m);
void wire_get_status(const uint8_t *p, msg_status_t *m);
void wire_put_status(uint8_t *p, const msg_status_t *m);
void wire_get_fault(const uint8_t *p, msg_fault_t *m);
void wire_put_fault(uint8_t *p, const msg_fault_t *m);
void wire_get_epoch(const uint8_t *p, msg_epoch_t *m);
void wire_put_epoch(uint8_t *p, const msg_epoch_t *m);

/* Payload length of a type, or -1 for a type this version does not define. */
int16_t wire_payload_length(uint8_t type);

/* One frame for the wire, 0x00 delimiter included (room for PROTO_MAX_ENCODED + 1 bytes). Returns its length. */
uint8_t frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, uint8_t len, uint8_t *out);

/* Why bytes between two delimiters are not a frame. */
enum {
    FRAME_OK = 0,
    FRAME_COBS = -1,      /* not valid COBS */
    FRAME_TRUNCATED = -2, /* fewer than 5 body bytes */
    FRAME_BAD_CRC = -3,
};

/* Decode one encoded block (without its delimiter) in place: on FRAME_OK, *type, *seq, *payload and *len
   describe the frame (the payload points into buf). Lengths per type are not checked here. */
int8_t frame_decode(uint8_t *buf, uint8_t n, uint8_t *type, uint16_t *seq, const uint8_t **payload, uint8_t *len);

#endif
