/* sorter-board: the valve controller firmware running on an emulated ATmega2560 (simavr), as a real peer of
   the serial link. See firmware/README.md ("The emulated board") for the options and the event log. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <simavr/avr_eeprom.h>
#include <simavr/sim_elf.h>

#include "board.h"

board_t B;

static volatile sig_atomic_t stop;
static int quit;
static const char *reset_cause;
static int restarted; /* a reset happened: the harness's cycle timers must be registered again */
static void (*core_reset)(avr_t *);
static uint64_t rng;
static char stdin_buf[4096];
static size_t stdin_len;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* What an SRAM holds at power-up: noise. */
static void randomize_sram(void)
{
    for (uint32_t a = 0x200; a <= B.avr->ramend; a++) {
        B.avr->data[a] = (uint8_t)next_random();
    }
}

static void on_reset(avr_t *avr)
{
    if (core_reset) {
        core_reset(avr);
    }
    randomize_sram();
    encoder_mcu_reset();
    serial_reset();
    B.resets++;
    restarted = 1;
    board_event("\"ev\":\"reset\",\"cause\":\"%s\",\"n\":%u", reset_cause ? reset_cause : "watchdog", B.resets);
    reset_cause = NULL;
}

void board_control(const char *line)
{
    char cmd[32] = "";
    double arg = 0;
    int n = sscanf(line, "%31s %lf", cmd, &arg);
    if (n < 1) {
        return;
    }
    if (!strcmp(cmd, "reset") || !strcmp(cmd, "power")) {
        reset_cause = !strcmp(cmd, "reset") ? "pin" : "power";
        avr_reset(B.avr);
        restarted = 0;
        encoder_restart();
        serial_restart();
    } else if (!strcmp(cmd, "zero")) {
        encoder_zero_pulse();
    } else if (!strcmp(cmd, "speed") && n == 2 && arg >= 0) {
        encoder_set_speed(arg);
        board_event("\"ev\":\"speed\",\"counts_per_s\":%.3f", arg);
    } else if (!strcmp(cmd, "glitch") && n == 2 && arg > 0) {
        board_event("\"ev\":\"glitch\",\"counts\":%d", (int)arg);
        encoder_glitch((int)arg);
    } else if (!strcmp(cmd, "mark")) {
        board_event("\"ev\":\"mark\",\"label\":\"%.40s\",\"count\":%lld,\"belt\":%lld", line + 4 + strspn(line + 4, " "),
                    (long long)B.mcu_counts, (long long)B.belt_counts);
    } else if (!strcmp(cmd, "quit")) {
        quit = 1;
    } else {
        fprintf(stderr, "board: unknown command '%s' (reset, power, zero, speed COUNTS_PER_S, glitch N, mark LABEL, quit)\n",
                line);
    }
    if (B.log) {
        fflush(B.log);
    }
}

static void poll_stdin(void)
{
    ssize_t n = read(0, stdin_buf + stdin_len, sizeof stdin_buf - 1 - stdin_len);
    if (n <= 0) {
        return;
    }
    stdin_len += (size_t)n;
    stdin_buf[stdin_len] = 0;
    char *nl;
    while ((nl = strchr(stdin_buf, '\n')) != NULL) {
        *nl = 0;
        board_control(stdin_buf);
        size_t used = (size_t)(nl + 1 - stdin_buf);
        memmove(stdin_buf, nl + 1, stdin_len - used + 1);
        stdin_len -= used;
    }
    if (stdin_len >= sizeof stdin_buf - 1) {
        stdin_len = 0;
    }
}

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void eeprom_io(const char *path, int save)
{
    avr_eeprom_desc_t d = {.ee = NULL, .offset = 0, .size = B.avr->e2end + 1};
    uint8_t *buf = malloc(d.size);
    d.ee = buf;
    if (save) {
        if (avr_ioctl(B.avr, AVR_IOCTL_EEPROM_GET, &d) == 0 || d.ee) {
            FILE *f = fopen(path, "wb");
            if (f) {
                fwrite(d.ee, 1, d.size, f);
                fclose(f);
            }
        }
    } else {
        FILE *f = fopen(path, "rb");
        if (f) {
            size_t n = fread(buf, 1, d.size, f);
            fclose(f);
            d.size = (uint32_t)n;
            avr_ioctl(B.avr, AVR_IOCTL_EEPROM_SET, &d);
        }
    }
    free(buf);
}

