/* CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, no reflection, no final XOR ("123456789" -> 0x29B1). */
#ifndef CRC16_H
#define CRC16_H
#include <stdint.h>

uint16_t crc16_update(uint16_t crc, uint8_t byte);
uint16_t crc16(const uint8_t *data, uint8_t len);

#endif
