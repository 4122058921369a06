/* Host test double of hw.h: an encoder counter with a 16-bit compare unit that behaves as the ATmega2560
   datasheet describes (a match sets the flag on the timer clock after TCNT == OCR), a microsecond clock,
   outputs that record every change, and a capture of transmitted bytes. */
#ifndef HW_HOST_H
#define HW_HOST_H
#include <stdint.h>
#include "config.h"

#define HOST_TX_MAX 65536
#define HOST_CHANGES_MAX 8192

typedef struct {
    int64_t count;
    uint8_t out[VALVE_BYTES];
} host_change_t;

extern uint8_t host_out[VALVE_BYTES];
extern uint8_t host_tx[HOST_TX_MAX];
extern uint32_t host_tx_len;
extern host_change_t host_changes[HOST_CHANGES_MAX];
extern uint32_t host_n_changes;
extern int host_edges_during_arm; /* > 0: the encoder steps while the compare is being armed (race) */

void host_reset(void);
int64_t host_count(void);
void host_edges(uint32_t n);       /* the belt moves n counts; interrupts run after each edge */
void host_advance_us(uint64_t us); /* the device clock advances */
void host_zero(void);              /* the encoder-reset input fires (what the AVR's INT4 handler does) */
void host_jump(int64_t counts);    /* noise on the encoder line: the counter jumps without edges in between */

#endif