static void no_sleep(avr_t *avr, avr_cycle_count_t how_long)
{
    (void)avr;
    (void)how_long; /* pacing is done by the main loop */
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sorter-board FIRMWARE.elf [--pty LINK | --script FILE] [options]\n"
            "  --pty LINK          serial link on a pseudo-terminal, symlinked at LINK (runs in real time)\n"
            "  --script FILE       serial link fed from FILE: lines 'T_US tx HEX' or 'T_US COMMAND' (runs as fast as it can)\n"
            "  --profile SPEC      belt speed in counts/s: 'CPS', 'T_S:CPS,T_S:CPS,...' or '@FILE' (default 0)\n"
            "  --log FILE          event log, one JSON object per line (valve edges, frames, resets, latencies)\n"
            "  --duration-s S      stop after S seconds of emulated time\n"
            "  --realtime | --fast pace emulated time to the wall clock, or not\n"
            "  --time-scale F      with --realtime: emulated time runs at F x real time (0 < F <= 1)\n"
            "  --start-ns T        with --realtime: emulated time 0 is CLOCK_MONOTONIC T ns (a simulated belt's start)\n"
            "  --seed N            power-up SRAM noise (default: from the clock)\n"
            "  --eeprom FILE       keep the EEPROM in FILE (loaded at start, saved at exit)\n"
            "  --stock-compare     use simavr's external-clock compare timing (one count late) instead of the datasheet's\n"
            "commands on stdin (and in scripts): reset, power, zero, speed CPS, glitch N, mark LABEL, quit\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"pty", required_argument, 0, 'p'},       {"script", required_argument, 0, 's'},
        {"profile", required_argument, 0, 'v'},   {"log", required_argument, 0, 'l'},
        {"duration-s", required_argument, 0, 'd'}, {"realtime", no_argument, 0, 'r'},
        {"fast", no_argument, 0, 'f'},            {"seed", required_argument, 0, 'S'},
        {"eeprom", required_argument, 0, 'e'},    {"stock-compare", no_argument, 0, 'c'},
        {"time-scale", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {"start-ns", required_argument, 0, 'T'},
        {0, 0, 0, 0},
    };
    const char *pty = NULL, *script = NULL, *profile = "0", *log_path = NULL, *eeprom = NULL;
    double duration_s = 0;
    double time_scale = 1.0;
    uint64_t start_at_ns = 0;
    int pace = -1;
    B.seed = (uint64_t)wall_ns() ^ (uint64_t)getpid();
    B.pty_master = B.pty_slave = -1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': pty = optarg; break;
        case 's': script = optarg; break;
        case 'v': profile = optarg; break;
        case 'l': log_path = optarg; break;
        case 'd': duration_s = atof(optarg); break;
        case 'r': pace = 1; break;
        case 'f': pace = 0; break;
        case 'S': B.seed = strtoull(optarg, NULL, 0); break;
        case 'e': eeprom = optarg; break;
        case 'c': B.stock_compare = 1; break;
        case 't': time_scale = atof(optarg); break;
        case 'T': start_at_ns = strtoull(optarg, NULL, 0); break;
        default: usage(); return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1) {
        usage();
        return 2;
    }
    if (!(time_scale > 0 && time_scale <= 1)) {
        fprintf(stderr, "board: --time-scale %g: give a factor in (0, 1], e.g. 0.25 for a quarter of real time\n",
                time_scale);
        return 2;
    }
    rng = B.seed ? B.seed : 1;
    B.realtime = pace >= 0 ? pace : pty != NULL;
    elf_firmware_t fw;
    memset(&fw, 0, sizeof fw);
    if (elf_read_firmware(argv[optind], &fw) != 0) {
        fprintf(stderr, "board: cannot read the firmware %s: build it with 'make -C firmware avr'\n", argv[optind]);
        return 2;
    }
    B.avr = avr_make_mcu_by_name(fw.mmcu[0] ? fw.mmcu : "atmega2560");
    if (!B.avr) {
        return 2;
    }
    avr_init(B.avr);
    B.avr->frequency = fw.frequency ? fw.frequency : 16000000u;
    B.avr->log = 0;
    avr_load_firmware(B.avr, &fw);
    B.avr->sleep = no_sleep;
    if (log_path) {
        B.log = fopen(log_path, "w");
        if (!B.log) {
            fprintf(stderr, "board: cannot write the log %s: %s\n", log_path, strerror(errno));
            return 2;
        }
    }
    if (encoder_parse_profile(profile) != 0) {
        return 2;
    }
    if (eeprom) {
        eeprom_io(eeprom, 0);
    }
    core_reset = B.avr->reset;
    B.avr->reset = on_reset;
    randomize_sram();
    encoder_attach();
    valves_attach();
    latency_attach();
    serial_attach();
    if (pty && serial_open_pty(pty) != 0) {
        return 2;
    }
    if (script && serial_load_script(script) != 0) {
        return 2;
    }
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    board_event("\"ev\":\"start\",\"mcu\":\"%s\",\"hz\":%u,\"seed\":%llu,\"pty\":\"%s\",\"realtime\":%d", B.avr->mmcu,
                B.avr->frequency, (unsigned long long)B.seed, pty ? pty : "", B.realtime);
    printf("ready %s\n", pty ? pty : "");
    fflush(stdout);
    if (B.log) {
        fflush(B.log);
    }

    const uint64_t poll_cycles = B.avr->frequency / 20000u; /* 50 us */
    const uint64_t end_cycle = duration_s > 0 ? (uint64_t)(duration_s * B.avr->frequency) : UINT64_MAX;
    uint64_t next_poll = 0, start_ns = wall_ns(), last_flush = 0;
    /* with --realtime: how far emulated time fell behind the wall clock once it had caught up (a busy machine
       starves the emulator; the host then hears nothing for that long, and the watchdog may trip) */
    uint64_t behind_worst_ns = 0, stall_worst_ns = 0, stalls = 0;
    int caught_up = 0, stalled = 0;
    if (start_at_ns && start_at_ns <= start_ns) {
        start_ns = start_at_ns; /* emulated time 0 was then: catch up at full speed, then keep pace */
    }
    int status = 0;
    uint64_t off_since = 0, off_worst = 0;
    uint16_t sp_min = 0xFFFF; /* deepest stack seen after start-up: static RAM + this is the RAM in use */
    uint32_t off_pc = 0, off_worst_pc = 0;
    int seen_on = 0;
    while (!stop && !quit && B.avr->cycle < end_cycle) {
        uint32_t pc = B.avr->pc;
        int state = avr_run(B.avr);
        /* the longest stretch with interrupts disabled (handlers included): what delays a compare match */
        if (B.avr->pc == 0 && pc != 0) {
            off_since = 0; /* a reset: start-up runs with interrupts off, that is not a latency */
            seen_on = 0;
        }
        if (seen_on) {
            uint16_t sp = (uint16_t)(B.avr->data[0x5D] | (B.avr->data[0x5E] << 8));
            if (sp < sp_min) {
                sp_min = sp;
            }
        }
        if (!B.avr->sreg[S_I]) {
            if (seen_on && !off_since) {
                off_since = B.avr->cycle;
                off_pc = pc;
            }
        } else if (!seen_on) {
            seen_on = 1;
        } else if (off_since) {
            if (B.avr->cycle - off_since > off_worst) {
                off_worst = B.avr->cycle - off_since;
                off_worst_pc = off_pc;
            }
            off_since = 0;
        }
        if (restarted) {
            restarted = 0;
            encoder_restart();
            serial_restart();
        }
        if (state == cpu_Crashed || state == cpu_Done) {
            board_event("\"ev\":\"crash\",\"pc\":%u,\"state\":%d", B.avr->pc, state);
            status = 3;
            break;
        }
        if (B.avr->cycle < next_poll) {
            continue;
        }
        next_poll = B.avr->cycle + poll_cycles;
        serial_poll();
        poll_stdin();
        if (script && !pty && serial_script_done() && duration_s <= 0) {
            break;
        }
        uint64_t emu_ns = B.avr->cycle * 1000000000u / B.avr->frequency;
        uint64_t now = wall_ns() - start_ns;
        uint64_t allowed = (uint64_t)((double)now * time_scale); /* emulated time may not run ahead of this */
        if (B.realtime && emu_ns > allowed + 1000000u) {
            struct timespec ts = {0, (long)((double)(emu_ns - allowed) / time_scale)};
            nanosleep(&ts, NULL);
        }
        if (B.realtime && emu_ns + 1000000u >= allowed) {
            if (stalled) { /* a stall ended: how far behind it fell */
                board_event("\"ev\":\"stall\",\"behind_ms\":%.1f", (double)stall_worst_ns / 1e6);
            }
            caught_up = 1;
            stalled = 0;
            stall_worst_ns = 0;
        } else if (B.realtime && caught_up) {
            uint64_t behind = allowed - emu_ns;
            behind_worst_ns = behind > behind_worst_ns ? behind : behind_worst_ns;
            stall_worst_ns = behind > stall_worst_ns ? behind : stall_worst_ns;
            if (behind > 20000000u && !stalled) { /* 20 ms, about a heartbeat period of the line */
                stalled = 1;
                stalls++;
            }
        }
        if (B.log && now - last_flush > 20000000u) {
            fflush(B.log);
            last_flush = now;
        }
    }
    board_event("\"ev\":\"summary\",\"resets\":%u,\"count\":%lld,\"belt\":%lld,\"valve_edges\":%llu,\"compares\":%llu,"
                "\"rx_bytes\":%llu,\"tx_bytes\":%llu,\"rx_dropped\":%llu,\"wall_s\":%.3f,\"behind_worst_ms\":%.1f,"
                "\"stalls_over_20ms\":%llu",
                B.resets, (long long)B.mcu_counts, (long long)B.belt_counts, (unsigned long long)B.n_edges,
                (unsigned long long)B.n_cmp, (unsigned long long)B.rx_bytes, (unsigned long long)B.tx_bytes,
                (unsigned long long)B.rx_dropped, (double)(wall_ns() - start_ns) / 1e9, (double)behind_worst_ns / 1e6,
                (unsigned long long)stalls);
    board_event("\"ev\":\"irq_off\",\"worst_cycles\":%llu,\"pc\":%u", (unsigned long long)off_worst, off_worst_pc);
    board_event("\"ev\":\"stack\",\"ramend\":%u,\"sp_min\":%u,\"peak_bytes\":%u", B.avr->ramend, sp_min,
                sp_min <= B.avr->ramend ? B.avr->ramend - sp_min : 0);
    latency_summary();
    if (eeprom) {
        eeprom_io(eeprom, 1);
    }
    if (B.log) {
        fclose(B.log);
    }
    if (pty) {
        unlink(pty);
    }
    return status;
}
