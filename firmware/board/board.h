/* The emulated board: an ATmega2560 in simavr with its belt encoder, its valve outputs and its serial link.
   Shared state of the harness modules (board.c, encoder.c, serial.c, eventlog.c). */
#ifndef BOARD_HARNESS_H
#define BOARD_HARNESS_H
#include <stdint.h>
#include <stdio.h>

#include <simavr/sim_avr.h>

#define MAX_STEPS 256

typedef struct {
    double at_s;      /* from this emulated time on ... */
    double counts_per_s; /* ... the belt moves at this speed */
} speed_step_t;

typedef struct {
    avr_t *avr;
    FILE *log;
    /* encoder */
    speed_step_t steps[MAX_STEPS];
    int n_steps;
    double speed;          /* counts/s now */
    double phase;          /* fraction of a count travelled since the last rising edge */
    uint64_t last_tick;    /* cycle of the last encoder update */
    int64_t belt_counts;   /* rising edges since start (the belt's true travel) */
    int64_t mcu_counts;    /* the MCU's count as its firmware keeps it (encoder.c: mcu_count_now) */
    uint64_t cmp_cycle;    /* cycle of the last compare match */
    int64_t cmp_count;     /* MCU count at that match */
    uint64_t n_cmp;
    int stock_compare;     /* use simavr's own external-clock compare (one count late) */
    int glitch_left;       /* extra edges of a glitch still to send */
    /* valves */
    uint8_t ports[4];
    uint64_t n_edges;
    /* resets */
    unsigned resets;
    uint64_t seed;
    /* serial link */
    int pty_master;
    int pty_slave;
    int realtime;
    uint64_t rx_bytes, tx_bytes, rx_dropped;
} board_t;

extern board_t B;

double board_time_us(void);
void board_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* encoder.c */
int encoder_parse_profile(const char *spec);
void encoder_attach(void);
void encoder_set_speed(double counts_per_s);
void encoder_glitch(int counts);
void encoder_zero_pulse(void);
void encoder_mcu_reset(void);
void encoder_restart(void);
/* valves and interrupt latency (encoder.c) */
void valves_attach(void);
void latency_attach(void);
void latency_summary(void);

/* serial.c */
int serial_open_pty(const char *link_path);
void serial_attach(void);
void serial_reset(void);
void serial_restart(void);
int serial_load_script(const char *path);
void serial_poll(void);          /* move bytes between the pty and the UART; run due script lines */
int serial_script_done(void);
void serial_queue(const uint8_t *bytes, size_t n);
void board_control(const char *line); /* board.c: reset, power, zero, speed, glitch, quit */

#endif
