/* Pin map of the reference board: an Arduino Mega 2560 (ATmega2560, 16 MHz crystal). See README.md. */
#ifndef BOARD_H
#define BOARD_H

#ifndef F_CPU
#define F_CPU 16000000UL
#endif

/* Serial link on USART0 (the board's USB bridge, pins D0/D1): 1 000 000 baud 8N1, exact at 16 MHz
   (UBRR0 = 0, 16 samples per bit). 921600 is 8.5 % off at 16 MHz and not usable. */
#define LINK_BAUD 1000000UL
#define LINK_UBRR ((F_CPU / 16UL / LINK_BAUD) - 1UL)

/* Valve outputs, 8 per port, bit n of the port = valve 8k + n:
   valves 0-7 PORTA (D22-D29), 8-15 PORTC (D37-D30), 16-23 PORTK (A8-A15), 24-31 PORTF (A0-A7). */
#define VALVE_PORT0 PORTA
#define VALVE_DDR0 DDRA
#define VALVE_PORT1 PORTC
#define VALVE_DDR1 DDRC
#define VALVE_PORT2 PORTK
#define VALVE_DDR2 DDRK
#define VALVE_PORT3 PORTF
#define VALVE_DDR3 DDRF

/* Encoder pulses (channel A of the belt encoder, or a pulse output) on T5 = PL2 (D47): Timer/Counter5 counts
   rising edges in hardware; its compare unit A switches the valves. */
/* Encoder reset (index / homing / operator button, active low, internal pull-up) on INT4 = PE4 (D2). */
/* Armed LED on PB7 (D13, the board's LED). */

#endif
