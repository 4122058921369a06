#include "ctrl.h"

#include <string.h>

#include "config.h"
#include "hw.h"
#include "le.h"
#include "link.h"
#include "proto.h"
#include "sched.h"
#include "wire.h"

enum { HIST_EMPTY = 0, HIST_DONE = 1, HIST_CANCELLED = 2 };

/* An accepted FIRE as the host sent it (for DUPLICATE / CONFLICT); the scheduled counts live in sched. */
typedef struct {
    uint32_t id;
    int64_t close; /* as requested, before clamping; the open count is sched_open_count() */
    uint16_t epoch;
    uint8_t first;
    uint8_t last;
    uint8_t live;
} cmd_t;

/* An executed or cancelled FIRE: a hash of its fields, and its switching counts relative to the requested open,
   which a retransmission carries again. The ids are kept apart so that the search is a tight loop. */
typedef struct {
    uint32_t hash;
    int32_t open_delta; /* opened - requested open */
    int32_t width;      /* closed - opened */
    uint8_t kind;
} hist_t;

static cmd_t cmds[QUEUE_CAPACITY];
static uint32_t hist_id[HISTORY_CAPACITY];
static hist_t hist[HISTORY_CAPACITY];
static uint8_t hist_next;
/* Low byte of each id, searched first: a byte compare per entry instead of a 32-bit one. tag_uses[t] counts the
   queued and remembered ids whose low byte is t: a new id (ids are mostly consecutive, so their low bytes rarely
   repeat within the few hundred kept) is known to be absent without any search. */
static uint8_t cmd_tag[QUEUE_CAPACITY];
static uint8_t hist_tag[HISTORY_CAPACITY];
static uint8_t tag_uses[256];

static uint8_t armed;
static uint8_t fault;
static uint32_t session_id;
static uint32_t boot_id;
static uint16_t epoch;
static uint64_t last_feed_us;
static uint32_t executed;
static uint32_t late;
static uint32_t rejected;
static uint32_t watchdog_trips;

/* Speed, from one count sample per SPEED_PERIOD_US; and what follows from it for new commands. */
static int64_t sample_count;
static uint64_t sample_us;
static uint32_t speed_cps;
static uint32_t lead_counts;
static uint32_t pulse_min;
static uint32_t pulse_max;

static volatile uint8_t zero_pending;
static volatile int64_t zero_cut;
static volatile uint8_t watchdog_fired; /* by the hardware timer: outputs already off */
static volatile int64_t watchdog_cut;

static uint32_t fnv1a(const uint8_t *p, uint8_t n)
{
    uint32_t h = 2166136261u;
    while (n--) {
        h = (h ^ *p++) * 16777619u;
    }
    return h;
}

/* Hash of a FIRE's fields but its id: its payload bytes 4..25 (valves, counts, epoch). */
static uint32_t fire_hash(uint16_t first, uint16_t last, int64_t open, int64_t close, uint16_t epoch)
{
    uint8_t p[LEN_FIRE];
    msg_fire_t m = {0, first, last, open, close, epoch};
    wire_put_fire(p, &m);
    return fnv1a(p + 4, LEN_FIRE - 4u);
}

static uint32_t cmd_hash(uint8_t slot)
{
    const cmd_t *c = &cmds[slot];
    return fire_hash(c->first, c->last, sched_open_count(slot), c->close, c->epoch);
}

static int32_t sat32(int64_t v) { return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v; }

#if MIN_LEAD_US % 100u || MIN_PULSE_US % 100u || MAX_PULSE_US % 100u || MAX_COUNTS_PER_S > 400000u
#error "times in multiples of 100 us and at most 400000 counts/s keep the speed arithmetic in 32 bits"
#endif

/* counts/s x us -> counts in 32-bit arithmetic (64-bit division costs thousands of cycles on an AVR) */
static uint32_t counts_in(uint32_t cps, uint32_t us) { return cps * (us / 100u) / 10000u; }

