/* wirecat: decode frames of protocol version 2 with the firmware's own codec and print their fields as JSON,
   one line per frame (lets the Python tests check that C and Python decode the golden frames identically).
   Input: one frame per line, hex bytes with its 0x00 delimiter. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

static void print_fields(uint8_t type, const uint8_t *p)
{
    switch (type) {
    case MSG_FIRE: {
        msg_fire_t m;
        wire_get_fire(p, &m);
        printf("\"command_id\":%" PRIu32 ",\"valve_first\":%u,\"valve_last\":%u,\"open_count\":%" PRId64
               ",\"close_count\":%" PRId64 ",\"epoch\":%u", m.id, m.first, m.last, m.open, m.close, m.epoch);
        break;
    }
    case MSG_PICK: {
        msg_pick_t m;
        wire_get_pick(p, &m);
        printf("\"command_id\":%" PRIu32 ",\"x_um\":%" PRId32 ",\"y_um\":%" PRId32 ",\"pick_count\":%" PRId64
               ",\"epoch\":%u", m.id, m.x_um, m.y_um, m.pick, m.epoch);
        break;
    }
    case MSG_CANCEL:
    case MSG_HEARTBEAT:
    case MSG_ARM:
        printf("\"value\":%" PRIu32, (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        break;
    case MSG_ACK:
    case MSG_NAK: {
        msg_answer_t m;
        wire_get_answer(p, &m);
        printf("\"acked_seq\":%u,\"command_id\":%" PRIu32 ",\"code\":%u", m.acked_seq, m.id, m.code);
        break;
    }
    case MSG_PONG: {
        msg_pong_t m;
        wire_get_pong(p, &m);
        printf("\"host_time_ns\":%" PRIu64 ",\"device_time_us\":%" PRIu64 ",\"encoder_count\":%" PRId64
               ",\"boot_id\":%" PRIu32 ",\"epoch\":%u", m.host_ns, m.device_us, m.count, m.boot_id, m.epoch);
        break;
    }
    case MSG_FIRED: {
        msg_fired_t m;
        wire_get_fired(p, &m);
        printf("\"command_id\":%" PRIu32 ",\"open_count\":%" PRId64 ",\"close_count\":%" PRId64, m.id, m.opened, m.closed);
        break;
    }
    case MSG_STATUS: {
        msg_status_t m;
        wire_get_status(p, &m);
        printf("\"version\":%u,\"flags\":%u,\"fault_code\":%u,\"valve_count\":%u,\"queue_len\":%u,\"queue_capacity\":%u,"
               "\"encoder_count\":%" PRId64 ",\"executed\":%" PRIu32 ",\"late\":%" PRIu32 ",\"rejected\":%" PRIu32
               ",\"bad_frames\":%" PRIu32 ",\"watchdog_trips\":%" PRIu32 ",\"session_id\":%" PRIu32
               ",\"boot_id\":%" PRIu32 ",\"epoch\":%u",
               m.version, m.flags, m.fault, m.valves, m.queue_len, m.queue_cap, m.count, m.executed, m.late, m.rejected,
               m.bad_frames, m.watchdog_trips, m.session_id, m.boot_id, m.epoch);
        break;
    }
    case MSG_FAULT: {
        msg_fault_t m;
        wire_get_fault(p, &m);
        printf("\"fault_code\":%u,\"encoder_count\":%" PRId64, m.code, m.count);
        break;
    }
    case MSG_EPOCH: {
        msg_epoch_t m;
        wire_get_epoch(p, &m);
        printf("\"boot_id\":%" PRIu32 ",\"epoch\":%u,\"encoder_count\":%" PRId64, m.boot_id, m.epoch, m.count);
        break;
    }
    default:
        break;
    }
}

int main(void)
{
    char line[1024];
    while (fgets(line, sizeof line, stdin)) {
        uint8_t buf[255];
        uint8_t n = 0;
        unsigned v;
        int used;
        for (char *s = line; n < sizeof buf && sscanf(s, "%2x%n", &v, &used) == 1; s += used) {
            buf[n++] = (uint8_t)v;
            while (s[used] == ' ') {
                used++;
            }
        }
        if (n == 0 || buf[n - 1] != 0) {
            printf("{\"error\":\"no delimiter\"}\n");
            continue;
        }
        uint8_t type, len;
        uint16_t seq;
        const uint8_t *p;
        int8_t r = frame_decode(buf, (uint8_t)(n - 1), &type, &seq, &p, &len);
        if (r != FRAME_OK) {
            printf("{\"error\":\"%s\"}\n", r == FRAME_BAD_CRC ? "crc" : r == FRAME_COBS ? "cobs" : "truncated");
            continue;
        }
        printf("{\"type\":%u,\"seq\":%u,\"length\":%u", type, seq, len);
        if (wire_payload_length(type) == (int16_t)len) {
            printf(",\"fields\":{");
            print_fields(type, p);
            printf("}");
        }
        printf("}\n");
    }
    return 0;
}
