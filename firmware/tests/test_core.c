/* Host unit tests of the portable core: golden frames of PROTOCOL.md section 2.3, link error handling, and the
   controller's behaviour (section 4) on the datasheet model of the compare unit in hw_host.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cobs.h"
#include "crc16.h"
#include "hw.h"
#include "ctrl.h"
#include "hw_host.h"
#include "link.h"
#include "proto.h"
#include "sched.h"
#include "wire.h"

static int failures;
static int checks;
#define CHECK(c)                                                                      \
    do {                                                                              \
        checks++;                                                                     \
        if (!(c)) {                                                                   \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, #c); \
        }                                                                             \
    } while (0)
#define CHECK_EQ(a, b)                                                                \
    do {                                                                              \
        checks++;                                                                     \
        long long va_ = (long long)(a), vb_ = (long long)(b);                         \
        if (va_ != vb_) {                                                             \
            failures++;                                                               \
            fprintf(stderr, "%s:%d: %s: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, __func__, #a, va_, #b, vb_); \
        }                                                                             \
    } while (0)

/* ------------------------------------------------------------------ helpers */

static uint8_t hexbytes(const char *hex, uint8_t *out)
{
    uint8_t n = 0;
    while (*hex) {
        if (*hex == ' ') {
            hex++;
            continue;
        }
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (uint8_t)v;
        hex += 2;
    }
    return n;
}

typedef struct {
    uint8_t type;
    uint16_t seq;
    uint8_t len;
    uint8_t p[PROTO_MAX_PAYLOAD];
} frame_t;

static uint32_t tx_read;

/* Next frame the controller sent, or 0. */
static int next_frame(frame_t *f)
{
    uint8_t block[256];
    uint8_t n = 0;
    if (tx_read == host_tx_len) { /* everything read: reuse the capture buffer */
        tx_read = host_tx_len = 0;
    }
    while (tx_read < host_tx_len) {
        uint8_t b = host_tx[tx_read++];
        if (b != 0) {
            block[n++] = b;
            continue;
        }
        const uint8_t *payload;
        if (frame_decode(block, n, &f->type, &f->seq, &payload, &f->len) != FRAME_OK) {
            fprintf(stderr, "controller sent an undecodable frame\n");
            failures++;
            return 0;
        }
        memcpy(f->p, payload, f->len);
        CHECK_EQ(f->len, wire_payload_length(f->type));
        if (tx_read == host_tx_len) { /* everything read: reuse the capture buffer */
            tx_read = host_tx_len = 0;
        }
        return 1;
    }
    return 0;
}

static void drain(void) { tx_read = host_tx_len = 0; }

static void send_raw(const uint8_t *bytes, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        link_rx(bytes[i]);
    }
}

static uint16_t host_seq;

static uint16_t send(uint8_t type, const uint8_t *payload, uint8_t len)
{
    uint8_t wire[PROTO_MAX_ENCODED + 1];
    uint16_t seq = host_seq++;
    send_raw(wire, frame_encode(type, seq, payload, len, wire));
    return seq;
}

static uint16_t send_fire(uint32_t id, uint16_t first, uint16_t last, int64_t open, int64_t close, uint16_t epoch)
{
    uint8_t p[LEN_FIRE];
    msg_fire_t m = {id, first, last, open, close, epoch};
    wire_put_fire(p, &m);
    return send(MSG_FIRE, p, sizeof p);
}

static uint16_t send_u32(uint8_t type, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return send(type, p, 4);
}

/* Expect an ACK or NAK answering `seq`. */
static void expect_answer(uint8_t type, uint16_t seq, uint32_t id, uint8_t code, int line)
{
    frame_t f;
    if (!next_frame(&f)) {
        fprintf(stderr, "line %d: no answer\n", line);
        failures++;
        return;
    }
    msg_answer_t a;
    wire_get_answer(f.p, &a);
    if (f.type != type || a.acked_seq != seq || a.id != id || a.code != code) {
        fprintf(stderr, "line %d: got type 0x%02x seq %u id %u code %u, expected 0x%02x seq %u id %u code %u\n", line,
                f.type, a.acked_seq, a.id, a.code, type, seq, id, code);
        failures++;
    }
    checks++;
}
#define EXPECT_ACK(seq, id, code) expect_answer(MSG_ACK, seq, id, code, __LINE__)
#define EXPECT_NAK(seq, id, code) expect_answer(MSG_NAK, seq, id, code, __LINE__)

static void expect_fired(uint32_t id, int64_t opened, int64_t closed, int line)
{
    frame_t f;
    if (!next_frame(&f) || f.type != MSG_FIRED) {
        fprintf(stderr, "line %d: no FIRED\n", line);
        failures++;
        return;
    }
    msg_fired_t m;
    wire_get_fired(f.p, &m);
    if (m.id != id || m.opened != opened || m.closed != closed) {
        fprintf(stderr, "line %d: FIRED(%u, %" PRId64 ", %" PRId64 "), expected (%u, %" PRId64 ", %" PRId64 ")\n", line,
                m.id, m.opened, m.closed, id, opened, closed);
        failures++;
    }
    checks++;
}
#define EXPECT_FIRED(id, o, c) expect_fired(id, o, c, __LINE__)

static void expect_nothing(int line)
{
    frame_t f;
    if (next_frame(&f)) {
        fprintf(stderr, "line %d: unexpected frame type 0x%02x\n", line, f.type);
        failures++;
    }
    checks++;
}
#define EXPECT_NOTHING() expect_nothing(__LINE__)

