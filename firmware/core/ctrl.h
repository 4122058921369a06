/* The controller: commands, id history, watchdog, epochs, status (PROTOCOL.md, section 4). Portable: all
   hardware access goes through hw.h, all switching through sched.h, all bytes through link.h. */
#ifndef CTRL_H
#define CTRL_H
#include <stdint.h>

/* boot_id: random, non-zero, new at every reset. epoch: the first encoder epoch of this boot (non-zero). */
void ctrl_init(uint32_t boot_id, uint16_t epoch);

/* Main loop work: switching reports, speed and jump check, encoder reset, watchdog. Call continuously. */
void ctrl_poll(void);

/* Armed now (for a status LED). */
uint8_t ctrl_armed(void);

/* From the encoder-reset interrupt, after it called sched_isr_freeze() and re-zeroed the counter:
   `count_before` is the count just before the reset. */
void ctrl_isr_encoder_zeroed(int64_t count_before);

/* From the watchdog timer's interrupt, after sched_isr_freeze(): `count` is the count when the outputs went off. */
void ctrl_isr_watchdog(int64_t count);

#endif