static void set_speed(uint32_t cps)
{
    if (cps > MAX_COUNTS_PER_S) {
        cps = MAX_COUNTS_PER_S;
    }
    speed_cps = cps;
    lead_counts = counts_in(cps, MIN_LEAD_US);
    pulse_min = counts_in(cps, MIN_PULSE_US);
    pulse_max = counts_in(cps, MAX_PULSE_US);
    if (pulse_min < 1u) {
        pulse_min = 1u;
    }
    if (pulse_max < pulse_min) {
        pulse_max = pulse_min;
    }
}

void ctrl_init(uint32_t boot, uint16_t first_epoch)
{
    memset(cmds, 0, sizeof cmds);
    memset(hist, 0, sizeof hist);
    memset(hist_id, 0, sizeof hist_id);
    memset(tag_uses, 0, sizeof tag_uses);
    hist_next = 0;
    armed = 0;
    fault = FAULT_NONE;
    session_id = 0;
    boot_id = boot;
    epoch = first_epoch ? first_epoch : 1u;
    executed = late = rejected = watchdog_trips = 0;
    zero_pending = 0;
    watchdog_fired = 0;
    link_init();
    sched_init();
    sample_count = hw_count();
    sample_us = hw_time_us();
    last_feed_us = sample_us;
    set_speed(0);
}

/* ---------------------------------------------------------------- reports */

static void send_fired(uint32_t id, int64_t opened, int64_t closed)
{
    uint8_t p[LEN_FIRED];
    msg_fired_t m = {id, opened, closed};
    wire_put_fired(p, &m);
    link_send(MSG_FIRED, p, sizeof p);
}

static void remember(uint32_t id, uint32_t hash, uint8_t kind, int32_t open_delta, int32_t width)
{
    hist_t *h = &hist[hist_next];
    if (h->kind != HIST_EMPTY) {
        tag_uses[hist_tag[hist_next]]--; /* the oldest entry is forgotten */
    }
    hist_id[hist_next] = id;
    hist_tag[hist_next] = (uint8_t)id;
    tag_uses[(uint8_t)id]++;
    h->hash = hash;
    h->kind = kind;
    h->open_delta = open_delta;
    h->width = width;
    hist_next = (uint8_t)((hist_next + 1u) % HISTORY_CAPACITY);
}

void sched_on_done(uint8_t slot, int64_t opened, int64_t closed)
{
    cmd_t *c = &cmds[slot];
    c->live = 0;
    tag_uses[cmd_tag[slot]]--;
    executed++;
    send_fired(c->id, opened, closed);
    remember(c->id, cmd_hash(slot), HIST_DONE, sat32(opened - sched_open_count(slot)), sat32(closed - opened));
}

void sched_on_dropped(uint8_t slot)
{
    cmds[slot].live = 0; /* not in the history: the host may send it again */
    tag_uses[cmd_tag[slot]]--;
}

static void send_epoch(void)
{
    uint8_t p[LEN_EPOCH];
    msg_epoch_t m = {boot_id, epoch, hw_count()};
    wire_put_epoch(p, &m);
    link_send(MSG_EPOCH, p, sizeof p);
}

/* ---------------------------------------------------------------- state changes */

static void new_epoch(const int64_t *cut)
{
    sched_close_all(cut);
    epoch = (uint16_t)(epoch + 1u);
    if (epoch == 0) {
        epoch = 1;
    }
    sample_count = hw_count();
    sample_us = hw_time_us();
    send_epoch();
}

static void service_zero(void)
{
    if (!zero_pending) {
        return;
    }
    hw_lock_t s = hw_atomic();
    int64_t cut = zero_cut;
    zero_pending = 0;
    hw_atomic_end(s);
    new_epoch(&cut);
}

void ctrl_isr_encoder_zeroed(int64_t count_before)
{
    if (!zero_pending) {
        zero_cut = count_before;
    }
    zero_pending = 1;
}