static msg_status_t status(void)
{
    frame_t f;
    msg_status_t s;
    drain();
    send(MSG_STATUS_REQUEST, 0, 0);
    memset(&s, 0, sizeof s);
    if (next_frame(&f) && f.type == MSG_STATUS) {
        wire_get_status(f.p, &s);
    } else {
        fprintf(stderr, "no STATUS\n");
        failures++;
    }
    return s;
}

static void setup(void)
{
    host_reset();
    host_seq = 0;
    tx_read = 0;
    ctrl_init(0xCAFEF00Du, 1);
}

static void arm(uint32_t session)
{
    uint16_t seq = send_u32(MSG_ARM, session);
    EXPECT_ACK(seq, 0, ACK_OK);
}

static int valve_on(uint8_t v) { return (host_out[v >> 3] >> (v & 7)) & 1; }

/* The belt runs at `cps` counts/s for `us` microseconds; the main loop runs every 10 us; heartbeats every 20 ms
   when `feed`. */
static void run_belt(uint64_t us, uint32_t cps, int feed)
{
    static uint64_t acc; /* counts x 1e6 carried between calls */
    for (uint64_t t = 0; t < us; t += 10) {
        host_advance_us(10);
        acc += (uint64_t)cps * 10u;
        if (acc >= 1000000u) {
            host_edges((uint32_t)(acc / 1000000u));
            acc %= 1000000u;
        }
        if (feed && hw_time_us() % 20000u == 0) {
            send_u32(MSG_HEARTBEAT, (uint32_t)hw_time_us());
        }
        ctrl_poll();
    }
}

/* ------------------------------------------------------------------ codec */

static void test_crc(void)
{
    CHECK_EQ(crc16((const uint8_t *)"123456789", 9), 0x29B1);
    CHECK_EQ(crc16((const uint8_t *)"", 0), 0xFFFF);
}

