#include "sched.h"

#include <string.h>

#include "hw.h"

#if VALVE_COUNT > 128u || QUEUE_CAPACITY > 127u || STAGE_RING > 128u || (STAGE_RING & (STAGE_RING - 1u))
#error "VALVE_COUNT <= 128, QUEUE_CAPACITY <= 127, STAGE_RING a power of two <= 128"
#endif

#define RING_MASK (STAGE_RING - 1u)
#define MAX_EVENTS (2u * QUEUE_CAPACITY)
#define COMPARE_SPAN 65536 /* the compare unit sees the low 16 bits of the count */
#define CHAIN_SPAN 32767   /* an action this close after the previous one is armed by the interrupt directly */

typedef struct {
    int64_t open;
    uint32_t width; /* close - open, as scheduled */
    uint32_t late;  /* opened - open (0 unless the outputs switched on late) */
    uint8_t first;
    uint8_t last;
    uint8_t state;
} pulse_t;

typedef struct {
    int64_t count;  /* switch when the count reaches this */
    uint16_t stamp; /* low 16 bits of the count read right after it switched (by the interrupt); the main loop
                       takes the full count as the one nearest `count` (a switch is never 32768 counts late) */
    uint8_t out[VALVE_BYTES];
    uint16_t ocr;  /* compare value that matches at `count`: (count - 1) mod 2^16 */
    uint8_t nev;   /* events covered, from the front of ev[] */
    uint8_t chain; /* the next staged action follows within CHAIN_SPAN counts: the interrupt arms it directly */
} stage_t;

static pulse_t pulses[QUEUE_CAPACITY];

/* Main loop: pending events (slot << 1 | is_close), sorted by count; ev[0..ev_staged) are staged. */
static uint8_t ev[MAX_EVENTS];
static uint8_t ev_n;
static uint8_t ev_staged;
/* Output state after every staged action: open pulses per valve and the resulting bits. */
static uint8_t refs[VALVE_COUNT];
static uint8_t staged_out[VALVE_BYTES];
static uint8_t closing; /* sched_close_all() is running: nothing may be staged */

/* Ring of staged actions: the main loop writes at ring_w, the interrupt applies at ring_h, the main loop reports
   applied actions from ring_r. */
static stage_t ring[STAGE_RING];
static volatile uint8_t ring_w;
static volatile uint8_t ring_h;
static uint8_t ring_r;
static volatile uint8_t frozen;
static volatile uint8_t waiting; /* head staged, compare off until the counter's high part reaches its window */
static volatile uint8_t live_out[VALVE_BYTES];
volatile uint8_t sched_next_out[VALVE_BYTES];
static const uint8_t all_off[VALVE_BYTES];

static int64_t ev_count(uint8_t e)
{
    const pulse_t *p = &pulses[e >> 1];
    return (e & 1u) ? p->open + p->width : p->open;
}

void sched_init(void)
{
    hw_lock_t s = hw_lock();
    hw_cmp_disarm();
    hw_outputs(all_off);
    memset(pulses, 0, sizeof pulses);
    memset(refs, 0, sizeof refs);
    memset(staged_out, 0, sizeof staged_out);
    memset((void *)live_out, 0, sizeof live_out);
    ev_n = ev_staged = 0;
    ring_w = ring_h = ring_r = 0;
    frozen = waiting = closing = 0;
    hw_unlock(s);
}

uint8_t sched_free_slot(void)
{
    for (uint8_t i = 0; i < QUEUE_CAPACITY; i++) {
        if (pulses[i].state == SCHED_FREE) {
            return i;
        }
    }
    return SCHED_NONE;
}

uint8_t sched_used(void)
{
    uint8_t n = 0;
    for (uint8_t i = 0; i < QUEUE_CAPACITY; i++) {
        n = (uint8_t)(n + (pulses[i].state != SCHED_FREE));
    }
    return n;
}

uint8_t sched_state(uint8_t slot) { return pulses[slot].state; }
int64_t sched_open_count(uint8_t slot) { return pulses[slot].open; }