static void check_speed(uint64_t now_us)
{
    uint64_t dt = now_us - sample_us;
    if (dt < SPEED_PERIOD_US) {
        return;
    }
    int64_t count = hw_count();
    int64_t moved = count - sample_count;
    uint64_t limit = ((uint64_t)MAX_COUNTS_PER_S * dt) / 1000000u + JUMP_SLACK_COUNTS;
    sample_count = count;
    sample_us = now_us;
    if (moved < 0 || (uint64_t)moved > limit) {
        new_epoch(0); /* a jump no belt can make: positions of the old epoch mean nothing now */
        return;
    }
    if (dt < 500000u) { /* moved <= MAX_COUNTS_PER_S x dt: in 16 us units the product stays in 32 bits */
        set_speed((uint32_t)moved * 62500u / (uint32_t)(dt >> 4));
    } else {
        set_speed((uint32_t)(((uint64_t)moved * 1000000u) / dt));
    }
}

void ctrl_isr_watchdog(int64_t count)
{
    if (!watchdog_fired) {
        watchdog_cut = count;
    }
    watchdog_fired = 1;
}

static void feed(void)
{
    last_feed_us = hw_time_us();
    hw_watchdog_feed(armed);
}

static void check_watchdog(uint64_t now_us)
{
    hw_lock_t s = hw_atomic();
    uint8_t fired = watchdog_fired;
    int64_t cut = watchdog_cut;
    watchdog_fired = 0;
    hw_atomic_end(s);
    if (!armed || (!fired && now_us - last_feed_us <= WATCHDOG_US)) {
        if (fired) {
            sched_close_all(0); /* tripped as it was being disarmed: end the freeze */
        }
        return;
    }
    int64_t count = sched_close_all(fired ? &cut : 0);
    armed = 0;
    hw_watchdog_feed(0);
    fault = FAULT_WATCHDOG;
    watchdog_trips++;
    uint8_t p[LEN_FAULT];
    msg_fault_t m = {FAULT_WATCHDOG, count};
    wire_put_fault(p, &m);
    link_send(MSG_FAULT, p, sizeof p);
}

uint8_t ctrl_armed(void) { return armed; }

void ctrl_poll(void)
{
    service_zero();
    sched_poll();
    uint64_t now = hw_time_us();
    check_speed(now);
    check_watchdog(now);
}

/* ---------------------------------------------------------------- commands */

/* Index of the next entry of tags[from..n) equal to tag, or n (memchr is a tight loop in any C library). */
static uint8_t next_tag(const uint8_t *tags, uint8_t from, uint8_t n, uint8_t tag)
{
    const uint8_t *hit = memchr(tags + from, tag, (size_t)(n - from));
    return hit ? (uint8_t)(hit - tags) : n;
}

static uint8_t find_queued(uint32_t id)
{
    if (!tag_uses[(uint8_t)id]) {
        return SCHED_NONE;
    }
    for (uint8_t i = next_tag(cmd_tag, 0, QUEUE_CAPACITY, (uint8_t)id); i < QUEUE_CAPACITY;
         i = next_tag(cmd_tag, (uint8_t)(i + 1u), QUEUE_CAPACITY, (uint8_t)id)) {
        if (cmds[i].live && cmds[i].id == id) {
            return i;
        }
    }
    return SCHED_NONE;
}

static const hist_t *find_history(uint32_t id)
{
    if (!tag_uses[(uint8_t)id]) {
        return 0;
    }
    for (uint8_t i = next_tag(hist_tag, 0, HISTORY_CAPACITY, (uint8_t)id); i < HISTORY_CAPACITY;
         i = next_tag(hist_tag, (uint8_t)(i + 1u), HISTORY_CAPACITY, (uint8_t)id)) {
        if (hist_id[i] == id && hist[i].kind != HIST_EMPTY) {
            return &hist[i];
        }
    }
    return 0;
}

static void refuse(uint16_t seq, uint32_t id, uint8_t reason)
{
    if (reason == NAK_LATE) {
        late++;
    } else {
        rejected++;
    }
    link_nak(seq, id, reason);
}

