/* AVR target of the valve controller: ATmega2560 at 16 MHz (Arduino Mega 2560). Implements hw.h with
   Timer/Counter5 (encoder counter and compare), Timer/Counter1 (device clock), USART0 (serial link on interrupts
   with ring buffers), port pins (valves), INT4 (encoder reset) and the watchdog timer. No dynamic memory. */
#include <avr/eeprom.h>
#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/wdt.h>
#include <stdint.h>

#include "board.h"
#include "ctrl.h"
#include "hw.h"
#include "link.h"
#include "sched.h"

#if VALVE_COUNT != 32
#error "the reference board wires 32 valves on PORTA, PORTC, PORTK and PORTF"
#endif

/* ------------------------------------------------------------------ boot: reset cause, boot id */

static uint8_t reset_cause __attribute__((section(".noinit")));
/* Not cleared at start-up: what the SRAM held at power-up (random cells) or before a reset. */
static uint8_t sram_noise[64] __attribute__((section(".noinit")));
static uint32_t ee_boots EEMEM;

/* Runs before the C runtime: a watchdog reset leaves the watchdog on, so it is switched off first. */
void early_init(void) __attribute__((naked, used, section(".init3")));
void early_init(void)
{
    reset_cause = MCUSR;
    MCUSR = 0;
    wdt_disable();
}

