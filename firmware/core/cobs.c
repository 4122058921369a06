#include "cobs.h"

uint8_t cobs_encode(const uint8_t *in, uint8_t len, uint8_t *out)
{
    uint8_t code_at = 0;
    uint8_t o = 1;
    uint8_t code = 1;
    for (uint8_t i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            if (++code == 0xFFu) {
                out[code_at] = code;
                if (i + 1u == len) {
                    return o; /* canonical: no trailing code after a full run that ends the data */
                }
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return o;
}

int16_t cobs_decode(const uint8_t *in, uint8_t len, uint8_t *out)
{
    uint8_t i = 0;
    uint8_t o = 0;
    while (i < len) {
        uint8_t code = in[i];
        if (code == 0 || (uint16_t)i + code > len) {
            return -1;
        }
        uint8_t end = (uint8_t)(i + code);
        i++;
        while (i < end) {
            uint8_t b = in[i++];
            if (b == 0) {
                return -1;
            }
            out[o++] = b;
        }
        if (code < 0xFFu && i < len) {
            out[o++] = 0;
        }
    }
    return o;
}
