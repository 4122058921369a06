/* The belt encoder driving T5 (PL2) from a speed profile, the encoder-reset input (PE4), the compare unit of
   Timer/Counter5 as the datasheet times it, the valve outputs and interrupt latencies. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <simavr/avr_ioport.h>
#include <simavr/avr_timer.h>
#include <simavr/sim_cycle_timers.h>
#include <simavr/sim_interrupts.h>

#include "board.h"

static avr_irq_t *t5_pin;
static avr_irq_t *zero_pin;
static avr_timer_t *timer5;
static int level;      /* T5 pin */
static int next_step;  /* index of the next speed step */
static uint64_t rise_cycle;

#define PULSE_US 10.0  /* encoder pulse width (or half the period, if shorter) */
#define GLITCH_CYCLES 16

int encoder_parse_profile(const char *spec)
{
    char buf[8192];
    B.n_steps = 0;
    if (spec[0] == '@') {
        FILE *f = fopen(spec + 1, "r");
        if (!f) {
            fprintf(stderr, "board: cannot read the speed profile %s\n", spec + 1);
            return -1;
        }
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
    } else {
        snprintf(buf, sizeof buf, "%s", spec);
    }
    /* "CPS" (constant), or steps "T_S:CPS" separated by commas, spaces or new lines */
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", \n\t", &save); tok; tok = strtok_r(NULL, ", \n\t", &save)) {
        if (B.n_steps >= MAX_STEPS) {
            fprintf(stderr, "board: more than %d speed steps\n", MAX_STEPS);
            return -1;
        }
        char *colon = strchr(tok, ':');
        char *end;
        double t = 0, v;
        if (colon) {
            *colon = 0;
            t = strtod(tok, &end);
            if (*end) {
                goto bad;
            }
            tok = colon + 1;
        }
        v = strtod(tok, &end);
        if (*end || v < 0 || t < 0 || (B.n_steps && t < B.steps[B.n_steps - 1].at_s)) {
            goto bad;
        }
        B.steps[B.n_steps].at_s = t;
        B.steps[B.n_steps].counts_per_s = v;
        B.n_steps++;
        continue;
    bad:
        fprintf(stderr, "board: bad speed step '%s' in '%s': use COUNTS_PER_S or T_S:COUNTS_PER_S,... with "
                        "increasing times and speeds >= 0\n", tok, spec);
        return -1;
    }
    return 0;
}

static uint64_t s_to_cycles(double s) { return (uint64_t)llround(s * (double)B.avr->frequency); }

static void advance_to(uint64_t cycle)
{
    if (cycle > B.last_tick) {
        B.phase += B.speed * (double)(cycle - B.last_tick) / (double)B.avr->frequency;
        B.last_tick = cycle;
    }
}

static int counter_running(void) { return timer5 && (timer5->ext_clock_flags & AVR_TIMER_EXTCLK_FLAG_TN); }

/* The MCU's 64-bit count as its firmware keeps it: TCNT5 plus the overflows since the firmware last wrote TCNT5
   (it does so only when it starts or re-zeroes the count, together with its high part). */
static uint32_t mcu_hi;
static uint16_t last_tcnt;

static int64_t mcu_count_now(void)
{
    uint16_t tcnt = timer5 ? (uint16_t)timer5->tov_base : 0;
    if (tcnt != last_tcnt) { /* written by the firmware since the last edge */
        mcu_hi = 0;
        last_tcnt = tcnt;
    }
    B.mcu_counts = ((int64_t)mcu_hi << 16) | tcnt;
    return B.mcu_counts;
}

static uint16_t ocr5a(void)
{
    const avr_timer_comp_t *c = &timer5->comp[AVR_TIMER_COMPA];
    return (uint16_t)(B.avr->data[c->r_ocr] | (B.avr->data[c->r_ocrh] << 8));
}

/* One rising edge on T5. The compare unit sets OCF5A on the counter clock that takes TCNT5 from OCR5A to
   OCR5A + 1 (ATmega2560 datasheet, "Output Compare Units"). simavr 1.6 sets it one clock later in
   external-clock mode, so unless --stock-compare is given the harness raises the match itself and keeps
   simavr's own comparator off. */
static void rising_edge(int noise)
{
    int running = counter_running();
    int64_t before = mcu_count_now();
    if (running && !B.stock_compare) {
        for (int i = 0; i < AVR_TIMER_COMP_COUNT; i++) {
            timer5->comp[i].comp_cycles = 0;
        }
        if ((uint16_t)timer5->tov_base == ocr5a()) {
            B.cmp_cycle = B.avr->cycle;
            B.cmp_count = before + 1;
            B.n_cmp++;
            avr_raise_interrupt(B.avr, &timer5->comp[AVR_TIMER_COMPA].interrupt);
        }
    }
    if (!noise) {
        B.belt_counts++;
    }
    level = 1;
    avr_raise_irq(t5_pin, 1);
    if (running) {
        uint16_t tcnt = (uint16_t)timer5->tov_base;
        if (tcnt == 0 && last_tcnt == 0xFFFFu) {
            mcu_hi++;
        }
        last_tcnt = tcnt;
        mcu_count_now();
    }
}

