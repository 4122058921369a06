/* The serial link of the emulated board: USART0 connected to a pseudo-terminal (the host opens it like a USB
   serial adapter) or fed from a timed script; bytes enter the UART no faster than its baud rate. Every frame in
   both directions is decoded and logged (the wire sniffer). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <simavr/avr_uart.h>
#include <simavr/sim_cycle_timers.h>
#include <simavr/sim_interrupts.h>

#include "board.h"
#include "wire.h"

#define QUEUE_SIZE (1u << 20)
#define USART0_RX_VECTOR 25

static avr_uart_t *uart0;
static avr_irq_t *uart_in;
static int xoff;

/* Bytes waiting to enter the UART (from the pty or the script). */
static uint8_t queue[QUEUE_SIZE];
static size_t q_head, q_tail;
/* Bytes inside the UART, in order, until the firmware reads them. */
static uint8_t inside[256];
static uint8_t in_w, in_r;
/* Bytes the firmware sent, waiting for the pty. */
static uint8_t out[QUEUE_SIZE];
static size_t o_head, o_tail;
static int feeding;

/* ------------------------------------------------------------------ sniffer */

typedef struct {
    uint8_t buf[80];
    size_t n;
    int oversize;
    double t0_us; /* first byte of the frame */
} sniff_t;

static sniff_t sniff_rx, sniff_tx;

static void sniff(sniff_t *s, uint8_t b, const char *dir)
{
    if (b != 0) {
        if (s->n == 0 && !s->oversize) {
            s->t0_us = board_time_us();
        }
        if (s->n < sizeof s->buf) {
            s->buf[s->n++] = b;
        } else {
            s->oversize = 1;
        }
        return;
    }
    if (s->oversize) {
        board_event("\"ev\":\"%s\",\"t0_us\":%.4f,\"bad\":\"oversize\"", dir, s->t0_us);
    } else if (s->n > 0) {
        uint8_t type;
        uint16_t seq;
        const uint8_t *p;
        uint8_t len;
        int8_t r = frame_decode(s->buf, (uint8_t)s->n, &type, &seq, &p, &len);
        if (r == FRAME_OK) {
            char hex[2 * PROTO_MAX_PAYLOAD + 1];
            for (uint8_t i = 0; i < len && i < PROTO_MAX_PAYLOAD; i++) {
                sprintf(hex + 2 * i, "%02x", p[i]);
            }
            hex[2 * (len < PROTO_MAX_PAYLOAD ? len : PROTO_MAX_PAYLOAD)] = 0;
            board_event("\"ev\":\"%s\",\"t0_us\":%.4f,\"type\":%u,\"seq\":%u,\"p\":\"%s\"", dir, s->t0_us, type,
                        seq, hex);
        } else {
            board_event("\"ev\":\"%s\",\"t0_us\":%.4f,\"bad\":\"%s\"", dir, s->t0_us,
                        r == FRAME_BAD_CRC ? "crc" : r == FRAME_COBS ? "cobs" : "short");
        }
    }
    s->n = 0;
    s->oversize = 0;
}

/* ------------------------------------------------------------------ UART side */

static void on_xon(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    if (value) {
        xoff = 0;
    }
}

static void on_xoff(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    xoff = value != 0;
}

static void on_output(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    uint8_t b = (uint8_t)value;
    B.tx_bytes++;
    sniff(&sniff_tx, b, "tx");
    if (B.pty_master >= 0) {
        if ((o_tail + 1) % QUEUE_SIZE != o_head) {
            out[o_tail] = b;
            o_tail = (o_tail + 1) % QUEUE_SIZE;
        }
    }
}

/* The firmware's receive interrupt starts: it reads the oldest byte inside the UART. */
static void on_rx_isr(avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    if (value && in_r != in_w) {
        uint8_t b = inside[in_r++];
        sniff(&sniff_rx, b, "rx");
    }
}

/* One byte onto the line every byte time, while the UART has room. */
static avr_cycle_count_t feed(avr_t *avr, avr_cycle_count_t when, void *param)
{
    (void)avr;
    (void)param;
    avr_cycle_count_t byte_cycles = uart0->cycles_per_byte ? uart0->cycles_per_byte : 160;
    if (q_head == q_tail) {
        feeding = 0;
        return 0;
    }
    if (!xoff && (uint8_t)(in_w - in_r) < 200) {
        uint8_t b = queue[q_head];
        q_head = (q_head + 1) % QUEUE_SIZE;
        inside[in_w++] = b;
        B.rx_bytes++;
        avr_raise_irq(uart_in, b);
    }
    return when + byte_cycles;
}

void serial_queue(const uint8_t *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t next = (q_tail + 1) % QUEUE_SIZE;
        if (next == q_head) {
            B.rx_dropped++;
            continue;
        }
        queue[q_tail] = bytes[i];
        q_tail = next;
    }
    if (!feeding && q_head != q_tail) {
        feeding = 1;
        avr_cycle_timer_register(B.avr, 1, feed, NULL);
    }
}

