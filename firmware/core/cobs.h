/* Consistent Overhead Byte Stuffing (canonical form), the framing of the serial link (PROTOCOL.md, section 2.1). */
#ifndef COBS_H
#define COBS_H
#include <stdint.h>

/* Encode len bytes (len <= 253) into out (room for len + 1 bytes); returns the encoded length. No delimiter. */
uint8_t cobs_encode(const uint8_t *in, uint8_t len, uint8_t *out);

/* Decode one block (without its 0x00 delimiter) into out (room for len bytes; out may equal in).
   Returns the decoded length, or -1 if the block is not valid COBS (a zero byte, or a code past the end). */
int16_t cobs_decode(const uint8_t *in, uint8_t len, uint8_t *out);

#endif