uint8_t sched_outputs_on(void)
{
    uint8_t any = 0;
    for (uint8_t i = 0; i < VALVE_BYTES; i++) {
        any |= live_out[i];
    }
    return any != 0;
}

/* ---------------------------------------------------------------- interrupt side */

/* The head action takes effect: `stamp` >= 0 when the outputs were written already and the low 16 bits of the
   count read right after are `stamp` (the compare interrupt's first instructions, or the fast path below); else
   they are written now. Few cycles: the main loop turns stamps into counts. */
static void apply_head_locked(int32_t stamp)
{
    stage_t *e = &ring[ring_h & RING_MASK];
    if (stamp < 0) {
        hw_outputs(e->out);
        stamp = hw_switch_lo();
    }
    e->stamp = (uint16_t)stamp;
    for (uint8_t i = 0; i < VALVE_BYTES; i++) {
        live_out[i] = e->out[i];
    }
    ring_h = (uint8_t)(ring_h + 1u);
}

/* Arm the compare for the head action, or apply it now if its count has been reached. */
static void arm_head_locked(void)
{
    waiting = 0;
    for (;;) {
        if (frozen || ring_h == ring_w) {
            hw_cmp_disarm();
            return;
        }
        const stage_t *head = &ring[ring_h & RING_MASK];
        int64_t ahead = head->count - hw_count_locked();
        if (ahead <= 0) {
            apply_head_locked(-1);
            continue;
        }
        if (ahead > COMPARE_SPAN) {
            hw_cmp_disarm(); /* an earlier alias of the low 16 bits comes first: wait for the overflow */
            waiting = 1;
            return;
        }
        for (uint8_t i = 0; i < VALVE_BYTES; i++) {
            sched_next_out[i] = head->out[i];
        }
        hw_cmp_arm(head->ocr);
        if (ahead > CHAIN_SPAN || !hw_cmp_passed(head->ocr)) {
            return; /* (hw_cmp_passed only tells within half the 16-bit span; far ahead nothing can be missed) */
        }
        hw_cmp_disarm(); /* the count reached it while arming: the match may have been missed */
    }
}

/* The match of the head action. The fast path (no 64-bit arithmetic, which is slow on a small CPU) arms the next
   action from its precomputed compare value when it follows closely; it returns 0 when the slow path,
   sched_isr_compare_slow(), must arm the next one. */
uint8_t sched_isr_compare_fast(void)
{
    int32_t stamp = hw_switch_lo();
    for (;;) {
        if (frozen || ring_h == ring_w) {
            hw_cmp_disarm();
            return 1;
        }
        uint8_t chain = ring[ring_h & RING_MASK].chain;
        apply_head_locked(stamp);
        if (!chain || ring_h == ring_w) {
            return 0;
        }
        const stage_t *next = &ring[ring_h & RING_MASK];
        for (uint8_t i = 0; i < VALVE_BYTES; i++) {
            sched_next_out[i] = next->out[i];
        }
        hw_lock_t s = hw_atomic(); /* arming, the check and a late switch without interruption */
        hw_cmp_arm(next->ocr);
        if (!hw_cmp_passed(next->ocr)) {
            hw_atomic_end(s);
            return 1;
        }
        hw_cmp_disarm(); /* reached while arming: switch now, then account for it */
        hw_outputs(next->out);
        stamp = hw_switch_lo();
        hw_atomic_end(s);
    }
}

void sched_isr_compare_slow(void) { arm_head_locked(); }

void sched_isr_compare(void)
{
    if (!sched_isr_compare_fast()) {
        sched_isr_compare_slow();
    }
}

void sched_isr_overflow(void)
{
    if (waiting) {
        arm_head_locked();
    }
}

int64_t sched_isr_freeze(void)
{
    frozen = 1;
    waiting = 0;
    hw_outputs(all_off);
    hw_cmp_disarm();
    int64_t now = hw_count_locked();
    for (uint8_t i = 0; i < VALVE_BYTES; i++) {
        live_out[i] = 0;
    }
    return now - (uint16_t)((uint16_t)now - hw_switch_lo());
}