/* Steps 1-4 of section 4.2, shared by FIRE and PICK (m is NULL for a PICK). Returns 1 when answered. */
static uint8_t known_or_refused(uint16_t seq, uint32_t id, uint16_t cmd_epoch, const msg_fire_t *m)
{
    if (!armed) {
        refuse(seq, id, NAK_NOT_ARMED);
        return 1;
    }
    if (cmd_epoch != epoch) {
        refuse(seq, id, NAK_WRONG_EPOCH);
        return 1;
    }
    uint8_t slot = find_queued(id);
    if (slot != SCHED_NONE) {
        const cmd_t *c = &cmds[slot];
        if (m && c->first == m->first && c->last == m->last && sched_open_count(slot) == m->open &&
            c->close == m->close && c->epoch == m->epoch) {
            link_ack(seq, id, ACK_DUPLICATE);
        } else {
            refuse(seq, id, NAK_CONFLICT); /* a PICK never shares an id with a FIRE */
        }
        return 1;
    }
    const hist_t *h = find_history(id);
    if (h != 0) {
        if (!m || h->hash != fire_hash(m->first, m->last, m->open, m->close, m->epoch)) {
            refuse(seq, id, NAK_CONFLICT);
        } else if (h->kind == HIST_CANCELLED) {
            link_ack(seq, id, ACK_CANCELLED);
        } else {
            link_ack(seq, id, ACK_DONE);
            int64_t opened = m->open + h->open_delta;
            send_fired(id, opened, opened + h->width);
        }
        return 1;
    }
    return 0;
}

static void on_fire(uint16_t seq, const uint8_t *p)
{
    msg_fire_t m;
    wire_get_fire(p, &m);
    uint32_t id = m.id;
    int64_t open = m.open;
    int64_t close = m.close;
    if (known_or_refused(seq, id, m.epoch, &m)) {
        return;
    }
    if (m.first > m.last || m.last >= VALVE_COUNT || close <= open) {
        refuse(seq, id, NAK_BAD_FIELD);
        return;
    }
    int64_t now = hw_count();
    if (open <= now || (uint64_t)(open - now) <= lead_counts) {
        refuse(seq, id, NAK_LATE);
        return;
    }
    int64_t scheduled_close = close;
    if (speed_cps > 0) { /* pulse clamping (step 9); with the belt stopped none applies */
        uint64_t width = (uint64_t)(close - open);
        if (width < pulse_min) {
            scheduled_close = open + pulse_min;
        } else if (width > pulse_max) {
            scheduled_close = open + pulse_max;
        }
    }
    if (open - now > MAX_AHEAD_COUNTS || scheduled_close - open > MAX_PULSE_COUNTS) {
        refuse(seq, id, NAK_BAD_FIELD); /* opens or closes too far ahead */
        return;
    }
    uint8_t slot = sched_free_slot();
    if (slot == SCHED_NONE) {
        refuse(seq, id, NAK_QUEUE_FULL);
        return;
    }
    cmd_t *c = &cmds[slot];
    cmd_tag[slot] = (uint8_t)id;
    tag_uses[(uint8_t)id]++;
    c->id = id;
    c->close = m.close;
    c->epoch = m.epoch;
    c->first = (uint8_t)m.first;
    c->last = (uint8_t)m.last;
    c->live = 1;
    sched_add(slot, (uint8_t)m.first, (uint8_t)m.last, open, scheduled_close);
    link_ack(seq, id, ACK_QUEUED);
}

static void on_pick(uint16_t seq, const uint8_t *p)
{
    msg_pick_t m;
    wire_get_pick(p, &m);
    /* a PICK never shares an id with a FIRE: a queued or remembered id is a conflict */
    if (known_or_refused(seq, m.id, m.epoch, 0)) {
        return;
    }
    refuse(seq, m.id, NAK_BAD_FIELD); /* a valve controller has no gripper */
}

