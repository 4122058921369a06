#include "link.h"

#include "hw.h"
#include "proto.h"
#include "wire.h"

static uint8_t rx_buf[PROTO_MAX_ENCODED];
static uint8_t rx_len;
static uint8_t rx_oversize;
static uint16_t tx_seq;
static uint32_t bad_frames;
static uint64_t last_error_us;
static uint8_t had_error;

void link_init(void)
{
    rx_len = 0;
    rx_oversize = 0;
    tx_seq = 0;
    bad_frames = 0;
    had_error = 0;
    last_error_us = 0;
}

uint32_t link_bad_frames(void) { return bad_frames; }

void link_send(uint8_t type, const uint8_t *payload, uint8_t len)
{
    uint8_t wire[PROTO_MAX_ENCODED + 1u];
    hw_tx(wire, frame_encode(type, tx_seq, payload, len, wire));
    tx_seq = tx_seq >= 0xFFFEu ? 0u : (uint16_t)(tx_seq + 1u); /* 0, 1, ... 65534, 0: 0xFFFF is reserved */
}

static void answer(uint8_t type, uint16_t acked_seq, uint32_t command_id, uint8_t code)
{
    uint8_t p[LEN_ACK];
    msg_answer_t m = {acked_seq, command_id, code};
    wire_put_answer(p, &m);
    link_send(type, p, sizeof p);
}

void link_ack(uint16_t acked_seq, uint32_t command_id, uint8_t result) { answer(MSG_ACK, acked_seq, command_id, result); }
void link_nak(uint16_t acked_seq, uint32_t command_id, uint8_t reason) { answer(MSG_NAK, acked_seq, command_id, reason); }

/* A damaged frame (its sequence number cannot be trusted): counted, NAKed once per burst. */
static void damaged(uint8_t reason)
{
    uint64_t now = hw_time_us();
    uint8_t new_burst = !had_error || now - last_error_us > BURST_QUIET_US;
    bad_frames++;
    had_error = 1;
    last_error_us = now;
    if (new_burst) {
        link_nak(PROTO_SEQ_NONE, 0, reason);
    }
}

static void end_of_frame(void)
{
    if (rx_oversize) { /* more than PROTO_MAX_ENCODED bytes without a delimiter */
        rx_oversize = 0;
        rx_len = 0;
        damaged(NAK_MALFORMED);
        return;
    }
    if (rx_len == 0) {
        return; /* empty frame: a resynchronising 0x00 */
    }
    uint8_t type = 0;
    uint16_t seq = 0;
    const uint8_t *payload = rx_buf;
    uint8_t len = 0;
    int8_t r = frame_decode(rx_buf, rx_len, &type, &seq, &payload, &len);
    rx_len = 0;
    if (r != FRAME_OK) {
        damaged(r == FRAME_BAD_CRC ? NAK_BAD_CRC : NAK_MALFORMED);
        return;
    }
    int16_t want = wire_payload_length(type);
    if (want < 0 || type >= 0x80u) { /* unknown, or a controller-to-host type sent to the controller */
        bad_frames++;
        link_nak(seq, 0, NAK_UNKNOWN_TYPE);
        return;
    }
    if (len != (uint8_t)want) {
        bad_frames++;
        link_nak(seq, 0, NAK_MALFORMED);
        return;
    }
    ctrl_on_frame(type, seq, payload);
}

void link_rx(uint8_t byte)
{
    if (byte == 0) {
        end_of_frame();
        return;
    }
    if (rx_oversize) {
        return; /* discarding up to the next delimiter */
    }
    if (rx_len >= PROTO_MAX_ENCODED) {
        rx_oversize = 1;
        return;
    }
    rx_buf[rx_len++] = byte;
}