/* ---------------------------------------------------------------- main loop side */

static void apply_event(uint8_t e, int8_t dir)
{
    const pulse_t *p = &pulses[e >> 1];
    if (e & 1u) {
        dir = (int8_t)-dir; /* a close undoes an open */
    }
    for (uint8_t v = p->first; v <= p->last; v++) {
        uint8_t bit = (uint8_t)(1u << (v & 7u));
        if (dir > 0) {
            if (refs[v]++ == 0) {
                staged_out[v >> 3] |= bit;
            }
        } else if (--refs[v] == 0) {
            staged_out[v >> 3] &= (uint8_t)~bit;
        }
    }
}

/* Report the actions the interrupt has applied. */
static void collect(void)
{
    while (ring_r != ring_h) {
        const stage_t *st = &ring[ring_r & RING_MASK];
        int64_t at = st->count + (int16_t)(st->stamp - (uint16_t)st->count);
        uint8_t n = st->nev;
        for (uint8_t k = 0; k < n; k++) {
            uint8_t e = ev[k];
            pulse_t *p = &pulses[e >> 1];
            if (!(e & 1u)) {
                p->state = SCHED_OPEN;
                p->late = (uint32_t)(at - p->open);
            } else {
                p->state = SCHED_FREE;
                sched_on_done((uint8_t)(e >> 1), p->open + p->late, at);
            }
        }
        memmove(ev, ev + n, (size_t)(ev_n - n));
        ev_n = (uint8_t)(ev_n - n);
        ev_staged = (uint8_t)(ev_staged - n);
        ring_r = (uint8_t)(ring_r + 1u);
    }
}

/* Stage the next actions (all events at one count form one action). */
static void stage(void)
{
    while (!closing && ev_staged < ev_n && (uint8_t)(ring_w - ring_r) < STAGE_RING) {
        int64_t at = ev_count(ev[ev_staged]);
        uint8_t k = ev_staged;
        while (k < ev_n && ev_count(ev[k]) == at) {
            apply_event(ev[k], 1);
            k++;
        }
        stage_t *st = &ring[ring_w & RING_MASK];
        st->count = at;
        st->nev = (uint8_t)(k - ev_staged);
        st->ocr = (uint16_t)(at - 1);
        st->chain = 0;
        memcpy(st->out, staged_out, VALVE_BYTES);
        ev_staged = k;
        stage_t *prev = &ring[(uint8_t)(ring_w - 1u) & RING_MASK];
        uint8_t chain = ring_w != ring_r && at - prev->count <= CHAIN_SPAN;
        hw_lock_t s = hw_atomic();
        uint8_t was_empty = ring_h == ring_w;
        if (!was_empty) { /* the interrupt arms it when it gets there */
            prev->chain = chain;
            ring_w = (uint8_t)(ring_w + 1u);
        }
        hw_atomic_end(s);
        if (was_empty) { /* nothing staged: arm it here (64-bit work, with the serial interrupts on) */
            s = hw_lock();
            ring_w = (uint8_t)(ring_w + 1u);
            arm_head_locked();
            hw_unlock(s);
        }
    }
}

/* Take back the staged actions at or after `from` that the interrupt has not applied yet. The search runs with
   the compare interrupt on (it only advances ring_h and never changes a count); the critical section is a few
   byte operations, so it never delays a match. */
static void unstage_from(int64_t from)
{
    uint8_t old_w = ring_w;
    uint8_t cut = old_w;
    while (cut != ring_h && ring[(uint8_t)(cut - 1u) & RING_MASK].count >= from) {
        cut = (uint8_t)(cut - 1u);
    }
    if (cut == old_w) {
        return;
    }
    hw_lock_t s = hw_atomic();
    if ((uint8_t)(cut - ring_h) > (uint8_t)(old_w - ring_h)) {
        cut = ring_h; /* applied meanwhile up to past the cut */
    }
    ring_w = cut;
    if (cut == ring_h) {
        hw_cmp_disarm(); /* the head is taken back */
        waiting = 0;
    } else {
        ring[(uint8_t)(cut - 1u) & RING_MASK].chain = 0; /* its successor is gone */
    }
    hw_atomic_end(s);
    uint8_t total = 0;
    for (uint8_t i = cut; i != old_w; i = (uint8_t)(i + 1u)) {
        total = (uint8_t)(total + ring[i & RING_MASK].nev);
    }
    while (total--) { /* undo in reverse order, so every close is undone before its open */
        ev_staged--;
        apply_event(ev[ev_staged], -1);
    }
}

