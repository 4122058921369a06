#include "wire.h"

#include "cobs.h"
#include "crc16.h"
#include "le.h"

void wire_get_fire(const uint8_t *p, msg_fire_t *m)
{
    m->id = le_u32(p);
    m->first = le_u16(p + 4);
    m->last = le_u16(p + 6);
    m->open = le_i64(p + 8);
    m->close = le_i64(p + 16);
    m->epoch = le_u16(p + 24);
}

void wire_put_fire(uint8_t *p, const msg_fire_t *m)
{
    put_u32(p, m->id);
    put_u16(p + 4, m->first);
    put_u16(p + 6, m->last);
    put_u64(p + 8, (uint64_t)m->open);
    put_u64(p + 16, (uint64_t)m->close);
    put_u16(p + 24, m->epoch);
}

void wire_get_pick(const uint8_t *p, msg_pick_t *m)
{
    m->id = le_u32(p);
    m->x_um = (int32_t)le_u32(p + 4);
    m->y_um = (int32_t)le_u32(p + 8);
    m->pick = le_i64(p + 12);
    m->epoch = le_u16(p + 20);
}

void wire_put_pick(uint8_t *p, const msg_pick_t *m)
{
    put_u32(p, m->id);
    put_u32(p + 4, (uint32_t)m->x_um);
    put_u32(p + 8, (uint32_t)m->y_um);
    put_u64(p + 12, (uint64_t)m->pick);
    put_u16(p + 20, m->epoch);
}

void wire_get_answer(const uint8_t *p, msg_answer_t *m)
{
    m->acked_seq = le_u16(p);
    m->id = le_u32(p + 2);
    m->code = p[6];
}

void wire_put_answer(uint8_t *p, const msg_answer_t *m)
{
    put_u16(p, m->acked_seq);
    put_u32(p + 2, m->id);
    p[6] = m->code;
}

void wire_get_pong(const uint8_t *p, msg_pong_t *m)
{
    m->host_ns = le_u64(p);
    m->device_us = le_u64(p + 8);
    m->count = le_i64(p + 16);
    m->boot_id = le_u32(p + 24);
    m->epoch = le_u16(p + 28);
}

void wire_put_pong(uint8_t *p, const msg_pong_t *m)
{
    put_u64(p, m->host_ns);
    put_u64(p + 8, m->device_us);
    put_u64(p + 16, (uint64_t)m->count);
    put_u32(p + 24, m->boot_id);
    put_u16(p + 28, m->epoch);
}

void wire_get_fired(const uint8_t *p, msg_fired_t *m)
{
    m->id = le_u32(p);
    m->opened = le_i64(p + 4);
    m->closed = le_i64(p + 12);
}

void wire_put_fired(uint8_t *p, const msg_fired_t *m)
{
    put_u32(p, m->id);
    put_u64(p + 4, (uint64_t)m->opened);
    put_u64(p + 12, (uint64_t)m->closed);
}

void wire_get_status(const uint8_t *p, msg_status_t *m)
{
    m->version = p[0];
    m->flags = p[1];
    m->fault = p[2];
    m->valves = le_u16(p + 4);
    m->queue_len = le_u16(p + 6);
    m->queue_cap = le_u16(p + 8);
    m->count = le_i64(p + 10);
    m->executed = le_u32(p + 18);
    m->late = le_u32(p + 22);
    m->rejected = le_u32(p + 26);
    m->bad_frames = le_u32(p + 30);
    m->watchdog_trips = le_u32(p + 34);
    m->session_id = le_u32(p + 38);
    m->boot_id = le_u32(p + 42);
    m->epoch = le_u16(p + 46);
}

void wire_put_status(uint8_t *p, const msg_status_t *m)
{
    p[0] = m->version;
    p[1] = m->flags;
    p[2] = m->fault;
    p[3] = 0;
    put_u16(p + 4, m->valves);
    put_u16(p + 6, m->queue_len);
    put_u16(p + 8, m->queue_cap);
    put_u64(p + 10, (uint64_t)m->count);
    put_u32(p + 18, m->executed);
    put_u32(p + 22, m->late);
    put_u32(p + 26, m->rejected);
    put_u32(p + 30, m->bad_frames);
    put_u32(p + 34, m->watchdog_trips);
    put_u32(p + 38, m->session_id);
    put_u32(p + 42, m->boot_id);
    put_u16(p + 46, m->epoch);
}

void wire_get_fault(const uint8_t *p, msg_fault_t *m)
{
    m->code = p[0];
    m->count = le_i64(p + 1);
}

void wire_put_fault(uint8_t *p, const msg_fault_t *m)
{
    p[0] = m->code;
    put_u64(p + 1, (uint64_t)m->count);
}

void wire_get_epoch(const uint8_t *p, msg_epoch_t *m)
{
    m->boot_id = le_u32(p);
    m->epoch = le_u16(p + 4);
    m->count = le_i64(p + 6);
}

void wire_put_epoch(uint8_t *p, const msg_epoch_t *m)
{
    put_u32(p, m->boot_id);
    put_u16(p + 4, m->epoch);
    put_u64(p + 6, (uint64_t)m->count);
}

int16_t wire_payload_length(uint8_t type)
{
    switch (type) {
    case MSG_FIRE: return LEN_FIRE;
    case MSG_PICK: return LEN_PICK;
    case MSG_CANCEL: return LEN_CANCEL;
    case MSG_HEARTBEAT: return LEN_HEARTBEAT;
    case MSG_ARM: return LEN_ARM;
    case MSG_STATUS_REQUEST: return LEN_STATUS_REQUEST;
    case MSG_PING: return LEN_PING;
    case MSG_DISARM: return LEN_DISARM;
    case MSG_ACK: return LEN_ACK;
    case MSG_PONG: return LEN_PONG;
    case MSG_NAK: return LEN_NAK;
    case MSG_FIRED: return LEN_FIRED;
    case MSG_PICKED: return LEN_PICKED;
    case MSG_STATUS: return LEN_STATUS;
    case MSG_FAULT: return LEN_FAULT;
    case MSG_EPOCH: return LEN_EPOCH;
    default: return -1;
    }
}

uint8_t frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, uint8_t len, uint8_t *out)
{
    uint8_t body[PROTO_MAX_BODY];
    body[0] = type;
    put_u16(body + 1, seq);
    for (uint8_t i = 0; i < len; i++) {
        body[PROTO_HEADER + i] = payload[i];
    }
    uint8_t n = (uint8_t)(PROTO_HEADER + len);
    put_u16(body + n, crc16(body, n));
    n = cobs_encode(body, (uint8_t)(n + PROTO_CRC), out);
    out[n++] = 0;
    return n;
}

int8_t frame_decode(uint8_t *buf, uint8_t n, uint8_t *type, uint16_t *seq, const uint8_t **payload, uint8_t *len)
{
    int16_t body = cobs_decode(buf, n, buf);
    if (body < 0) {
        return FRAME_COBS;
    }
    if (body < (int16_t)PROTO_MIN_BODY) {
        return FRAME_TRUNCATED;
    }
    uint8_t head = (uint8_t)(body - (int16_t)PROTO_CRC);
    if (crc16(buf, head) != le_u16(buf + head)) {
        return FRAME_BAD_CRC;
    }
    *type = buf[0];
    *seq = le_u16(buf + 1);
    *payload = buf + PROTO_HEADER;
    *len = (uint8_t)(head - PROTO_HEADER);
    return FRAME_OK;
}
