#include <stdarg.h>

#include "board.h"

double board_time_us(void) { return (double)B.avr->cycle * 1e6 / (double)B.avr->frequency; }

/* One JSON object per line: {"t_us": ..., "cycle": ..., <fields>}. */
void board_event(const char *fmt, ...)
{
    if (!B.log) {
        return;
    }
    va_list ap;
    fprintf(B.log, "{\"t_us\":%.4f,\"cycle\":%llu,", board_time_us(), (unsigned long long)B.avr->cycle);
    va_start(ap, fmt);
    vfprintf(B.log, fmt, ap);
    va_end(ap);
    fputs("}\n", B.log);
}