static void test_cobs(void)
{
    static const struct {
        const char *raw, *enc;
    } v[] = {
        {"", "01"}, {"00", "01 01"}, {"00 00", "01 01 01"}, {"11 22 00 33", "03 11 22 02 33"},
        {"11 22 33 44", "05 11 22 33 44"}, {"11 00 00 00", "02 11 01 01 01"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t raw[16], enc[16], out[17], back[17];
        uint8_t nr = hexbytes(v[i].raw, raw), ne = hexbytes(v[i].enc, enc);
        uint8_t n = cobs_encode(raw, nr, out);
        CHECK_EQ(n, ne);
        CHECK(memcmp(out, enc, ne) == 0);
        CHECK_EQ(cobs_decode(enc, ne, back), nr);
        CHECK(memcmp(back, raw, nr) == 0);
    }
    /* 254 non-zero bytes: one full block, canonical (no trailing code byte) */
    uint8_t raw[254], out[256], back[256];
    for (int i = 0; i < 254; i++) {
        raw[i] = (uint8_t)(i % 255 + 1);
    }
    CHECK_EQ(cobs_encode(raw, 254, out), 255);
    CHECK_EQ(out[0], 0xFF);
    CHECK_EQ(cobs_decode(out, 255, back), 254);
    CHECK(memcmp(back, raw, 254) == 0);
    /* invalid blocks */
    uint8_t bad1[] = {0x00}, bad2[] = {0x05, 0x11}, bad3[] = {0x03, 0x11, 0x00};
    CHECK_EQ(cobs_decode(bad1, 1, back), -1);
    CHECK_EQ(cobs_decode(bad2, 2, back), -1);
    CHECK_EQ(cobs_decode(bad3, 3, back), -1);
}

/* PROTOCOL.md section 2.3, byte for byte. */
static const char *G_FIRE = "03 10 03 02 07 01 01 02 0c 02 0f 04 a0 86 01 01 01 01 01 04 62 88 01 01 01 01 01 02 01 03 c1 9f 00";
static const char *G_PICK = "03 11 04 02 08 01 01 04 90 d0 03 08 24 fa ff ff 40 0d 03 01 01 01 01 02 01 03 70 57 00";
static const char *G_HEARTBEAT = "03 13 01 02 01 01 01 03 23 2d 00";
static const char *G_ARM = "03 14 01 07 78 56 34 12 29 92 00";
static const char *G_ACK = "03 80 09 02 03 02 07 01 01 01 03 87 78 00";
static const char *G_NAK_LATE = "03 82 0a 02 03 02 07 01 01 04 01 68 9b 00";
static const char *G_FIRED = "03 83 0b 02 07 01 01 04 a0 86 01 01 01 01 01 04 62 88 01 01 01 01 01 03 9f 52 00";
static const char *G_NAK_EPOCH = "03 82 0c 02 03 02 07 01 01 04 09 e8 40 00";
static const char *G_PONG = "03 81 0d 05 15 cd 5b 07 01 01 01 01 03 09 3d 01 01 01 01 04 1b 87 01 01 01 01 01 06 0d f0 fe ca 01 03 04 61 00";
static const char *G_EPOCH = "03 87 0e 06 0d f0 fe ca 02 01 01 01 01 01 01 01 01 03 38 02 00";
static const char *G_STATUS = "03 85 0f 03 02 09 01 02 40 02 02 01 05 01 1b 87 01 01 01 01 01 02 0a 01 01 02 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 0a 78 56 34 12 0d f0 fe ca 01 03 b8 bc 00";

static void check_encoded(const char *golden, uint8_t type, uint16_t seq, const uint8_t *payload, uint8_t len, int line)
{
    uint8_t want[80], got[80];
    uint8_t nw = hexbytes(golden, want);
    uint8_t ng = frame_encode(type, seq, payload, len, got);
    checks++;
    if (ng != nw || memcmp(got, want, nw) != 0) {
        failures++;
        fprintf(stderr, "line %d: frame of type 0x%02x differs from the golden bytes\n", line, type);
    }
}

static const uint8_t *decode_golden(const char *golden, uint8_t type, uint16_t seq, uint8_t len, uint8_t *buf)
{
    uint8_t n = hexbytes(golden, buf);
    uint8_t t, l;
    uint16_t s;
    const uint8_t *p = 0;
    CHECK_EQ(buf[n - 1], 0);
    CHECK_EQ(frame_decode(buf, (uint8_t)(n - 1), &t, &s, &p, &l), FRAME_OK);
    CHECK_EQ(t, type);
    CHECK_EQ(s, seq);
    CHECK_EQ(l, len);
    return p;
}

static void test_golden_encode(void)
{
    uint8_t p[64];
    msg_fire_t fire = {7, 12, 15, 100000, 100450, 1};
    wire_put_fire(p, &fire);
    check_encoded(G_FIRE, MSG_FIRE, 3, p, LEN_FIRE, __LINE__);
    msg_pick_t pick = {8, 250000, -1500, 200000, 1};
    wire_put_pick(p, &pick);
    check_encoded(G_PICK, MSG_PICK, 4, p, LEN_PICK, __LINE__);
    uint8_t hb[4] = {1, 0, 0, 0};
    check_encoded(G_HEARTBEAT, MSG_HEARTBEAT, 1, hb, 4, __LINE__);
    uint8_t arm_p[4] = {0x78, 0x56, 0x34, 0x12};
    check_encoded(G_ARM, MSG_ARM, 1, arm_p, 4, __LINE__);
    msg_answer_t a = {3, 7, ACK_QUEUED};
    wire_put_answer(p, &a);
    check_encoded(G_ACK, MSG_ACK, 9, p, LEN_ACK, __LINE__);
    a.code = NAK_LATE;
    wire_put_answer(p, &a);
    check_encoded(G_NAK_LATE, MSG_NAK, 10, p, LEN_NAK, __LINE__);
    msg_fired_t fired = {7, 100000, 100450};
    wire_put_fired(p, &fired);
    check_encoded(G_FIRED, MSG_FIRED, 11, p, LEN_FIRED, __LINE__);
    a.code = NAK_WRONG_EPOCH;
    wire_put_answer(p, &a);
    check_encoded(G_NAK_EPOCH, MSG_NAK, 12, p, LEN_NAK, __LINE__);
    msg_pong_t pong = {123456789u, 4000000u, 100123, 0xCAFEF00Du, 1};
    wire_put_pong(p, &pong);
    check_encoded(G_PONG, MSG_PONG, 13, p, LEN_PONG, __LINE__);
    msg_epoch_t ep = {0xCAFEF00Du, 2, 0};
    wire_put_epoch(p, &ep);
    check_encoded(G_EPOCH, MSG_EPOCH, 14, p, LEN_EPOCH, __LINE__);
    msg_status_t st = {2, FLAG_ARMED | FLAG_ENCODER_OK, 0, 64, 2, 256, 100123, 10, 1, 0, 0, 0, 0x12345678u, 0xCAFEF00Du, 1};
    wire_put_status(p, &st);
    check_encoded(G_STATUS, MSG_STATUS, 15, p, LEN_STATUS, __LINE__);
}

static void test_golden_decode(void)
{
    uint8_t buf[80];
    msg_fire_t fire;
    wire_get_fire(decode_golden(G_FIRE, MSG_FIRE, 3, LEN_FIRE, buf), &fire);
    CHECK_EQ(fire.id, 7);
    CHECK_EQ(fire.first, 12);
    CHECK_EQ(fire.last, 15);
    CHECK_EQ(fire.open, 100000);
    CHECK_EQ(fire.close, 100450);
    CHECK_EQ(fire.epoch, 1);
    msg_pick_t pick;
    wire_get_pick(decode_golden(G_PICK, MSG_PICK, 4, LEN_PICK, buf), &pick);
    CHECK_EQ(pick.id, 8);
    CHECK_EQ(pick.x_um, 250000);
    CHECK_EQ(pick.y_um, -1500);
    CHECK_EQ(pick.pick, 200000);
    CHECK_EQ(pick.epoch, 1);
    CHECK_EQ(decode_golden(G_HEARTBEAT, MSG_HEARTBEAT, 1, 4, buf)[0], 1);
    const uint8_t *q = decode_golden(G_ARM, MSG_ARM, 1, 4, buf);
    CHECK_EQ((uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24, 0x12345678u);
    msg_answer_t a;
    wire_get_answer(decode_golden(G_ACK, MSG_ACK, 9, LEN_ACK, buf), &a);
    CHECK(a.acked_seq == 3 && a.id == 7 && a.code == ACK_QUEUED);
    wire_get_answer(decode_golden(G_NAK_LATE, MSG_NAK, 10, LEN_NAK, buf), &a);
    CHECK(a.acked_seq == 3 && a.id == 7 && a.code == NAK_LATE);
    wire_get_answer(decode_golden(G_NAK_EPOCH, MSG_NAK, 12, LEN_NAK, buf), &a);
    CHECK(a.acked_seq == 3 && a.id == 7 && a.code == NAK_WRONG_EPOCH);
    msg_fired_t fired;
    wire_get_fired(decode_golden(G_FIRED, MSG_FIRED, 11, LEN_FIRED, buf), &fired);
    CHECK(fired.id == 7 && fired.opened == 100000 && fired.closed == 100450);
    msg_pong_t pong;
    wire_get_pong(decode_golden(G_PONG, MSG_PONG, 13, LEN_PONG, buf), &pong);
    CHECK(pong.host_ns == 123456789u && pong.device_us == 4000000u && pong.count == 100123);
    CHECK(pong.boot_id == 0xCAFEF00Du && pong.epoch == 1);
    msg_epoch_t ep;
    wire_get_epoch(decode_golden(G_EPOCH, MSG_EPOCH, 14, LEN_EPOCH, buf), &ep);
    CHECK(ep.boot_id == 0xCAFEF00Du && ep.epoch == 2 && ep.count == 0);
    msg_status_t st;
    wire_get_status(decode_golden(G_STATUS, MSG_STATUS, 15, LEN_STATUS, buf), &st);
    CHECK(st.version == 2 && st.flags == 9 && st.fault == 0 && st.valves == 64 && st.queue_len == 2);
    CHECK(st.queue_cap == 256 && st.count == 100123 && st.executed == 10 && st.late == 1 && st.rejected == 0);
    CHECK(st.bad_frames == 0 && st.watchdog_trips == 0 && st.session_id == 0x12345678u);
    CHECK(st.boot_id == 0xCAFEF00Du && st.epoch == 1);
}

/* The controller answers the golden host frames as the page says. */
static void test_golden_frames_through_the_controller(void)
{
    uint8_t buf[80];
    setup();
    send_raw(buf, hexbytes(G_FIRE, buf)); /* not armed yet */
    EXPECT_NAK(3, 7, NAK_NOT_ARMED);
    send_raw(buf, hexbytes(G_ARM, buf));
    EXPECT_ACK(1, 0, ACK_OK);
    send_raw(buf, hexbytes(G_HEARTBEAT, buf));
    EXPECT_NOTHING();
    send_raw(buf, hexbytes(G_FIRE, buf)); /* epoch 1, valves 12..15 of 32, 100000 counts ahead */
    EXPECT_ACK(3, 7, ACK_QUEUED);
    send_raw(buf, hexbytes(G_FIRE, buf));
    EXPECT_ACK(3, 7, ACK_DUPLICATE);
    send_raw(buf, hexbytes(G_PICK, buf)); /* a valve controller has no gripper */
    EXPECT_NAK(4, 8, NAK_BAD_FIELD);
    /* controller-to-host frames sent to the controller */
    send_raw(buf, hexbytes(G_ACK, buf));
    EXPECT_NAK(9, 0, NAK_UNKNOWN_TYPE);
    send_raw(buf, hexbytes(G_STATUS, buf));
    EXPECT_NAK(15, 0, NAK_UNKNOWN_TYPE);
    host_edges(100000);
    ctrl_poll();
    CHECK(valve_on(12) && valve_on(15) && !valve_on(11) && !valve_on(16));
    host_edges(450);
    ctrl_poll();
    EXPECT_FIRED(7, 100000, 100450);
    CHECK(!valve_on(12));
    send_raw(buf, hexbytes(G_FIRE, buf)); /* the retransmission of an executed command */
    EXPECT_ACK(3, 7, ACK_DONE);
    EXPECT_FIRED(7, 100000, 100450);
    msg_status_t s = status();
    CHECK_EQ(s.version, 2);
    CHECK_EQ(s.executed, 1);
    CHECK_EQ(s.rejected, 2); /* NOT_ARMED and BAD_FIELD */
    CHECK_EQ(s.bad_frames, 2);
    CHECK_EQ(s.boot_id, 0xCAFEF00Du);
    CHECK_EQ(s.epoch, 1);
    CHECK_EQ(s.count, 100450);
}

/* A version-1 FIRE (24-byte payload, no epoch) is MALFORMED, never executed. */
static void test_version1_fire_is_malformed(void)
{
    setup();
    arm(1);
    uint8_t p[LEN_FIRE];
    msg_fire_t m = {7, 12, 15, 100000, 100450, 1};
    wire_put_fire(p, &m);
    uint16_t seq = send(MSG_FIRE, p, 24);
    EXPECT_NAK(seq, 0, NAK_MALFORMED);
    CHECK_EQ(status().queue_len, 0);
    /* a version-1 PICK (20 bytes) too */
    seq = send(MSG_PICK, p, 20);
    EXPECT_NAK(seq, 0, NAK_MALFORMED);
}

static void test_link_errors(void)
{
    setup();
    uint8_t wire[80];
    uint8_t n = frame_encode(MSG_STATUS_REQUEST, 5, 0, 0, wire);
    wire[1] ^= 0x40; /* damage the type byte: CRC mismatch */
    send_raw(wire, n);
    EXPECT_NAK(PROTO_SEQ_NONE, 0, NAK_BAD_CRC);
    send_raw(wire, n); /* same burst: counted, not answered */
    EXPECT_NOTHING();
    host_advance_us(150000);
    uint8_t bad_cobs[] = {0x05, 0x11, 0x00};
    send_raw(bad_cobs, sizeof bad_cobs);
    EXPECT_NOTHING(); /* still the same burst: 150 ms < 200 ms since the last error */
    host_advance_us(200001);
    send_raw(bad_cobs, sizeof bad_cobs);
    EXPECT_NAK(PROTO_SEQ_NONE, 0, NAK_MALFORMED); /* a new burst */
    host_advance_us(300000);
    uint8_t truncated[] = {0x03, 0x15, 0x01, 0x00}; /* 3 body bytes */
    send_raw(truncated, sizeof truncated);
    EXPECT_NAK(PROTO_SEQ_NONE, 0, NAK_MALFORMED);
    host_advance_us(300000);
    uint8_t big[120];
    memset(big, 0x55, sizeof big);
    send_raw(big, sizeof big);
    link_rx(0);
    EXPECT_NAK(PROTO_SEQ_NONE, 0, NAK_MALFORMED); /* oversize: discarded up to the delimiter */
    uint8_t zeros[3] = {0, 0, 0};
    send_raw(zeros, 3); /* empty frames are ignored */
    EXPECT_NOTHING();
    /* good CRC, unknown type: answered every time, with the frame's seq */
    uint16_t seq = send(0x42, 0, 0);
    EXPECT_NAK(seq, 0, NAK_UNKNOWN_TYPE);
    seq = send(0x42, 0, 0);
    EXPECT_NAK(seq, 0, NAK_UNKNOWN_TYPE);
    uint8_t p[8] = {0};
    seq = send(MSG_HEARTBEAT, p, 3);
    EXPECT_NAK(seq, 0, NAK_MALFORMED);
    /* a good frame right after garbage without a delimiter is lost with it; the next one is received */
    uint8_t junk[5] = {1, 2, 3, 4, 5};
    send_raw(junk, 5);
    send(MSG_STATUS_REQUEST, 0, 0);
    EXPECT_NOTHING(); /* damaged, in the same burst as the oversize frame */
    msg_status_t s = status();
    CHECK_EQ(s.version, 2);
    CHECK_EQ(s.bad_frames, 10);
}

static void test_sequence_numbers_wrap_before_ffff(void)
{
    setup();
    frame_t f;
    for (uint32_t i = 0; i < 65536u; i++) {
        send(MSG_STATUS_REQUEST, 0, 0);
        CHECK(next_frame(&f));
        if (i < 65535u) {
            if (f.seq != i) {
                CHECK_EQ(f.seq, i);
                break;
            }
        } else {
            CHECK_EQ(f.seq, 0); /* 65534 is followed by 0 */
        }
    }
}

/* ------------------------------------------------------------------ commands */

static void test_fire_executes_at_its_counts(void)
{
    setup();
    arm(1);
    uint16_t seq = send_fire(1, 0, 3, 50, 80, 1);
    EXPECT_ACK(seq, 1, ACK_QUEUED);
    host_edges(49);
    CHECK(!valve_on(0));
    host_edges(1);
    CHECK(valve_on(0) && valve_on(3) && !valve_on(4));
    host_edges(29);
    CHECK(valve_on(0));
    host_edges(1);
    CHECK(!valve_on(0));
    ctrl_poll();
    EXPECT_FIRED(1, 50, 80);
    CHECK_EQ(host_n_changes, 2);
    CHECK_EQ(host_changes[0].count, 50);
    CHECK_EQ(host_changes[1].count, 80);
}

static void test_refusals(void)
{
    setup();
    uint16_t seq = send_fire(1, 0, 0, 100, 200, 1);
    EXPECT_NAK(seq, 1, NAK_NOT_ARMED);
    arm(7);
    seq = send_fire(1, 0, 0, 100, 200, 2);
    EXPECT_NAK(seq, 1, NAK_WRONG_EPOCH);
    seq = send_fire(2, 0, 32, 100, 200, 1);
    EXPECT_NAK(seq, 2, NAK_BAD_FIELD); /* valve 32 of 32 */
    seq = send_fire(3, 5, 4, 100, 200, 1);
    EXPECT_NAK(seq, 3, NAK_BAD_FIELD); /* first > last */
    seq = send_fire(4, 0, 0, 100, 100, 1);
    EXPECT_NAK(seq, 4, NAK_BAD_FIELD); /* close <= open */
    seq = send_fire(5, 0, 0, (1LL << 40) + 1, (1LL << 40) + 10, 1);
    EXPECT_NAK(seq, 5, NAK_BAD_FIELD); /* too far ahead */
    seq = send_fire(6, 0, 0, (1LL << 40), (1LL << 40) + 10, 1);
    EXPECT_ACK(seq, 6, ACK_QUEUED); /* exactly at the bound */
    host_edges(10);
    seq = send_fire(7, 0, 0, 10, 20, 1);
    EXPECT_NAK(seq, 7, NAK_LATE);
    seq = send_fire(8, 0, 0, -5, 20, 1);
    EXPECT_NAK(seq, 8, NAK_LATE);
    seq = send_fire(6, 0, 1, (1LL << 40), (1LL << 40) + 10, 1);
    EXPECT_NAK(seq, 6, NAK_CONFLICT); /* same id, other fields */
    seq = send_fire(6, 0, 0, (1LL << 40), (1LL << 40) + 10, 1);
    EXPECT_ACK(seq, 6, ACK_DUPLICATE);
    msg_status_t s = status();
    CHECK_EQ(s.late, 2);
    CHECK_EQ(s.rejected, 7);
    CHECK_EQ(s.queue_len, 1);
    /* queue full */
    for (uint32_t i = 0; i < QUEUE_CAPACITY - 1u; i++) {
        seq = send_fire(100 + i, 1, 1, 1000 + i, 2000 + i, 1);
        EXPECT_ACK(seq, 100 + i, ACK_QUEUED);
    }
    seq = send_fire(999, 1, 1, 5000, 6000, 1);
    EXPECT_NAK(seq, 999, NAK_QUEUE_FULL);
    CHECK_EQ(status().queue_len, QUEUE_CAPACITY);
}

static void test_late_uses_speed_and_min_lead(void)
{
    setup();
    arm(1);
    run_belt(50000, 25000, 1); /* 2.5 m/s at 10 counts/mm */
    drain();
    int64_t now = host_count();
    const int64_t lead = 25000 * (int64_t)MIN_LEAD_US / 1000000; /* counts at 25000 counts/s */
    uint16_t seq = send_fire(1, 0, 0, now + lead, now + 500, 1);
    EXPECT_NAK(seq, 1, NAK_LATE);
    seq = send_fire(2, 0, 0, now + lead + 1, now + 500, 1);
    EXPECT_ACK(seq, 2, ACK_QUEUED);
}

static void test_pulse_clamping(void)
{
    setup();
    arm(1);
    run_belt(50000, 25000, 1);
    drain();
    int64_t now = host_count();
    /* min pulse 1 ms = 25 counts, max 200 ms = 5000 counts at 25000 counts/s */
    uint16_t seq = send_fire(1, 2, 2, now + 100, now + 105, 1);
    EXPECT_ACK(seq, 1, ACK_QUEUED);
    seq = send_fire(2, 3, 3, now + 100, now + 100000, 1);
    EXPECT_ACK(seq, 2, ACK_QUEUED);
    run_belt(220000, 25000, 1);
    EXPECT_FIRED(1, now + 100, now + 125);
    EXPECT_FIRED(2, now + 100, now + 5100);
    /* the retransmission of the clamped command reports the clamped close again */
    seq = send_fire(1, 2, 2, now + 100, now + 105, 1);
    EXPECT_ACK(seq, 1, ACK_DONE);
    EXPECT_FIRED(1, now + 100, now + 125);
}

static void test_overlapping_pulses_or_together(void)
{
    setup();
    arm(1);
    send_fire(1, 4, 6, 100, 200, 1);
    send_fire(2, 6, 8, 150, 300, 1);
    send_fire(3, 6, 6, 200, 250, 1); /* opens where 1 closes */
    drain();
    for (int64_t c = 0; c < 320; c++) {
        int v6 = (c >= 100 && c < 200) || (c >= 150 && c < 300) || (c >= 200 && c < 250);
        int v4 = c >= 100 && c < 200;
        int v8 = c >= 150 && c < 300;
        if (valve_on(6) != v6 || valve_on(4) != v4 || valve_on(8) != v8) {
            fprintf(stderr, "count %" PRId64 ": valves 4/6/8 = %d%d%d, expected %d%d%d\n", c, valve_on(4), valve_on(6),
                    valve_on(8), v4, v6, v8);
            failures++;
            break;
        }
        host_edges(1);
        ctrl_poll();
    }
    EXPECT_FIRED(1, 100, 200);
    EXPECT_FIRED(3, 200, 250);
    EXPECT_FIRED(2, 150, 300);
}

static void test_cancel(void)
{
    setup();
    arm(1);
    send_fire(1, 0, 0, 100, 200, 1);
    send_fire(2, 1, 1, 50, 400, 1);
    drain();
    uint16_t seq = send_u32(MSG_CANCEL, 1);
    EXPECT_ACK(seq, 1, ACK_CANCELLED);
    seq = send_u32(MSG_CANCEL, 1);
    EXPECT_ACK(seq, 1, ACK_CANCELLED); /* repeated */
    seq = send_fire(1, 0, 0, 100, 200, 1);
    EXPECT_ACK(seq, 1, ACK_CANCELLED); /* retransmitted after the cancel */
    seq = send_u32(MSG_CANCEL, 99);
    EXPECT_ACK(seq, 99, ACK_UNKNOWN_ID);
    host_edges(60);
    seq = send_u32(MSG_CANCEL, 2);
    EXPECT_ACK(seq, 2, ACK_UNKNOWN_ID); /* the air is on: runs to its close */
    host_edges(400);
    ctrl_poll();
    EXPECT_FIRED(2, 50, 400);
    CHECK(!valve_on(0)); /* the cancelled pulse never switched */
    CHECK_EQ(host_n_changes, 2);
}

static void test_watchdog(void)
{
    setup();
    arm(5);
    send_fire(1, 0, 0, 100, 3000, 1);
    send_fire(2, 1, 1, 5000, 5100, 1);
    drain();
    host_edges(200);
    for (int i = 0; i < 99; i++) {
        host_advance_us(1000);
        ctrl_poll();
    }
    CHECK(valve_on(0));
    host_advance_us(1000); /* exactly 100 ms after ARM: not yet */
    ctrl_poll();
    CHECK(valve_on(0));
    EXPECT_NOTHING();
    host_advance_us(1);
    ctrl_poll();
    CHECK(!valve_on(0));
    EXPECT_FIRED(1, 100, 200); /* cut short at the count of the trip */
    frame_t f;
    CHECK(next_frame(&f) && f.type == MSG_FAULT && f.p[0] == FAULT_WATCHDOG);
    msg_fault_t fault;
    wire_get_fault(f.p, &fault);
    CHECK_EQ(fault.count, 200); /* where the outputs went off, as in the FIRED above */
    msg_status_t s = status();
    CHECK_EQ(s.flags, FLAG_FAULTED | FLAG_ENCODER_OK);
    CHECK_EQ(s.fault, FAULT_WATCHDOG);
    CHECK_EQ(s.watchdog_trips, 1);
    CHECK_EQ(s.queue_len, 0);
    uint16_t seq = send_fire(3, 0, 0, 6000, 6100, 1);
    EXPECT_NAK(seq, 3, NAK_NOT_ARMED);
    /* re-arm with the same session: the history is kept, dropped commands may be sent again */
    arm(5);
    seq = send_fire(1, 0, 0, 100, 3000, 1);
    EXPECT_ACK(seq, 1, ACK_DONE);
    EXPECT_FIRED(1, 100, 200);
    seq = send_fire(2, 1, 1, 5000, 5100, 1);
    EXPECT_ACK(seq, 2, ACK_QUEUED);
    CHECK_EQ(status().flags, FLAG_ARMED | FLAG_ENCODER_OK);
    /* heartbeats every 99 ms keep it armed */
    for (int i = 0; i < 10; i++) {
        host_advance_us(99000);
        ctrl_poll();
        send_u32(MSG_HEARTBEAT, (uint32_t)i);
    }
    CHECK_EQ(status().flags, FLAG_ARMED | FLAG_ENCODER_OK);
    /* a new session forgets the ids */
    arm(6);
    seq = send_fire(1, 0, 0, 100, 3000, 1);
    EXPECT_NAK(seq, 1, NAK_LATE);
}

static void test_disarm(void)
{
    setup();
    arm(1);
    send_fire(1, 0, 0, 10, 100, 1);
    send_fire(2, 1, 1, 50, 60, 1);
    drain();
    host_edges(20);
    uint16_t seq = send(MSG_DISARM, 0, 0);
    EXPECT_FIRED(1, 10, 20);
    EXPECT_ACK(seq, 0, ACK_OK);
    CHECK(!valve_on(0));
    host_edges(100);
    ctrl_poll();
    EXPECT_NOTHING();
    CHECK_EQ(host_n_changes, 2);
    seq = send_fire(3, 0, 0, 500, 600, 1);
    EXPECT_NAK(seq, 3, NAK_NOT_ARMED);
}

static void test_encoder_reset_starts_an_epoch(void)
{
    setup();
    arm(1);
    send_fire(1, 0, 0, 100, 300, 1);
    send_fire(2, 1, 1, 500, 600, 1);
    drain();
    host_edges(150);
    host_zero(); /* outputs off at once */
    CHECK(!valve_on(0));
    ctrl_poll();
    EXPECT_FIRED(1, 100, 150);
    frame_t f;
    CHECK(next_frame(&f) && f.type == MSG_EPOCH);
    msg_epoch_t ep;
    wire_get_epoch(f.p, &ep);
    CHECK(ep.boot_id == 0xCAFEF00Du && ep.epoch == 2 && ep.count == 0);
    uint16_t seq = send_fire(2, 1, 1, 500, 600, 1); /* stale: computed in epoch 1 */
    EXPECT_NAK(seq, 2, NAK_WRONG_EPOCH);
    seq = send_fire(3, 1, 1, 500, 600, 2); /* still armed */
    EXPECT_ACK(seq, 3, ACK_QUEUED);
    host_edges(600);
    ctrl_poll();
    EXPECT_FIRED(3, 500, 600);
    CHECK_EQ(host_n_changes, 4);
    CHECK_EQ(status().epoch, 2);
}

static void test_encoder_jump_starts_an_epoch(void)
{
    setup();
    arm(1);
    run_belt(30000, 25000, 1);
    send_fire(1, 0, 0, host_count() + 1000, host_count() + 2000, 1);
    drain();
    host_jump(5000); /* 5000 counts in 10 ms: 500000 counts/s, more than any belt */
    run_belt(10000, 25000, 1);
    frame_t f;
    CHECK(next_frame(&f) && f.type == MSG_EPOCH);
    CHECK_EQ(status().epoch, 2);
    CHECK_EQ(status().queue_len, 0);
    run_belt(200000, 25000, 1);
    CHECK_EQ(host_n_changes, 0); /* the command of epoch 1 never fired */
}

static void test_pong(void)
{
    setup();
    host_edges(1234);
    host_advance_us(5678);
    uint8_t p[8] = {0x15, 0xcd, 0x5b, 0x07, 0, 0, 0, 0};
    send(MSG_PING, p, 8);
    frame_t f;
    CHECK(next_frame(&f) && f.type == MSG_PONG);
    msg_pong_t m;
    wire_get_pong(f.p, &m);
    CHECK(m.host_ns == 123456789u && m.device_us == 5678 && m.count == 1234 && m.boot_id == 0xCAFEF00Du && m.epoch == 1);
}

/* ------------------------------------------------------------------ compare unit edge cases */

static void expect_switch_at(int64_t open, int64_t close)
{
    setup();
    arm(1);
    uint16_t seq = send_fire(1, 9, 9, open, close, 1);
    EXPECT_ACK(seq, 1, ACK_QUEUED);
    for (int64_t c = 0; c <= close; c++) {
        ctrl_poll();
        if (valve_on(9) != (c >= open && c < close)) {
            fprintf(stderr, "open %" PRId64 " close %" PRId64 ": valve %d at count %" PRId64 "\n", open, close,
                    valve_on(9), c);
            failures++;
            return;
        }
        host_edges(1);
    }
    ctrl_poll();
    EXPECT_FIRED(1, open, close);
    checks++;
}

static void test_compare_windows(void)
{
    expect_switch_at(1, 2);
    expect_switch_at(65535, 65536);         /* close where the low 16 bits wrap to 0 */
    expect_switch_at(65536, 65537);         /* open at low word 0 */
    expect_switch_at(65537, 131072);        /* more than one 16-bit window away */
    expect_switch_at(200000, 200001);       /* three windows ahead */
    expect_switch_at(131071, 131072 + 1);
}

/* The encoder steps while the compare is being armed: the action is taken at once, not a window later. */
static void test_arming_race(void)
{
    setup();
    arm(1);
    host_edges(10);
    host_edges_during_arm = 1;
    uint16_t seq = send_fire(1, 0, 0, 11, 20, 1);
    EXPECT_ACK(seq, 1, ACK_QUEUED);
    CHECK_EQ(host_count(), 11);
    CHECK(valve_on(0));
    CHECK_EQ(host_changes[0].count, 11);
    host_edges(9);
    ctrl_poll();
    EXPECT_FIRED(1, 11, 20);
}

/* Random pulses, cancels and retransmissions on a moving belt: the outputs equal the OR of the pulses at every
   count, every report carries the exact counts, and nothing fires twice. */
static void test_random_schedule(void)
{
    setup();
    arm(3);
    srand(1234);
    enum { N = 3000 };
    static int64_t o[N], c[N];
    static uint8_t f[N], l[N], state[N]; /* 0 not sent, 1 queued, 2 cancelled, 3 reported */
    static uint32_t reported[N];
    uint32_t n_reported = 0;
    uint32_t next = 0;
    int64_t horizon = 0;
    memset(state, 0, sizeof state);
    for (int64_t now = 0; next < N || now < horizon + 2; now++) {
        /* send a few commands */
        while (next < N && rand() % 3 == 0 && status().queue_len < QUEUE_CAPACITY) {
            drain();
            uint32_t i = next++;
            o[i] = now + 1 + rand() % 300;
            c[i] = o[i] + 1 + rand() % 40;
            f[i] = (uint8_t)(rand() % VALVE_COUNT);
            l[i] = (uint8_t)(f[i] + rand() % 3);
            if (l[i] >= VALVE_COUNT) {
                l[i] = VALVE_COUNT - 1;
            }
            uint16_t seq = send_fire(i + 1, f[i], l[i], o[i], c[i], 1);
            EXPECT_ACK(seq, i + 1, ACK_QUEUED);
            state[i] = 1;
            if (c[i] > horizon) {
                horizon = c[i];
            }
            if (rand() % 10 == 0) { /* retransmission */
                seq = send_fire(i + 1, f[i], l[i], o[i], c[i], 1);
                EXPECT_ACK(seq, i + 1, ACK_DUPLICATE);
            }
            if (rand() % 8 == 0) { /* cancel before it opens */
                seq = send_u32(MSG_CANCEL, i + 1);
                EXPECT_ACK(seq, i + 1, ACK_CANCELLED);
                state[i] = 2;
            }
        }
        /* outputs now */
        uint8_t want[VALVE_BYTES] = {0};
        for (uint32_t i = 0; i < next; i++) {
            if ((state[i] == 1 || state[i] == 3) && o[i] <= now && now < c[i]) {
                for (uint8_t v = f[i]; v <= l[i]; v++) {
                    want[v >> 3] |= (uint8_t)(1u << (v & 7));
                }
            }
        }
        if (memcmp(want, host_out, VALVE_BYTES) != 0) {
            fprintf(stderr, "random schedule: outputs differ at count %" PRId64 "\n", now);
            failures++;
            return;
        }
        host_edges(1);
        ctrl_poll();
        frame_t fr;
        while (next_frame(&fr)) {
            if (fr.type != MSG_FIRED) {
                continue;
            }
            msg_fired_t m;
            wire_get_fired(fr.p, &m);
            uint32_t i = m.id - 1;
            CHECK(i < next && state[i] == 1);
            CHECK(m.opened == o[i] && m.closed == c[i]);
            state[i] = 3;
            reported[n_reported++] = i;
        }
    }
    for (uint32_t i = 0; i < N; i++) {
        if (state[i] == 1) {
            fprintf(stderr, "command %u never reported\n", i + 1);
            failures++;
            break;
        }
    }
    CHECK_EQ(status().queue_len, 0);
    /* retransmissions after the fact: the last HISTORY_CAPACITY ids (executed or cancelled) are remembered, older
       ones are refused by position, never fired again */
    drain();
    uint32_t changes = host_n_changes;
    for (uint32_t k = 0; k < 40; k++) {
        uint32_t i = reported[n_reported - 1 - k];
        uint16_t seq = send_fire(i + 1, f[i], l[i], o[i], c[i], 1);
        EXPECT_ACK(seq, i + 1, ACK_DONE);
        EXPECT_FIRED(i + 1, o[i], c[i]);
    }
    uint32_t old = reported[0];
    uint16_t seq = send_fire(old + 1, f[old], l[old], o[old], c[old], 1);
    EXPECT_NAK(seq, old + 1, NAK_LATE);
    seq = send_fire(old + 1, f[old], l[old], o[old] + 1, c[old], 1);
    EXPECT_NAK(seq, old + 1, NAK_LATE);
    CHECK_EQ(host_n_changes, changes);
}

int main(void)
{
    test_crc();
    test_cobs();
    test_golden_encode();
    test_golden_decode();
    test_golden_frames_through_the_controller();
    test_version1_fire_is_malformed();
    test_link_errors();
    test_sequence_numbers_wrap_before_ffff();
    test_fire_executes_at_its_counts();
    test_refusals();
    test_late_uses_speed_and_min_lead();
    test_pulse_clamping();
    test_overlapping_pulses_or_together();
    test_cancel();
    test_watchdog();
    test_disarm();
    test_encoder_reset_starts_an_epoch();
    test_encoder_jump_starts_an_epoch();
    test_pong();
    test_compare_windows();
    test_arming_race();
    test_random_schedule();
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
