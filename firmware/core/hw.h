/* What the portable core needs from the hardware. The AVR target (avr/) and the host test double
   (tests/hw_host.c) implement it; nothing in core/ touches a register. */
#ifndef HW_H
#define HW_H
#include <stdint.h>
#include "config.h"

typedef uint8_t hw_lock_t;

/* Critical sections against the scheduler's interrupts (compare match, counter overflow, encoder reset); the
   serial link's interrupts stay on. The scheduler's handlers run inside one. */
hw_lock_t hw_lock(void);
void hw_unlock(hw_lock_t saved);
/* A few operations with every interrupt off (no serial interrupt can stretch them while a match waits). Also a
   critical section against the scheduler's interrupts. */
hw_lock_t hw_atomic(void);
void hw_atomic_end(hw_lock_t saved);

/* Encoder count (64-bit, counting up as the belt moves); hw_count_locked() only inside a critical section. */
int64_t hw_count(void);
int64_t hw_count_locked(void);

/* Device clock in microseconds (monotonic since reset). */
uint64_t hw_time_us(void);

/* Compare unit on the low 16 bits of the count (locked context only). hw_cmp_arm() writes the compare value,
   clears a pending match and enables the match interrupt, which then calls sched_isr_compare() when the count
   steps from `ocr` to `ocr + 1`; hw_cmp_disarm() disables it and clears a pending match. */
void hw_cmp_arm(uint16_t ocr);
void hw_cmp_disarm(void);
/* The count has already stepped past `ocr` (its low 16 bits are within 32767 above ocr): a match armed for it
   will not come. Locked context only. */
uint8_t hw_cmp_passed(uint16_t ocr);

/* The low 16 bits of the count read right after the outputs last switched: by hw_outputs(), or by the compare
   interrupt's first instructions (which switch them to sched_next_out before sched_isr_compare() runs), so that
   reports carry the count the outputs switched at, not the count when the bookkeeping ran. */
uint16_t hw_switch_lo(void);

/* Switch every valve output at once (bit v of byte v / 8 = valve v), and read the count (hw_switch_lo()). */
void hw_outputs(const uint8_t out[VALVE_BYTES]);

/* The protocol's watchdog in hardware (section 4.4): each call restarts a timer that, when WATCHDOG_US pass
   without another call while `armed`, switches every output off at once from an interrupt (sched_isr_freeze())
   and calls ctrl_isr_watchdog(). A platform without such a timer does nothing here: ctrl_poll() then trips the
   watchdog when it sees the time has passed. */
void hw_watchdog_feed(uint8_t armed);

/* Queue bytes for the serial link; may wait for room. */
void hw_tx(const uint8_t *data, uint8_t len);

#endif