void serial_attach(void)
{
    for (avr_io_t *io = B.avr->io_port; io; io = io->next) {
        if (io->irq_ioctl_get == AVR_IOCTL_UART_GETIRQ('0')) {
            uart0 = (avr_uart_t *)io;
        }
    }
    uint32_t flags = 0; /* no console echo, no sleeping on polled reads */
    avr_ioctl(B.avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    uart_in = avr_io_getirq(B.avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_register_notify(avr_io_getirq(B.avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_output, NULL);
    avr_irq_register_notify(avr_io_getirq(B.avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XON), on_xon, NULL);
    avr_irq_register_notify(avr_io_getirq(B.avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUT_XOFF), on_xoff, NULL);
    avr_irq_register_notify(avr_get_interrupt_irq(B.avr, USART0_RX_VECTOR) + AVR_INT_IRQ_RUNNING, on_rx_isr, NULL);
}

/* After a reset the UART is empty. */
void serial_reset(void)
{
    in_r = in_w;
    xoff = 0;
}

/* simavr cancels every cycle timer at a reset: start feeding again. */
void serial_restart(void)
{
    feeding = 0;
    serial_queue(NULL, 0);
}

/* ------------------------------------------------------------------ pseudo-terminal */

int serial_open_pty(const char *link_path)
{
    char name[256];
    struct termios tio;
    if (openpty(&B.pty_master, &B.pty_slave, name, NULL, NULL) != 0) {
        fprintf(stderr, "board: cannot open a pseudo-terminal: %s\n", strerror(errno));
        return -1;
    }
    tcgetattr(B.pty_slave, &tio);
    cfmakeraw(&tio);
    cfsetspeed(&tio, B1000000);
    tcsetattr(B.pty_slave, TCSANOW, &tio);
    fcntl(B.pty_master, F_SETFL, fcntl(B.pty_master, F_GETFL) | O_NONBLOCK);
    unlink(link_path);
    if (symlink(name, link_path) != 0) {
        fprintf(stderr, "board: cannot link %s to %s: %s\n", link_path, name, strerror(errno));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ script */

typedef struct {
    double t_us;
    char *line;
} script_line_t;

static script_line_t *script;
static size_t n_script, next_line;

int serial_load_script(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "board: cannot read the script %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 0;
    char *line = NULL;
    size_t len = 0;
    unsigned lineno = 0;
    double last = 0;
    while (getline(&line, &len, f) > 0) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '#' || *p == '\n' || *p == 0) {
            continue;
        }
        char *end;
        double t = strtod(p, &end);
        if (end == p || t < last) {
            fprintf(stderr, "board: %s line %u: expected 'T_US COMMAND ...' with non-decreasing times\n", path, lineno);
            fclose(f);
            return -1;
        }
        last = t;
        while (*end == ' ' || *end == '\t') {
            end++;
        }
        end[strcspn(end, "\r\n")] = 0;
        if (n_script == cap) {
            cap = cap ? cap * 2 : 1024;
            script = realloc(script, cap * sizeof *script);
        }
        script[n_script].t_us = t;
        script[n_script].line = strdup(end);
        n_script++;
    }
    free(line);
    fclose(f);
    return 0;
}

int serial_script_done(void) { return next_line >= n_script; }

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static void script_tx(const char *hex)
{
    uint8_t buf[4096];
    size_t n = 0;
    for (const char *p = hex; *p && n < sizeof buf;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        int a = hexval(p[0]), b = p[1] ? hexval(p[1]) : -1;
        if (a < 0 || b < 0) {
            fprintf(stderr, "board: bad hex in script: %s\n", hex);
            return;
        }
        buf[n++] = (uint8_t)(a << 4 | b);
        p += 2;
    }
    serial_queue(buf, n);
}

void serial_poll(void)
{
    double now = board_time_us();
    while (next_line < n_script && script[next_line].t_us <= now) {
        const char *l = script[next_line++].line;
        if (strncmp(l, "tx ", 3) == 0) {
            script_tx(l + 3);
        } else {
            board_control(l);
        }
    }
    if (B.pty_master < 0) {
        return;
    }
    uint8_t buf[4096];
    ssize_t n = read(B.pty_master, buf, sizeof buf);
    if (n > 0) {
        serial_queue(buf, (size_t)n);
    }
    while (o_head != o_tail) {
        size_t chunk = o_tail > o_head ? o_tail - o_head : QUEUE_SIZE - o_head;
        ssize_t w = write(B.pty_master, out + o_head, chunk);
        if (w <= 0) {
            break; /* the host is not reading: bytes wait (a real adapter would drop them) */
        }
        o_head = (o_head + (size_t)w) % QUEUE_SIZE;
    }
}