static void on_cancel(uint16_t seq, const uint8_t *p)
{
    uint32_t id = le_u32(p);
    uint8_t slot = find_queued(id);
    if (slot != SCHED_NONE) {
        if (sched_cancel(slot)) {
            cmds[slot].live = 0;
            tag_uses[cmd_tag[slot]]--;
            remember(id, cmd_hash(slot), HIST_CANCELLED, 0, 0);
            link_ack(seq, id, ACK_CANCELLED);
        } else {
            link_ack(seq, id, ACK_UNKNOWN_ID); /* the air is on: it runs to its close */
        }
        return;
    }
    const hist_t *h = find_history(id);
    link_ack(seq, id, h != 0 && h->kind == HIST_CANCELLED ? ACK_CANCELLED : ACK_UNKNOWN_ID);
}

static void on_arm(uint16_t seq, const uint8_t *p)
{
    uint32_t session = le_u32(p);
    if (session != session_id) { /* a new host run: its ids may repeat the old ones */
        sched_close_all(0);
        for (uint8_t i = 0; i < HISTORY_CAPACITY; i++) {
            if (hist[i].kind != HIST_EMPTY) {
                tag_uses[hist_tag[i]]--;
            }
        }
        memset(hist, 0, sizeof hist);
        memset(hist_id, 0, sizeof hist_id);
        hist_next = 0;
        session_id = session;
    }
    fault = FAULT_NONE;
    armed = 1;
    feed();
    link_ack(seq, 0, ACK_OK);
}

static void on_disarm(uint16_t seq)
{
    sched_close_all(0);
    armed = 0;
    feed();
    link_ack(seq, 0, ACK_OK);
}

static void on_status(void)
{
    uint8_t p[LEN_STATUS];
    msg_status_t m;
    m.version = PROTO_VERSION;
    m.flags = FLAG_ENCODER_OK;
    if (armed) {
        m.flags |= FLAG_ARMED;
    }
    if (fault != FAULT_NONE) {
        m.flags |= FLAG_FAULTED;
    }
    if (sched_outputs_on()) {
        m.flags |= FLAG_VALVES_OPEN;
    }
    m.fault = fault;
    m.valves = VALVE_COUNT;
    m.queue_len = sched_used();
    m.queue_cap = QUEUE_CAPACITY;
    m.count = hw_count();
    m.executed = executed;
    m.late = late;
    m.rejected = rejected;
    m.bad_frames = link_bad_frames();
    m.watchdog_trips = watchdog_trips;
    m.session_id = session_id;
    m.boot_id = boot_id;
    m.epoch = epoch;
    wire_put_status(p, &m);
    link_send(MSG_STATUS, p, sizeof p);
}

static void on_ping(const uint8_t *p)
{
    uint8_t q[LEN_PONG];
    msg_pong_t m;
    hw_lock_t s = hw_atomic();
    m.device_us = hw_time_us();
    m.count = hw_count_locked();
    hw_atomic_end(s);
    m.host_ns = le_u64(p);
    m.boot_id = boot_id;
    m.epoch = epoch;
    wire_put_pong(q, &m);
    link_send(MSG_PONG, q, sizeof q);
}
void ctrl_on_frame(uint8_t type, uint16_t seq, const uint8_t *p)
{
    service_zero(); /* never judge a command against a count that has just been reset */
    if (watchdog_fired) {
        check_watchdog(hw_time_us()); /* tripped: nothing that follows may feed it back */
    }
    switch (type) {
    case MSG_FIRE: on_fire(seq, p); break;
    case MSG_PICK: on_pick(seq, p); break;
    case MSG_CANCEL: on_cancel(seq, p); break;
    case MSG_HEARTBEAT: feed(); break;
    case MSG_ARM: on_arm(seq, p); break;
    case MSG_STATUS_REQUEST: on_status(); break;
    case MSG_PING: on_ping(p); break;
    case MSG_DISARM: on_disarm(seq); break;
    default: break; /* link.c passes only the types above */
    }
}