/* Cycle of the next thing to do: the next rising edge, or the next speed step if it comes first. */
static uint64_t plan(uint64_t now)
{
    uint64_t step_at = next_step < B.n_steps ? s_to_cycles(B.steps[next_step].at_s) : UINT64_MAX;
    uint64_t rise = UINT64_MAX;
    if (B.speed > 0) {
        double need = (1.0 - B.phase) / B.speed;
        rise = B.last_tick + (uint64_t)ceil(need * (double)B.avr->frequency - 1e-9);
        if (rise <= now) {
            rise = now + 1;
        }
    }
    rise_cycle = rise;
    uint64_t next = rise < step_at ? rise : step_at;
    if (next == UINT64_MAX) {
        return 0; /* stopped for good */
    }
    return next > now ? next : now + 1;
}

static avr_cycle_count_t encoder_timer(avr_t *avr, avr_cycle_count_t when, void *param)
{
    (void)avr;
    (void)param;
    if (level) { /* end of the pulse */
        level = 0;
        avr_raise_irq(t5_pin, 0);
        if (B.glitch_left > 0) {
            return when + GLITCH_CYCLES;
        }
        return plan(when);
    }
    if (B.glitch_left > 0) {
        B.glitch_left--;
        rising_edge(1);
        return when + GLITCH_CYCLES;
    }
    advance_to(when);
    while (next_step < B.n_steps && s_to_cycles(B.steps[next_step].at_s) <= when) {
        B.speed = B.steps[next_step].counts_per_s;
        next_step++;
    }
    if (when >= rise_cycle && B.phase >= 1.0 - 1e-9) {
        B.phase -= 1.0;
        if (B.phase < 0) {
            B.phase = 0;
        }
        rising_edge(0);
        double half = B.speed > 0 ? 0.5 / B.speed * 1e6 : PULSE_US;
        double width_us = half < PULSE_US ? half : PULSE_US;
        uint64_t fall = when + (uint64_t)(width_us * (double)avr->frequency / 1e6);
        return fall > when ? fall : when + 1;
    }
    return plan(when);
}

static void reschedule(void)
{
    avr_cycle_timer_cancel(B.avr, encoder_timer, NULL);
    if (level || B.glitch_left > 0) {
        avr_cycle_timer_register(B.avr, 1, encoder_timer, NULL);
        return;
    }
    uint64_t next = plan(B.avr->cycle);
    if (next) {
        avr_cycle_timer_register(B.avr, next - B.avr->cycle, encoder_timer, NULL);
    }
}

void encoder_set_speed(double counts_per_s)
{
    advance_to(B.avr->cycle);
    B.speed = counts_per_s;
    /* later steps of the profile still apply */
    reschedule();
}

void encoder_glitch(int counts)
{
    B.glitch_left += counts;
    reschedule();
}

static avr_cycle_count_t zero_release(avr_t *avr, avr_cycle_count_t when, void *param)
{
    (void)avr;
    (void)when;
    (void)param;
    avr_raise_irq(zero_pin, 1);
    return 0;
}

void encoder_zero_pulse(void)
{
    avr_raise_irq(zero_pin, 0); /* the firmware re-zeroes its counter on this falling edge */
    board_event("\"ev\":\"zero\",\"count\":%lld,\"belt\":%lld", (long long)mcu_count_now(),
                (long long)B.belt_counts);
    avr_cycle_timer_register_usec(B.avr, 10, zero_release, NULL);
}

/* After a reset of the MCU: its cycle timers are gone (simavr cancels them), its counter is stopped. */
void encoder_mcu_reset(void)
{
    mcu_hi = 0;
    last_tcnt = timer5 ? (uint16_t)timer5->tov_base : 0;
    B.mcu_counts = 0;
}

void encoder_restart(void)
{
    advance_to(B.avr->cycle);
    reschedule();
}

static void on_compare_pending(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    if (value && B.stock_compare) {
        B.cmp_cycle = B.avr->cycle;
        B.cmp_count = mcu_count_now();
        B.n_cmp++;
    }
}

