#include "hw_host.h"

#include <string.h>

#include "ctrl.h"
#include "hw.h"
#include "sched.h"

uint8_t host_out[VALVE_BYTES];
uint8_t host_tx[HOST_TX_MAX];
uint32_t host_tx_len;
host_change_t host_changes[HOST_CHANGES_MAX];
uint32_t host_n_changes;
int host_edges_during_arm;

static int64_t count;
static uint64_t now_us;
static uint16_t ocr;
static uint8_t ocie;
static uint8_t ocf;
static int locked;

static uint8_t tov;
static uint16_t switch_lo;

uint16_t hw_switch_lo(void) { return switch_lo; }

/* Pending interrupts run when interrupts are on, compare match first (it has the lower vector number). */
static void dispatch(void)
{
    while (!locked) {
        if (ocie && ocf) {
            ocf = 0;
            locked++;
            hw_outputs((const uint8_t *)sched_next_out); /* what the AVR's first instructions do */
            sched_isr_compare();
            locked--;
        } else if (tov) {
            tov = 0;
            locked++;
            sched_isr_overflow();
            locked--;
        } else {
            return;
        }
    }
}

void host_reset(void)
{
    count = 0;
    now_us = 0;
    ocr = 0;
    ocie = ocf = tov = 0;
    locked = 0;
    host_tx_len = 0;
    host_n_changes = 0;
    host_edges_during_arm = 0;
    memset(host_out, 0, sizeof host_out);
}

int64_t host_count(void) { return count; }

static void step(void)
{
    if ((uint16_t)count == ocr) {
        ocf = 1; /* TCNT == OCR: the flag is set on this timer clock, as the count steps to OCR + 1 */
    }
    count++;
    if ((uint16_t)count == 0) {
        tov = 1;
    }
}

void host_edges(uint32_t n)
{
    while (n--) {
        step();
        dispatch();
    }
}

void host_advance_us(uint64_t us) { now_us += us; }

void host_zero(void)
{
    locked++;
    int64_t before = sched_isr_freeze();
    count = 0;
    ocf = 0;
    tov = 0;
    ctrl_isr_encoder_zeroed(before);
    locked--;
}

void host_jump(int64_t counts) { count += counts; }

hw_lock_t hw_lock(void)
{
    locked++;
    return 0;
}

void hw_unlock(hw_lock_t saved)
{
    (void)saved;
    locked--;
    dispatch();
}

hw_lock_t hw_atomic(void) { return hw_lock(); }
void hw_atomic_end(hw_lock_t saved) { hw_unlock(saved); }

int64_t hw_count(void) { return count; }
int64_t hw_count_locked(void) { return count; }
uint64_t hw_time_us(void) { return now_us; }

void hw_cmp_arm(uint16_t value)
{
    ocr = value;
    ocf = 0;
    ocie = 1;
    while (host_edges_during_arm > 0) {
        host_edges_during_arm--;
        step(); /* interrupts are off: a match only sets the flag */
    }
}

uint8_t hw_cmp_passed(uint16_t value) { return (uint16_t)((uint16_t)count - value - 1u) < 0x8000u; }

void hw_cmp_disarm(void)
{
    ocie = 0;
    ocf = 0;
}

void hw_outputs(const uint8_t out[VALVE_BYTES])
{
    if (memcmp(out, host_out, VALVE_BYTES) != 0 && host_n_changes < HOST_CHANGES_MAX) {
        host_changes[host_n_changes].count = count;
        memcpy(host_changes[host_n_changes].out, out, VALVE_BYTES);
        host_n_changes++;
    }
    memcpy(host_out, out, VALVE_BYTES);
    switch_lo = (uint16_t)count;
}

void hw_watchdog_feed(uint8_t armed) { (void)armed; /* no hardware timer: ctrl_poll() watches the time */ }

void hw_tx(const uint8_t *data, uint8_t len)
{
    if (host_tx_len + len <= HOST_TX_MAX) {
        memcpy(host_tx + host_tx_len, data, len);
        host_tx_len += len;
    }
}
