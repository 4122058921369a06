/* Wire constants of the controller protocol, version 2 (firmware_bridge/PROTOCOL.md, sections 2 and 3). */
#ifndef PROTO_H
#define PROTO_H

#define PROTO_VERSION 2u

/* Frame limits (section 2.1): body = type | seq | payload (0..64) | crc. */
#define PROTO_MAX_PAYLOAD 64u
#define PROTO_HEADER 3u                                   /* type u8 + seq u16 */
#define PROTO_CRC 2u
#define PROTO_MIN_BODY (PROTO_HEADER + PROTO_CRC)         /* 5 */
#define PROTO_MAX_BODY (PROTO_HEADER + PROTO_MAX_PAYLOAD + PROTO_CRC) /* 69 */
#define PROTO_MAX_ENCODED (PROTO_MAX_BODY + 1u)           /* 70: COBS adds one byte per 254 */
#define PROTO_SEQ_NONE 0xFFFFu

/* Host to controller. */
#define MSG_FIRE 0x10u
#define MSG_PICK 0x11u
#define MSG_CANCEL 0x12u
#define MSG_HEARTBEAT 0x13u
#define MSG_ARM 0x14u
#define MSG_STATUS_REQUEST 0x15u
#define MSG_PING 0x16u
#define MSG_DISARM 0x17u
/* Controller to host. */
#define MSG_ACK 0x80u
#define MSG_PONG 0x81u
#define MSG_NAK 0x82u
#define MSG_FIRED 0x83u
#define MSG_PICKED 0x84u
#define MSG_STATUS 0x85u
#define MSG_FAULT 0x86u
#define MSG_EPOCH 0x87u

/* Payload lengths (fixed per type). */
#define LEN_FIRE 26u
#define LEN_PICK 22u
#define LEN_CANCEL 4u
#define LEN_HEARTBEAT 4u
#define LEN_ARM 4u
#define LEN_STATUS_REQUEST 0u
#define LEN_PING 8u
#define LEN_DISARM 0u
#define LEN_ACK 7u
#define LEN_PONG 30u
#define LEN_NAK 7u
#define LEN_FIRED 20u
#define LEN_PICKED 12u
#define LEN_STATUS 48u
#define LEN_FAULT 9u
#define LEN_EPOCH 14u

/* ACK result. */
#define ACK_QUEUED 0u
#define ACK_DUPLICATE 1u
#define ACK_CANCELLED 2u
#define ACK_UNKNOWN_ID 3u
#define ACK_DONE 4u
#define ACK_OK 5u

/* NAK reason. */
#define NAK_LATE 1u
#define NAK_QUEUE_FULL 2u
#define NAK_BAD_CRC 3u
#define NAK_BAD_FIELD 4u
#define NAK_UNKNOWN_TYPE 5u
#define NAK_NOT_ARMED 6u
#define NAK_MALFORMED 7u
#define NAK_CONFLICT 8u
#define NAK_WRONG_EPOCH 9u

/* STATUS flags. */
#define FLAG_ARMED 0x01u
#define FLAG_FAULTED 0x02u
#define FLAG_VALVES_OPEN 0x04u
#define FLAG_ENCODER_OK 0x08u

/* Fault codes. */
#define FAULT_NONE 0u
#define FAULT_WATCHDOG 1u
#define FAULT_ENCODER 2u
#define FAULT_OUTPUT 3u
#define FAULT_INTERNAL 4u

#endif
