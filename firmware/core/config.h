/* Capacities and limits of the controller. Every value can be overridden with -D at build time. */
#ifndef CONFIG_H
#define CONFIG_H

/* Valve outputs; VALVE_BYTES port bytes of 8 outputs each. */
#ifndef VALVE_COUNT
#define VALVE_COUNT 32u
#endif
#define VALVE_BYTES ((VALVE_COUNT + 7u) / 8u)

/* FIRE commands queued at once (the STATUS queue_capacity). At most 127 (two events per command in a u8 list). */
#ifndef QUEUE_CAPACITY
#define QUEUE_CAPACITY 64u
#endif

/* Executed or cancelled command ids remembered for idempotent retransmissions. PROTOCOL.md asks for 4096; the
   8 KiB of an ATmega2560 holds 128 (15 bytes each), which covers several seconds of commands. An id that has left
   the history is answered by its position: it has passed, so a retransmission is refused LATE, never fired twice. */
#ifndef HISTORY_CAPACITY
#define HISTORY_CAPACITY 128u
#endif

/* Switching actions handed to the compare interrupt ahead of time (power of two, at most 128): the interrupt
   switches them back to back without the main loop, which has to refill the ring before it runs dry. */
#ifndef STAGE_RING
#define STAGE_RING 32u
#endif

/* Watchdog period on the device clock (section 4.4). */
#ifndef WATCHDOG_US
#define WATCHDOG_US 100000u
#endif
/* A command must open at least this far ahead of the count, at the current speed (section 4.2, step 6). */
#ifndef MIN_LEAD_US
#define MIN_LEAD_US 500u
#endif
/* Pulse clamping (section 4.2, step 9). */
#ifndef MIN_PULSE_US
#define MIN_PULSE_US 1000u
#endif
#ifndef MAX_PULSE_US
#define MAX_PULSE_US 200000u
#endif
/* Longest pulse scheduled, in counts (a wider one, left after clamping, is refused BAD_FIELD as too far
   ahead): 2^31 counts is 214 km of belt at 10 counts/mm. */
#ifndef MAX_PULSE_COUNTS
#define MAX_PULSE_COUNTS 0x7FFFFFFFLL
#endif
/* Sanity bound on how far ahead a command may open (section 4.2, step 7). */
#ifndef MAX_AHEAD_COUNTS
#define MAX_AHEAD_COUNTS (1LL << 40)
#endif
/* Belt speed estimate: one sample of the count per period. */
#ifndef SPEED_PERIOD_US
#define SPEED_PERIOD_US 10000u
#endif
/* The fastest the encoder can count (10 m/s at 10 counts/mm); more counts between two samples is a jump that
   starts a new epoch (section 4.6). */
#ifndef MAX_COUNTS_PER_S
#define MAX_COUNTS_PER_S 100000u
#endif
#ifndef JUMP_SLACK_COUNTS
#define JUMP_SLACK_COUNTS 16u
#endif
/* Damaged frames are NAKed once per burst; a burst ends after this long without errors (section 2.2). */
#ifndef BURST_QUIET_US
#define BURST_QUIET_US 200000u
#endif

#endif
