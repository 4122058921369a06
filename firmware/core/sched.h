/* Compare scheduling: pulses (valve ranges switched on at one count and off at another) turned into a
   time-ordered list of switching actions, of which the next few are staged for the compare interrupt.

   The interrupt only copies a precomputed output state to the ports and arms the compare for the next staged
   action, so the pin edge follows the compare match by a few microseconds. Everything else (ordering, merging
   actions at the same count, overlapping pulses on one valve, reports) runs in the main loop. */
#ifndef SCHED_H
#define SCHED_H
#include <stdint.h>
#include "config.h"

#define SCHED_NONE 0xFFu

enum { SCHED_FREE = 0, SCHED_QUEUED = 1, SCHED_OPEN = 2 };

void sched_init(void);

/* A free pulse slot (0..QUEUE_CAPACITY-1), or SCHED_NONE. */
uint8_t sched_free_slot(void);
/* Pulses queued or on. */
uint8_t sched_used(void);
uint8_t sched_state(uint8_t slot);
int64_t sched_open_count(uint8_t slot);

/* Schedule valves first..last on at `open`, off at `close` (0 < close - open <= MAX_PULSE_COUNTS) in a free
   slot. */
void sched_add(uint8_t slot, uint8_t first, uint8_t last, int64_t open, int64_t close);

/* Remove a pulse that has not started; returns 0 (and changes nothing) if its outputs are already on. */
uint8_t sched_cancel(uint8_t slot);

/* Collect what the interrupt switched: sched_on_done() for every pulse that has closed; stage more actions. */
void sched_poll(void);

/* Stage more actions only (no reports): for wait loops, e.g. while the serial output is full. */
void sched_refill(void);

/* Every output off now. Pulses that were on end at *cut, or at the count when the outputs went off when cut is
   NULL (sched_on_done); pulses not started are dropped (sched_on_dropped). Also ends a freeze. Returns the count
   used as the cut. */
int64_t sched_close_all(const int64_t *cut);

/* Any output on now. */
uint8_t sched_outputs_on(void);

/* The output state the armed compare match will switch to (what the interrupt writes first). */
extern volatile uint8_t sched_next_out[VALVE_BYTES];

/* Interrupt side (called with interrupts off). sched_isr_compare() = the fast part, then the slow part if the
   fast one returns 0 (a platform may run the slow part with other interrupts on). */
void sched_isr_compare(void);
uint8_t sched_isr_compare_fast(void);
void sched_isr_compare_slow(void);
void sched_isr_overflow(void);
/* Outputs off and no switching until sched_close_all() (the count is about to be reset, or the watchdog ran
   out); returns the count at which the outputs went off. */
int64_t sched_isr_freeze(void);

/* Implemented by the controller. */
void sched_on_done(uint8_t slot, int64_t opened, int64_t closed);
void sched_on_dropped(uint8_t slot);

#endif