static uint32_t mix32(uint32_t h) /* a bijection with full avalanche (MurmurHash3's finaliser) */
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* boot_id: a bijection of the boot counter kept in EEPROM (so it differs from the previous boot's) mixed with
   the power-up state of the SRAM (so it differs between boards and power cycles). */
static uint32_t make_boot_id(uint16_t *first_epoch)
{
    uint32_t boots = eeprom_read_dword(&ee_boots) + 1u;
    eeprom_update_dword(&ee_boots, boots);
    uint32_t noise = 2166136261u;
    for (uint8_t i = 0; i < sizeof sram_noise; i++) {
        noise = (noise ^ sram_noise[i]) * 16777619u;
    }
    noise = (noise ^ reset_cause) * 16777619u;
    uint32_t id = mix32(boots ^ noise);
    uint32_t e = mix32(id ^ 0x9e3779b9u);
    for (uint8_t i = 0; i < sizeof sram_noise; i++) {
        sram_noise[i] = (uint8_t)(id >> (8u * (i & 3u))) ^ i; /* a reset that keeps the SRAM still gets a new id */
    }
    *first_epoch = (uint16_t)(e ^ (e >> 16)) ? (uint16_t)(e ^ (e >> 16)) : 1u;
    return id ? id : 1u;
}

/* ------------------------------------------------------------------ critical sections */

/* ------------------------------------------------------------------ encoder: Timer/Counter5 on T5 */

/* Count bits 16..47 (2^48 counts is 900 years at 10 kHz), advanced when a read of TCNT5 finds it below the
   previous read: reads come at least every 10 ms (main loop) and at every overflow interrupt, far more often
   than every 65536 counts, and reading twice can never count a wrap twice (an overflow flag handled both in
   software and by its interrupt could). */
static volatile uint32_t enc_hi;
static volatile uint16_t enc_last;
static volatile uint8_t cmp_on;  /* compare interrupt wanted; enabled when the critical section ends */
static volatile uint8_t lock_depth; /* > 0: in a section with the scheduler's sources masked */

/* (hi << 16) | lo without a 64-bit shift (a libgcc loop on the AVR): the AVR is little-endian. */
static inline uint64_t join48(uint32_t hi, uint16_t lo)
{
    union {
        uint64_t v;
        uint16_t w[4];
    } u;
    u.w[0] = lo;
    u.w[1] = (uint16_t)hi;
    u.w[2] = (uint16_t)(hi >> 16);
    u.w[3] = 0;
    return u.v;
}

int64_t hw_count_locked(void)
{
    uint16_t lo = TCNT5;
    uint32_t hi = enc_hi;
    if (lo < enc_last) { /* wrapped since the last read */
        enc_hi = ++hi;
    }
    enc_last = lo;
    return (int64_t)join48(hi, lo);
}

int64_t hw_count(void)
{
    uint8_t s = SREG; /* a few cycles with interrupts off: shorter than masking the scheduler's sources, which the
                         serial interrupts could stretch while a compare match waits */
    cli();
    int64_t c = hw_count_locked();
    SREG = s;
    return c;
}

void hw_cmp_arm(uint16_t ocr)
{
    OCR5A = ocr;
    TIFR5 = _BV(OCF5A);
    cmp_on = 1;
    if (!lock_depth) { /* in a masked section the interrupt is enabled when it ends */
        TIMSK5 |= _BV(OCIE5A);
    }
}

uint8_t hw_cmp_passed(uint16_t ocr) { return (uint16_t)(TCNT5 - ocr - 1u) < 0x8000u; }

void hw_cmp_disarm(void)
{
    cmp_on = 0;
    TIMSK5 &= (uint8_t)~_BV(OCIE5A);
    TIFR5 = _BV(OCF5A);
}

static volatile uint16_t switch_tcnt; /* TCNT5 read right after the outputs last switched */

uint16_t hw_switch_lo(void) { return switch_tcnt; }

void hw_outputs(const uint8_t out[VALVE_BYTES])
{
    VALVE_PORT0 = out[0];
    VALVE_PORT1 = out[1];
    VALVE_PORT2 = out[2];
    VALVE_PORT3 = out[3];
    switch_tcnt = TCNT5;
}

/* Critical sections mask the scheduler's interrupt sources (compare match and counter overflow), not all
   interrupts: the scheduler's 64-bit bookkeeping (hundreds of cycles on an AVR) never delays the serial link's
   interrupts (at 1 Mbaud a byte arrives every 10 us and the USART holds two). The scheduler's handlers run the
   same way: sources masked, interrupts on. When a section ends, what was flagged meanwhile is handled before the
   sources are unmasked (simavr, unlike the silicon, does not raise an interrupt whose flag was set while it was
   masked; handling it here is right for both). An encoder reset that arrives during a section is carried out
   when the section ends. */
static volatile uint8_t zero_deferred;
static volatile uint8_t watchdog_deferred;

static inline void sched_sources_off(void) { TIMSK5 = 0; }

static inline void write_next_out(void)
{
    VALVE_PORT0 = sched_next_out[0];
    VALVE_PORT1 = sched_next_out[1];
    VALVE_PORT2 = sched_next_out[2];
    VALVE_PORT3 = sched_next_out[3];
    switch_tcnt = TCNT5;
}

/* Encoder reset input: outputs off at once, the count restarts from 0, the controller starts a new epoch. */
static void encoder_zeroed(void)
{
    int64_t before = sched_isr_freeze();
    TCNT5 = 0;
    enc_hi = 0;
    enc_last = 0;
    TIFR5 = _BV(TOV5) | _BV(OCF5A);
    ctrl_isr_encoder_zeroed(before);
}

/* Watchdog period over: every output off at once, the controller reports and latches the fault. */
static void watchdog_expired(void)
{
    TIMSK3 = 0; /* one shot: the next feed re-arms it */
    ctrl_isr_watchdog(sched_isr_freeze());
}

/* End of a section (interrupts off, lock_depth 1): run the scheduler work flagged meanwhile, with interrupts
   on when `may_enable`, then unmask the sources. */
static void sched_release(uint8_t may_enable)
{
    for (;;) {
        if (zero_deferred) {
            zero_deferred = 0;
            encoder_zeroed();
            continue;
        }
        if (watchdog_deferred) {
            watchdog_deferred = 0;
            watchdog_expired();
            continue;
        }
        if (cmp_on && (TIFR5 & _BV(OCF5A))) {
            TIFR5 = _BV(OCF5A);
            write_next_out();
            if (may_enable) {
                sei();
            }
            sched_isr_compare();
            cli();
            continue;
        }
        if (TIFR5 & _BV(TOV5)) {
            TIFR5 = _BV(TOV5);
            (void)hw_count_locked(); /* notes the wrap */
            if (may_enable) {
                sei();
            }
            sched_isr_overflow();
            cli();
            continue;
        }
        TIMSK5 = (uint8_t)(_BV(TOIE5) | (cmp_on ? _BV(OCIE5A) : 0));
        /* flagged between the checks and the unmasking: take it here too */
        if ((TIFR5 & _BV(TOV5)) || (cmp_on && (TIFR5 & _BV(OCF5A)))) {
            sched_sources_off();
            continue;
        }
        lock_depth = 0;
        return;
    }
}

hw_lock_t hw_atomic(void)
{
    hw_lock_t s = SREG;
    cli();
    return s;
}

void hw_atomic_end(hw_lock_t saved) { SREG = saved; }

hw_lock_t hw_lock(void)
{
    uint8_t s = SREG;
    cli();
    if (lock_depth++ == 0) {
        sched_sources_off();
    }
    SREG = s;
    return 0;
}

void hw_unlock(hw_lock_t saved)
{
    (void)saved;
    uint8_t s = SREG;
    cli();
    if (lock_depth == 1) {
        sched_release((uint8_t)(s & _BV(SREG_I)));
    } else {
        lock_depth--;
    }
    SREG = s;
}

/* Compare match: the valve ports take the staged state within 24 cycles of the interrupt (1.5 us), before any
   register is saved, and the count is read at that moment; the bookkeeping follows in compare_tail(). */
void __vector_compare_tail(void) __attribute__((signal, used, externally_visible));
void __vector_compare_tail(void)
{
    lock_depth = 1;
    sched_sources_off();
    sei(); /* the serial link may interrupt the bookkeeping (its arming step is atomic) */
    sched_isr_compare();
    cli();
    sched_release(1);
}

ISR(TIMER5_COMPA_vect, ISR_NAKED)
{
    __asm__ __volatile__("push r24\n\t"
                         "lds r24, %[o0]\n\t"
                         "out %[pa], r24\n\t"
                         "lds r24, %[o1]\n\t"
                         "out %[pc], r24\n\t"
                         "lds r24, %[o2]\n\t"
                         "sts %[pk], r24\n\t"
                         "lds r24, %[o3]\n\t"
                         "out %[pf], r24\n\t"
                         "lds r24, %[tl]\n\t" /* TCNT5L first: it latches TCNT5H */
                         "sts %[s0], r24\n\t"
                         "lds r24, %[th]\n\t"
                         "sts %[s1], r24\n\t"
                         "pop r24\n\t"
                         "jmp %x[tail]\n\t"
                         :
                         : [o0] "i"(&sched_next_out[0]), [o1] "i"(&sched_next_out[1]), [o2] "i"(&sched_next_out[2]),
                           [o3] "i"(&sched_next_out[3]), [pa] "I"(_SFR_IO_ADDR(VALVE_PORT0)),
                           [pc] "I"(_SFR_IO_ADDR(VALVE_PORT1)), [pk] "n"(_SFR_MEM_ADDR(VALVE_PORT2)),
                           [pf] "I"(_SFR_IO_ADDR(VALVE_PORT3)), [tl] "n"(_SFR_MEM_ADDR(TCNT5L)),
                           [th] "n"(_SFR_MEM_ADDR(TCNT5H)), [s0] "i"((uint8_t *)&switch_tcnt),
                           [s1] "i"((uint8_t *)&switch_tcnt + 1), [tail] "i"(__vector_compare_tail));
}

ISR(TIMER5_OVF_vect)
{
    (void)hw_count_locked(); /* notes the wrap */
    lock_depth = 1;
    sched_sources_off();
    sei();
    sched_isr_overflow();
    cli();
    sched_release(1);
}

ISR(INT4_vect)
{
    if (lock_depth) { /* a section is running (with interrupts on): it resets the count when it ends */
        zero_deferred = 1;
        return;
    }
    lock_depth = 1;
    sched_sources_off();
    encoder_zeroed();
    sched_release(0);
}

static void encoder_init(void)
{
    DDRL &= (uint8_t)~_BV(PL2);
    TCCR5A = 0;
    TCNT5 = 0;
    enc_hi = 0;
    enc_last = 0;
    TIFR5 = _BV(TOV5) | _BV(OCF5A);
    TIMSK5 = _BV(TOIE5);
    TCCR5B = _BV(CS52) | _BV(CS51) | _BV(CS50); /* external clock on T5, rising edge */
    DDRE &= (uint8_t)~_BV(PE4);
    PORTE |= _BV(PE4);  /* pull-up */
    EICRB = _BV(ISC41); /* falling edge */
    EIFR = _BV(INTF4);
    EIMSK |= _BV(INT4);
}

/* ------------------------------------------------------------------ protocol watchdog: Timer/Counter3 */

/* clk/256 = 62.5 kHz (16 us ticks): a match 6250 ticks after the last feed is 100.0 ms on the crystal's clock. */
#define WATCHDOG_TICKS ((uint16_t)(WATCHDOG_US / 16u))

void hw_watchdog_feed(uint8_t armed)
{
    uint8_t s = SREG;
    cli();
    TCNT3 = 0;
    TIFR3 = _BV(OCF3A);
    TIMSK3 = armed ? _BV(OCIE3A) : 0;
    SREG = s;
}

ISR(TIMER3_COMPA_vect)
{
    if (lock_depth) { /* a section is running: it carries this out when it ends */
        watchdog_deferred = 1;
        TIMSK3 = 0;
        return;
    }
    lock_depth = 1;
    sched_sources_off();
    watchdog_expired();
    sched_release(0);
}

static void watchdog_timer_init(void)
{
    TCCR3A = 0;
    TIMSK3 = 0;
    OCR3A = WATCHDOG_TICKS;
    TCNT3 = 0;
    TCCR3B = _BV(CS32); /* clk/256 */
}

/* ------------------------------------------------------------------ device clock: Timer/Counter1, 0.5 us */

static volatile uint32_t clock_hi;

ISR(TIMER1_OVF_vect) { clock_hi++; }

uint64_t hw_time_us(void)
{
    uint8_t s = SREG;
    cli();
    uint16_t lo = TCNT1;
    uint32_t hi = clock_hi;
    if (TIFR1 & _BV(TOV1)) {
        lo = TCNT1;
        hi++;
    }
    SREG = s;
    /* ticks of 0.5 us: (hi << 16 | lo) / 2 = hi << 15 | lo >> 1, composed without 64-bit shifts */
    union {
        uint64_t v;
        uint32_t w[2];
    } u;
    u.w[0] = (hi << 15) | (lo >> 1);
    u.w[1] = hi >> 17;
    return u.v;
}

static void clock_init(void)
{
    TCCR1A = 0;
    TCNT1 = 0;
    TIFR1 = _BV(TOV1);
    TIMSK1 = _BV(TOIE1);
    TCCR1B = _BV(CS11); /* clk/8: 2 MHz */
}

/* ------------------------------------------------------------------ serial link: USART0 */

#define RX_SIZE 256u /* u8 indices wrap by themselves */
#define TX_SIZE 256u

static volatile uint8_t rx_ring[RX_SIZE];
static volatile uint8_t rx_w;
static volatile uint8_t rx_r;
static volatile uint8_t tx_ring[TX_SIZE];
static volatile uint8_t tx_w;
static volatile uint8_t tx_r;

/* The serial interrupts have higher priority than the compare match (lower vector numbers): every cycle they take
   can delay a valve edge, so they are written out (about 40 cycles each, a C handler takes 60). */

/* A received byte into the ring; when the ring is full the byte is lost (its frame then fails its CRC). */
ISR(USART0_RX_vect, ISR_NAKED)
{
    __asm__ __volatile__("push r24\n\t"
                         "in r24, __SREG__\n\t"
                         "push r24\n\t"
                         "push r25\n\t"
                         "push r30\n\t"
                         "push r31\n\t"
                         "lds r25, %[udr]\n\t" /* the byte (reading it clears the flag) */
                         "lds r30, %[w]\n\t"
                         "mov r24, r30\n\t"
                         "inc r24\n\t"
                         "lds r31, %[r]\n\t"
                         "cp r24, r31\n\t"
                         "breq 1f\n\t" /* full */
                         "ldi r31, 0\n\t"
                         "subi r30, lo8(-(%[ring]))\n\t"
                         "sbci r31, hi8(-(%[ring]))\n\t"
                         "st Z, r25\n\t"
                         "sts %[w], r24\n\t" /* published after the byte is stored */
                         "1:\n\t"
                         "pop r31\n\t"
                         "pop r30\n\t"
                         "pop r25\n\t"
                         "pop r24\n\t"
                         "out __SREG__, r24\n\t"
                         "pop r24\n\t"
                         "reti\n\t"
                         :
                         : [udr] "n"(_SFR_MEM_ADDR(UDR0)), [w] "i"(&rx_w), [r] "i"(&rx_r), [ring] "i"(rx_ring));
}

/* The next byte of the ring to the USART, or the interrupt off when the ring is empty. */
ISR(USART0_UDRE_vect, ISR_NAKED)
{
    __asm__ __volatile__("push r24\n\t"
                         "in r24, __SREG__\n\t"
                         "push r24\n\t"
                         "push r30\n\t"
                         "push r31\n\t"
                         "lds r30, %[r]\n\t"
                         "lds r24, %[w]\n\t"
                         "cp r30, r24\n\t"
                         "brne 2f\n\t"
                         "lds r24, %[ucsrb]\n\t" /* empty: no more interrupts until hw_tx() */
                         "andi r24, %[noudrie]\n\t"
                         "sts %[ucsrb], r24\n\t"
                         "rjmp 3f\n\t"
                         "2:\n\t"
                         "ldi r31, 0\n\t"
                         "subi r30, lo8(-(%[ring]))\n\t"
                         "sbci r31, hi8(-(%[ring]))\n\t"
                         "ld r24, Z\n\t"
                         "sts %[udr], r24\n\t"
                         "lds r24, %[r]\n\t"
                         "inc r24\n\t"
                         "sts %[r], r24\n\t"
                         "3:\n\t"
                         "pop r31\n\t"
                         "pop r30\n\t"
                         "pop r24\n\t"
                         "out __SREG__, r24\n\t"
                         "pop r24\n\t"
                         "reti\n\t"
                         :
                         : [udr] "n"(_SFR_MEM_ADDR(UDR0)), [ucsrb] "n"(_SFR_MEM_ADDR(UCSR0B)),
                           [noudrie] "n"(0xFF & ~(1 << UDRIE0)), [w] "i"(&tx_w), [r] "i"(&tx_r),
                           [ring] "i"(tx_ring));
}

void hw_tx(const uint8_t *data, uint8_t len)
{
    while (len--) {
        while ((uint8_t)(tx_w + 1u) == tx_r) {
            sched_refill(); /* the link drains at 100 kB/s: keep the compare interrupt supplied meanwhile */
            wdt_reset();
        }
        uint8_t w = tx_w;
        tx_ring[w] = *data++;
        tx_w = (uint8_t)(w + 1u);
        uint8_t s = SREG; /* UCSR0B is also changed by the UDRE interrupt: read-modify-write with interrupts off */
        cli();
        UCSR0B |= _BV(UDRIE0);
        SREG = s;
    }
}

static void uart_init(void)
{
    UBRR0 = LINK_UBRR;
    UCSR0A = 0;
    UCSR0C = _BV(UCSZ01) | _BV(UCSZ00); /* 8N1 */
    UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
}

/* ------------------------------------------------------------------ main */

int main(void)
{
    static const uint8_t off[VALVE_BYTES];
    hw_outputs(off);
    VALVE_DDR0 = 0xFF;
    VALVE_DDR1 = 0xFF;
    VALVE_DDR2 = 0xFF;
    VALVE_DDR3 = 0xFF;
    DDRB |= _BV(PB7);
    uint16_t first_epoch;
    uint32_t boot_id = make_boot_id(&first_epoch);
    clock_init();
    watchdog_timer_init();
    uart_init();
    encoder_init();
    ctrl_init(boot_id, first_epoch);
    wdt_enable(WDTO_60MS);
    sei();
    for (;;) {
        while (rx_r != rx_w) { /* up to the end of one frame, then the scheduler's turn */
            uint8_t r = rx_r;
            uint8_t b = rx_ring[r];
            rx_r = (uint8_t)(r + 1u);
            link_rx(b);
            if (b == 0) {
                break;
            }
        }
        ctrl_poll();
        if (ctrl_armed()) {
            PORTB |= _BV(PB7);
        } else {
            PORTB &= (uint8_t)~_BV(PB7);
        }
        wdt_reset();
    }
}