static void insert_event(uint8_t e)
{
    int64_t at = ev_count(e);
    uint8_t lo = ev_staged;
    uint8_t hi = ev_n;
    while (lo < hi) { /* after every event at a count <= at: equal counts stay in arrival order */
        uint8_t mid = (uint8_t)((lo + hi) >> 1);
        if (ev_count(ev[mid]) <= at) {
            lo = (uint8_t)(mid + 1u);
        } else {
            hi = mid;
        }
    }
    memmove(ev + lo + 1, ev + lo, (size_t)(ev_n - lo));
    ev[lo] = e;
    ev_n++;
}

static void remove_events_of(uint8_t slot)
{
    uint8_t j = ev_staged;
    for (uint8_t i = ev_staged; i < ev_n; i++) {
        if ((ev[i] >> 1) != slot) {
            ev[j++] = ev[i];
        }
    }
    ev_n = j;
}

void sched_add(uint8_t slot, uint8_t first, uint8_t last, int64_t open, int64_t close)
{
    pulse_t *p = &pulses[slot];
    p->open = open;
    p->width = (uint32_t)(close - open);
    p->late = 0;
    p->first = first;
    p->last = last;
    p->state = SCHED_QUEUED;
    /* no collect() here: its reports may wait for room on the serial link, and this command must be staged
       before its position comes */
    unstage_from(open);
    insert_event((uint8_t)(slot << 1));
    insert_event((uint8_t)((slot << 1) | 1u));
    stage();
}

uint8_t sched_cancel(uint8_t slot)
{
    pulse_t *p = &pulses[slot];
    if (p->state != SCHED_QUEUED) {
        return p->state == SCHED_FREE;
    }
    unstage_from(p->open);
    collect();
    if (p->state != SCHED_QUEUED) { /* it opened before the interrupt was stopped */
        stage();
        return 0;
    }
    remove_events_of(slot);
    p->state = SCHED_FREE;
    stage();
    return 1;
}

void sched_poll(void)
{
    collect();
    if (!frozen) {
        stage();
    }
}

void sched_refill(void)
{
    if (!frozen) {
        stage();
    }
}

int64_t sched_close_all(const int64_t *cut)
{
    closing = 1;
    hw_lock_t s = hw_lock();
    hw_cmp_disarm();
    hw_outputs(all_off);
    int64_t now = hw_count_locked();
    int64_t cut_count = cut ? *cut : now - (uint16_t)((uint16_t)now - hw_switch_lo());
    for (uint8_t i = 0; i < VALVE_BYTES; i++) {
        live_out[i] = 0;
    }
    ring_w = ring_h; /* drop what was staged and not applied */
    waiting = 0;
    hw_unlock(s);
    collect(); /* what was applied before: its reports */
    for (uint8_t i = 0; i < QUEUE_CAPACITY; i++) {
        pulse_t *p = &pulses[i];
        if (p->state == SCHED_OPEN) {
            p->state = SCHED_FREE;
            sched_on_done(i, p->open + p->late, cut_count);
        } else if (p->state == SCHED_QUEUED) {
            p->state = SCHED_FREE;
            sched_on_dropped(i);
        }
    }
    ev_n = ev_staged = 0;
    memset(refs, 0, sizeof refs);
    memset(staged_out, 0, sizeof staged_out);
    s = hw_lock();
    frozen = 0;
    hw_unlock(s);
    closing = 0;
    return cut_count;
}