void encoder_attach(void)
{
    for (avr_io_t *io = B.avr->io_port; io; io = io->next) {
        if (io->irq_ioctl_get == AVR_IOCTL_TIMER_GETIRQ('5')) {
            timer5 = (avr_timer_t *)io;
        }
    }
    if (!timer5) {
        fprintf(stderr, "board: this MCU has no Timer/Counter5\n");
        exit(2);
    }
    t5_pin = avr_io_getirq(B.avr, AVR_IOCTL_IOPORT_GETIRQ('L'), 2);
    zero_pin = avr_io_getirq(B.avr, AVR_IOCTL_IOPORT_GETIRQ('E'), 4);
    avr_raise_irq(zero_pin, 1); /* idle high */
    avr_raise_irq(t5_pin, 0);
    avr_irq_register_notify(avr_get_interrupt_irq(B.avr, 47) + AVR_INT_IRQ_PENDING, on_compare_pending, NULL);
    next_step = 0;
    B.speed = 0;
    B.phase = 0;
    B.last_tick = B.avr->cycle;
    while (next_step < B.n_steps && B.steps[next_step].at_s <= 0) {
        B.speed = B.steps[next_step++].counts_per_s;
    }
    reschedule();
}

/* ------------------------------------------------------------------ valve outputs */

static const char valve_ports[4] = {'A', 'C', 'K', 'F'};

static void on_port(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    int idx = (int)(intptr_t)param;
    uint8_t now = (uint8_t)value;
    uint8_t changed = now ^ B.ports[idx];
    B.ports[idx] = now;
    for (int bit = 0; bit < 8; bit++) {
        if (changed & (1u << bit)) {
            B.n_edges++;
            board_event("\"ev\":\"valve\",\"valve\":%d,\"on\":%d,\"count\":%lld,\"belt\":%lld,\"cmp_cycle\":%llu,"
                        "\"cmp_count\":%lld",
                        idx * 8 + bit, (now >> bit) & 1, (long long)mcu_count_now(), (long long)B.belt_counts,
                        (unsigned long long)B.cmp_cycle, (long long)B.cmp_count);
        }
    }
}

void valves_attach(void)
{
    for (int i = 0; i < 4; i++) {
        avr_irq_t *irq = avr_io_getirq(B.avr, AVR_IOCTL_IOPORT_GETIRQ(valve_ports[i]), IOPORT_IRQ_PIN_ALL);
        avr_irq_register_notify(irq, on_port, (void *)(intptr_t)i);
    }
}

/* ------------------------------------------------------------------ interrupt latency (flag to handler) */

static const struct {
    int vector;
    const char *name;
} watched[] = {
    {5, "INT4"}, {20, "TIMER1_OVF"}, {25, "USART0_RX"}, {26, "USART0_UDRE"}, {47, "TIMER5_COMPA"}, {50, "TIMER5_OVF"},
};
#define N_WATCHED (sizeof watched / sizeof watched[0])
static uint64_t raised_at[N_WATCHED];
static uint64_t worst[N_WATCHED];
static uint64_t served[N_WATCHED];
static uint64_t started_at[N_WATCHED];
static uint64_t longest[N_WATCHED];

static void on_pending(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    if (value) {
        raised_at[(intptr_t)param] = B.avr->cycle;
    }
}

static void on_running(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    intptr_t i = (intptr_t)param;
    if (value) {
        uint64_t lat = B.avr->cycle - raised_at[i];
        if (lat > worst[i]) {
            worst[i] = lat;
        }
        served[i]++;
        started_at[i] = B.avr->cycle;
    } else if (started_at[i]) {
        uint64_t d = B.avr->cycle - started_at[i];
        if (d > longest[i]) {
            longest[i] = d;
        }
        started_at[i] = 0;
    }
}

void latency_attach(void)
{
    for (size_t i = 0; i < N_WATCHED; i++) {
        avr_irq_t *irq = avr_get_interrupt_irq(B.avr, (uint8_t)watched[i].vector);
        avr_irq_register_notify(irq + AVR_INT_IRQ_PENDING, on_pending, (void *)(intptr_t)i);
        avr_irq_register_notify(irq + AVR_INT_IRQ_RUNNING, on_running, (void *)(intptr_t)i);
    }
}

void latency_summary(void)
{
    if (!B.log) {
        return;
    }
    fprintf(B.log, "{\"ev\":\"latency\",\"cycles_per_us\":%u", B.avr->frequency / 1000000u);
    for (size_t i = 0; i < N_WATCHED; i++) {
        fprintf(B.log, ",\"%s\":{\"served\":%llu,\"worst_latency_cycles\":%llu,\"longest_cycles\":%llu}",
                watched[i].name, (unsigned long long)served[i], (unsigned long long)worst[i],
                (unsigned long long)longest[i]);
    }
    fputs("}\n", B.log);
}
