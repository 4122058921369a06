#include "crc16.h"

#ifdef __AVR__
#include <util/crc16.h> /* CRC-16/XMODEM update in assembly; CCITT-FALSE is XMODEM started at 0xFFFF */

uint16_t crc16_update(uint16_t crc, uint8_t byte) { return _crc_xmodem_update(crc, byte); }

#else

/* Nibble table: 32 bytes of constants instead of 512, two lookups per byte. */
static const uint16_t nibble[16] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
    0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
};

uint16_t crc16_update(uint16_t crc, uint8_t byte)
{
    crc = (uint16_t)((crc << 4) ^ nibble[(uint8_t)((crc >> 12) ^ (byte >> 4)) & 0x0Fu]);
    crc = (uint16_t)((crc << 4) ^ nibble[(uint8_t)((crc >> 12) ^ (byte & 0x0Fu)) & 0x0Fu]);
    return crc;
}

#endif

uint16_t crc16(const uint8_t *data, uint8_t len)
{
    uint16_t crc = 0xFFFFu;
    while (len--) {
#ifdef __AVR__
        crc = _crc_xmodem_update(crc, *data++);
#else
        crc = crc16_update(crc, *data++);
#endif
    }
    return crc;
}
